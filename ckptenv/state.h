/* The state directory: $CKPTENV_HOME/jobs/NAME/ with the job file, the status file, the run
 * file, the supervisor lock and the vfs store. Every persisted file here is a small packed
 * format (magic, version, fields, xxh3 checksum) written atomically, mode 0600. */
#ifndef CKPTENV_STATE_H
#define CKPTENV_STATE_H

#include <sys/stat.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define STATE_NAME_MAX 64

/* How a job was started: written by `run` to jobs/NAME/job. */
struct job_spec {
	char **argv; /* NULL-terminated, argc entries */
	uint32_t argc;
	char **envp; /* NULL-terminated, envc entries */
	uint32_t envc;
	char *cwd;
	uint32_t flags;	     /* JOB_F_* */
	uint64_t from_epoch; /* 0: head */
	int64_t created;     /* unix seconds */
	mode_t umask;	     /* the caller's, for the command (not saved: a restore takes the
			      * image's) */
};

#define JOB_F_DETACH (1u << 0)

/* How the job ended: written by the supervisor to jobs/NAME/status. */
struct job_status {
	int32_t exit_code; /* 0..255, 128+signal when killed */
	uint64_t run_id;   /* the job_run this status ends */
	int64_t started;   /* unix seconds */
	int64_t ended;
};

/* Who runs the job: written by the supervisor to jobs/NAME/run once the job started; only
 * meaningful while supervisor.lock is held. */
struct job_run {
	int32_t supervisor_pid;
	int32_t init_pid; /* host pid of the job's pid 1 */
	uint64_t run_id;  /* random, unique per run: tells whether a status belongs to this run */
	int64_t started;
};

/** The state home: $CKPTENV_HOME, else $XDG_STATE_HOME/ckptenv, else ~/.local/state/ckptenv.
 *  Malloc'd in *ret. -ENOENT when no home directory can be found. */
int state_home(char **ret);

/** 0 when @name is a valid job name ([A-Za-z0-9._-], 1..64 bytes, not starting with '.', nor
 *  with '-', which would read as an option),
 *  else -EINVAL. */
int state_name_check(const char *name);

/** Open (creating each level 0700 when @create) $home/jobs and return its fd. */
int state_jobs_open(const char *home, bool create, int *ret_fd);

/** Whether directory @fd may hold our state: owned by our effective uid and not writable by
 *  the @deny mode bits (022 for ckptenv's own directories; 002 for the home above them, which
 *  a user-private group may write). With @root_may, root may also use another user's (to look
 *  at a job, not to start a supervisor for it). 0, -EPERM (*ret says whose, which mode),
 *  -errno. Another user's directory would give
 *  that user the job's output, sockets and store (or, to root, run the user's program as root). */
int state_dir_ours(int fd, mode_t deny, bool root_may, struct stat *ret);

/** Open jobs/@name below @jobs_fd as a directory. With @create, make it (0700) when missing.
 *  -ENOENT no such job. */
int state_job_open(int jobs_fd, const char *name, bool create, int *ret_fd);

/** Take jobs/NAME/supervisor.lock exclusively without waiting long (a reader probing the lock
 *  for a moment is retried for ~0.2 s). -EBUSY: a supervisor holds it. The fd owns the lock. */
int state_lock_take(int job_fd, int *ret_fd);

/** One try, no wait: -EBUSY when anyone holds it. */
int state_lock_try(int job_fd, int *ret_fd);

/** Wait up to @timeout_ms for the lock; -ETIMEDOUT when still held. */
int state_lock_wait(int job_fd, int timeout_ms, int *ret_fd);

/** 1 when a supervisor holds the job's lock (the job runs), 0 when not, or -errno. */
int state_job_running(int job_fd);

int job_spec_write(int job_fd, const struct job_spec *s);
/** -ENOENT missing, -EBADMSG corrupt or truncated, -EPROTONOSUPPORT newer version. */
int job_spec_read(int job_fd, struct job_spec *ret);
void job_spec_free(struct job_spec *s);
/** The command line as one string, arguments separated by spaces (malloc'd). */
char *job_spec_command(const struct job_spec *s);

int job_status_write(int job_fd, const struct job_status *s);
/** The signal that ended the job's command, from its init's wait status @wstatus (the init
 *  exits with the command's status: 128+N when signal N killed it); 0 if none did. */
int job_status_signal(int wstatus);
int job_status_read(int job_fd, struct job_status *ret);
int job_run_write(int job_fd, const struct job_run *r);
int job_run_read(int job_fd, struct job_run *ret);

/** Pack/unpack, exposed for tests. Unpack checks magic, version, bounds and checksum. */
int job_spec_pack(const struct job_spec *s, uint8_t **ret, size_t *ret_len);
int job_spec_unpack(const uint8_t *p, size_t len, struct job_spec *ret);

#endif
