/* Internal interfaces of the ckptenv command line: subcommands, shared CLI helpers, and the
 * supervisor entry point. */
#ifndef CKPTENV_CKPTENV_H
#define CKPTENV_CKPTENV_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/ioctl.h>

#include "state.h"

struct control_msg;

#define EXIT_USAGE 2

/* Everything a freshly forked supervisor needs; it owns the fds. */
struct supervisor_args {
	const char *name;
	const char *job_dir; /* absolute path of jobs/NAME */
	int job_fd;	     /* jobs/NAME */
	int lock_fd;	     /* supervisor.lock, locked exclusively (by the CLI, inherited) */
	int ready_fd;	     /* pipe: one NUL byte when listening, else one error line */
	const struct job_spec *spec;
	bool pty;	   /* the job gets a terminal (else pipes); spec->flags has JOB_F_DETACH */
	struct winsize ws; /* the terminal's first size */
	uint64_t log_size; /* bound of jobs/NAME/output + output.1 */
	/* `restore`: rebuild the job from checkpoint @restore_id (jobs/NAME/checkpoints/ID) over
	 * vfs epoch @restore_epoch at pid @restore_pid, instead of running spec->argv. */
	const char *restore_id;
	uint64_t restore_epoch;
	int32_t restore_pid;
	/* `run`: --checkpoint-every, --keep, --checkpoint-on-term (ckpt.h; `restore` reads the
	 * job's saved one instead). */
	uint64_t ckpt_every_ns;
	uint32_t ckpt_keep;
	bool ckpt_on_term;
	/* `restore --allow-changed`: files whose change the restorer accepts (canonical paths) */
	const char *const *allow_changed;
	size_t nallow_changed;
};

#define OUTPUT_LOG	     "output"
#define ATTACH_SOCK	     "attach.sock"
#define DEFAULT_LOG_SIZE     (4u << 20)
#define LOG_SIZE_MIN	     4096u
#define LOG_SIZE_MAX	     (1ull << 30)
#define DEFAULT_DETACH_KEY   0x1c /* Ctrl-\ */

/** Run the supervisor of one job until the job ends; returns the process exit code. */
int supervisor_main(const struct supervisor_args *a);

/* Subcommands: argv[0] is the subcommand's name; each returns the process exit code. */
int cmd_run(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_snapshots(int argc, char **argv);
int cmd_attach(int argc, char **argv);
int cmd_log(int argc, char **argv);
int cmd_checkpoint(int argc, char **argv);
int cmd_checkpoints(int argc, char **argv);
int cmd_restore(int argc, char **argv);

struct cli_job;

/* What `run` and `restore` have in common: start the job's supervisor and talk to it. */
struct cli_run_opts {
	bool detach;
	int detach_key;
	const struct job_spec *restore_spec; /* `restore`: the job file as it is (not rewritten) */
	bool in_place; /* `restore` by the stopped job's own supervisor (cmd-ckpt.c) */
	char **cmd;
	int cmd_argc;
	uint64_t from_epoch;
	/* The job directory holds no job yet (a first run): a start that fails removes it, so
	 * that a run refused for want of /dev/fuse or a user namespace leaves no job behind. */
	bool fresh;
	/* Called once the supervisor started the job (host pid of its init), before detaching,
	 * attaching or waiting: `restore` watches the restorer there. A non-zero return is the
	 * command's exit code (the job failed to come up). May be NULL. */
	int (*started)(pid_t init_pid, void *userdata);
	void *started_data;
};
/** Take the job's lock, write the job file (unless restoring), start the supervisor as a
 *  daemon, send START, then attach (terminal) or relay/wait (pipes). Returns the exit code. */
int cli_start_job(struct cli_job *j, const char *cmd, const char *name,
		  const struct cli_run_opts *o, bool print_name, struct supervisor_args *sa);

/** After the supervisor on @sock answered STARTED (@m) to a start or a restore: print the
 *  restore's report, call o->started, then detach, wait (a restore without a terminal) or
 *  attach as @o says, @pty for a terminal job. Returns the exit code. */
int cli_follow_started(struct cli_job *j, const char *cmd, const char *name, int sock,
		       const struct control_msg *m, const struct cli_run_opts *o, bool pty);

/** Print "ckptenv: CMD NAME: MESSAGE" (NAME may be NULL) on stderr. */
void cli_error(const char *cmd, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* An opened job directory. */
struct cli_job {
	char *home;
	char *dir; /* absolute path of jobs/NAME */
	int jobs_fd;
	int job_fd;
};

/** Validate @name and open its job directory (creating it when @create); on failure print one
 *  line for @cmd and return the exit code to use (> 0). */
int cli_job_open(const char *cmd, const char *name, bool create, struct cli_job *ret);
void cli_job_close(struct cli_job *j);
/** Open the vfs store of @j (jobs/NAME/store) in this process (the caller holds the job's
 *  supervisor.lock); on failure print one line for @cmd and return 1. */
struct vfs;
int cli_job_vfs_open(const struct cli_job *j, const char *cmd, const char *name, struct vfs **ret);

/** Directory @fd (@path, for the message) of a job's state is ours and not writable by the
 *  @deny mode bits (state_dir_ours; root may reach another user's), else print one line for
 *  @cmd and return 1. */
int cli_state_dir_check(const char *cmd, const char *name, int fd, const char *path, mode_t deny);
/** Before anything is made in state directory @home (a job's directory, jobs/): it and its
 *  jobs/, where they exist, are the caller's own, also for root (whose supervisor would run
 *  the job as root in the user's files, and leave there what the user cannot remove), and
 *  writable by nobody else. On refusal one line for @cmd, and 1. */
int cli_state_home_check(const char *cmd, const char *name, const char *home);
/** Who owns @j's store: 0 with *@lock_fd holding the job lock (nothing runs: open the store
 *  here) or with *@sock connected to the supervisor (it owns the store: ask it); the other is
 *  -1. On failure print one line for @cmd and return 1. */
int cli_store_owner(const struct cli_job *j, const char *cmd, const char *name, int *lock_fd,
		    int *sock);

/** Print a usage error for @cmd ("ckptenv: CMD: WHAT; see 'ckptenv CMD --help'"); returns 2. */
int cli_usage(const char *cmd, const char *what);
/** After getopt_long's '?' for an unknown option: "unknown option '-x'" (also inside a bundle
 *  such as -xyz, where argv[optind - 1] is still the word before it), or "option '--force'
 *  takes no value", into @buf. */
const char *cli_bad_option(char *const *argv, char *buf, size_t len);

/* Attaching to a job's terminal (or pipes): cmd-attach.c. */
struct cli_attach_opts {
	int detach_key; /* -1: none */
	bool read_only;
	bool pipes;	   /* relay stdin/stdout/stderr byte-exact, not a terminal */
	bool no_redraw;	   /* `run`: the job starts now, the user's screen stays as it is */
	int control_sock;  /* >= 0: forward HUP/TERM/INT/QUIT to the job over it, keep going */
};

/** "none", "^X", "C-x", "ctrl-x", one character, or a number 0..255 into *ret (-1 for none).
 *  -EINVAL otherwise. */
int cli_detach_key_parse(const char *s, int *ret);

/** Connect to @j's attach.sock and relay the user's terminal (or stdio) until the job ends or
 *  the user detaches. Returns 0 when the job ended (*ret_code: its exit code, 128+signal), 1
 *  after a detach (the one-line note is printed), or -errno when the connection failed or was
 *  lost (nothing printed). The terminal is restored on every way out. */
int cli_attach(const struct cli_job *j, const char *cmd, const char *name,
	       const struct cli_attach_opts *o, int *ret_code);
/** For `status`: print the clients attached to the running job of @job_fd (count, each one's
 *  kind and window size), or why the supervisor could not say. */
void cli_attach_print_clients(int job_fd);

/** Human-readable byte count ("12.3 MiB") into @buf. */
const char *cli_bytes(uint64_t n, char *buf, size_t len);
/** Print, one per line on stderr, what a STARTED reply @m of a restore reports (connections
 *  that could not be kept; cli-net.c). */
void cli_print_restore_report(const char *cmd, const char *name, const struct control_msg *m);
/** Print the proxied connections of the running job in @job_fd (cli-net.c). -errno when its
 *  supervisor cannot say. */
int cli_status_net(int job_fd);
/* CKPTENV_NET_MAX_SESSIONS (environment of run/restore): the job's limit on proxied
 * connections. Checked by the CLI, used by the supervisor (sup-net.c). */
#define NET_MAX_SESSIONS_MAX 1000000u
/** Parse a limit in 1..NET_MAX_SESSIONS_MAX into *ret (may be NULL). 0 or -EINVAL. */
int net_max_sessions_parse(const char *v, unsigned *ret);
/** Parse a decimal number in 1..@max into *ret (may be NULL). 0 or -EINVAL. */
int env_count_parse(const char *v, unsigned max, unsigned *ret);
/* CKPTENV_CRASH_KEEP_SECONDS (environment of run/restore): how long the supervisor keeps a
 * crashed job (with a checkpoint policy) and its connections for a restore in place; default
 * 600. Checked by the CLI, used by the supervisor (sup-restore.c). */
#define CRASH_KEEP_ENV	     "CKPTENV_CRASH_KEEP_SECONDS"
#define CRASH_KEEP_DEFAULT_S 600u
#define CRASH_KEEP_MAX_S     604800u
/** Local time "YYYY-MM-DD HH:MM:SS" into @buf ("-" when @t is 0). */
const char *cli_time(int64_t t, char *buf, size_t len);

/* What list and status show about one job. */
enum cli_job_state { CLI_JOB_NEVER, CLI_JOB_RUNNING, CLI_JOB_EXITED, CLI_JOB_DIED };

struct cli_job_info {
	enum cli_job_state state;
	bool has_spec;
	struct job_spec spec;
	bool has_status;
	struct job_status status;
	bool has_run;
	struct job_run run;
	bool stopped; /* running supervisor, job ended at a checkpoint or crashed: restorable */
	/* Running, from the supervisor (when it answered): attached clients, of which writers. */
	bool has_clients;
	uint32_t clients, writers;
	/* Stopped, from the supervisor (when it says): why and until when. */
	bool has_park;
	int park_status;       /* the init's wait status */
	uint32_t park_left_s;  /* a crash: seconds it is still kept; 0: `checkpoint --stop` */
	uint64_t park_ckpt;    /* the newest checkpoint when it stopped */
};

/** Gather what the job directory @job_fd says; a missing or corrupt file just leaves its part
 *  out. */
void cli_job_info_load(int job_fd, struct cli_job_info *ret);
void cli_job_info_free(struct cli_job_info *i);
/** "running", "exited N", "never started", "died" into @buf. */
const char *cli_job_state_str(const struct cli_job_info *i, char *buf, size_t len);
/** The signal that killed a stopped job's process (crash), 0 if none. */
int cli_job_park_signal(const struct cli_job_info *i);
/** Print @s as a JSON string literal (quoted, escaped). */
void cli_json_str(FILE *f, const char *s);

#endif
