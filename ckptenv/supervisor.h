/* The supervisor's private state, shared by supervisor.c (control socket, job life) and
 * sup-stdio.c (the job's terminal or pipes through ptyproxy, the attach socket). */
#ifndef CKPTENV_SUPERVISOR_H
#define CKPTENV_SUPERVISOR_H

#include "ckpt.h"
#include "ckptenv.h"
#include "control.h"
#include "launch.h"
#include "netproxy/netproxy.h"

#define SUP_MAX_CLIENTS 64

struct ptyproxy;
struct netproxy;
struct ptyproxy_state;

struct sup {
	const struct supervisor_args *a;
	struct vfs *v;
	int ep;
	int listen_fd;
	int attach_fd; /* attach.sock, listening */
	int sig_fd;
	int clients[SUP_MAX_CLIENTS]; /* control clients; -1: free slot */
	struct launch_job job;	      /* init_pid > 0 once started */
	struct ptyproxy *pp;	      /* the job's stdio, once started */
	struct netproxy *np;	      /* the job's TCP connections (sup-net.c), once started */
	uint64_t np_refused_logged;   /* connects refused by the limit, already logged */
	bool np_fd_bound; /* the open-file limit, not CKPTENV_NET_MAX_SESSIONS, set the limit */
	bool periodic_failed; /* CKPT_FAILED written (sup-periodic.c) */
	uint64_t np_refused_log_ns;   /* when the last such line was written */
	uint64_t np_mismatch_logged;  /* replays that differed, already logged */
	char net_report[2048];	      /* lines of the last restore's network (sup-ckpt-net.c) */
	unsigned net_report_more;     /* lines that did not fit in it (all are in the log) */
	int job_stdio[3];	      /* pipe mode, until launched: the job's ends */
	int sup_stdio[3];	      /* pipe mode, until handed to ptyproxy: ours */
	bool started;
	bool go_pending;	  /* started, but the init waits for a client (launch_go) */
	uint64_t go_deadline_ns;  /* ... or for this time */
	bool job_ended;		  /* reaped; ptyproxy drains to the clients */
	uint64_t end_deadline_ns; /* give up on slow clients then */
	bool done;
	int exit_code;
	int64_t started_at;
	uint64_t run_id;
	/* sup-periodic.c */
	char *store_dir;	   /* jobs/NAME/store */
	struct ckpt_policy policy; /* checkpoint period, how many to keep, on SIGTERM */
	int periodic_fd;	   /* timerfd (CLOCK_MONOTONIC) when policy.every_ns; else -1 */
	/* sup-restore.c: the job ended but the supervisor stays for a restore in place. */
	const char *restore_id;	   /* the checkpoint being restored (a->restore_id at first) */
	int32_t restore_pid;
	char **allow;		   /* --allow-changed of a restore in place (sup_allow_set) */
	size_t nallow;
	char restore_buf[24];
	bool in_place;		   /* a restore in place runs: park again if it fails */
	int in_place_status;	   /* ... with this wait status (the stopped job's) */
	int in_place_exit;	   /* ... and exit code */
	bool job_rebuilt;	   /* the init reported the command running (launch_running) */
	bool term_seen;		   /* SIGTERM/INT/HUP forwarded to the job: its end is wanted */
	bool park_on_exit;	   /* `checkpoint --stop`: park when the init is reaped */
	bool parked;		   /* init reaped, clients and store kept, job_exited not called */
	int park_status;	   /* the init's wait status, for the clients when it ends */
	uint64_t park_deadline_ns; /* a parked crash ends then (0: never, after --stop) */
	uint64_t park_ckpt;	   /* the newest checkpoint when it parked */
	unsigned park_grace_s;	   /* ... that many seconds after the crash */
	int user_signal;	   /* last signal a client sent the job (not a crash) */
	struct fusewatch *fusewatch; /* sup-fusewatch.c, while /tmp is served */
	struct sup_ckpt_thread *ckt; /* sup-ckpt-thread.c */
	bool term_pending;	     /* SIGTERM came during a checkpoint: handled after it */
	/* supervisor.c: a client's request that waits for the checkpoint in progress */
	struct control_msg *deferred[SUP_MAX_CLIENTS];
	int ndeferred;
};

__attribute__((format(printf, 2, 3))) void sup_log(const struct sup *s, const char *fmt, ...);

/** After launch_go: watch the init's report that the command runs (launch_running). */
void sup_job_watch_running(struct sup *s);
/** Take that report now if it is there (sets job_rebuilt) and stop watching. */
void sup_job_report(struct sup *s);
/** The init is reaped: a restore in place that never rebuilt the process parks the job again
 *  (the stopped job stays for another restore). True when parked. */
bool sup_park_failed_restore(struct sup *s);
/** The job is started but its command has not exec'd yet (or the restored process is not
 *  rebuilt yet): a checkpoint now waits for it. */
bool sup_job_starting(const struct sup *s);

/** Listen on jobs/NAME/attach.sock (0600); watched from sup_stdio_start, once the job's
 *  terminal exists. Returns 0 or -errno (@err set). */
int sup_stdio_setup(struct sup *s, char *err, size_t errlen);
/** Before launch_job: pipe mode makes the pipes and puts the job's ends in la->stdio; pty mode
 *  sets la->pty. Returns 0 or -errno. */
int sup_stdio_prepare(struct sup *s, struct launch_args *la);
/** After launch_job: serve @pty_fd (taken over; -1 in pipe mode) or the pipes through
 *  ptyproxy, close the job's pipe ends. Returns 0 or -errno. */
int sup_stdio_start(struct sup *s, int pty_fd);
/** Accept attach clients (uid checked) and hand them to ptyproxy. */
void sup_attach_accept(struct sup *s);
/* The CONTROL_INFO_REPLY payload (control.h) into @b; returns its length. */
size_t sup_stdio_info_pack(struct sup *s, uint8_t *b, size_t cap);
/** The job was reaped with @wstatus: tell the clients (after their pending output). */
void sup_stdio_job_exited(struct sup *s, int wstatus);
/** After each loop round: launch_go once a client is attached (or for --detach, or late). Also
 *  says whether the supervisor may finish, and the epoll timeout it needs (-1: none). */
int sup_stdio_tick(struct sup *s);
/** CONTROL_CHECKPOINT from client socket @c (sup-ckpt.c); replies itself. */
void sup_checkpoint(struct sup *s, int c, const struct control_msg *m);
/* Where the job's frozen time goes, in the order of a checkpoint. */
enum sup_ckpt_phase {
	SUP_CKPT_PHASE_FREEZE, /* seize and stop every thread */
	SUP_CKPT_PHASE_VFS,    /* syncfs of the job's /tmp, epoch sealed, written, ref set */
	SUP_CKPT_PHASE_PTY,    /* input held, screen model caught up, pty.state written */
	SUP_CKPT_PHASE_MEM,    /* restore_dump: registers, fds, memory into image/ */
	SUP_CKPT_PHASE_COMMIT, /* directories, manifest, rename, fsyncs, LATEST */
	SUP_CKPT_PHASE_NET,    /* proxied connections detached, unread bytes captured, saved */
	SUP_CKPT_PHASES
};

struct sup_ckpt_result {
	uint64_t id, epoch, bytes, frozen_ns;
	uint64_t phase_ns[SUP_CKPT_PHASES];
	uint64_t precommit_ns; /* /tmp committed once before the freeze (not frozen) */
};

enum sup_ckpt_origin { SUP_CKPT_BY_CLIENT, SUP_CKPT_PERIODIC, SUP_CKPT_ON_TERM };

/* One checkpoint, from its request on the main thread to its end there. */
struct sup_ckpt_task {
	enum sup_ckpt_origin origin;
	uint32_t flags; /* CONTROL_CKPT_STOP: end the job once the checkpoint is complete */
	int client;	/* a CLI's control socket (progress, reply), or -1 */
	pid_t init_pid, kid;   /* set by sup_ckpt_start */
	const char *hold_path; /* CKPTENV_TEST_CKPT_HOLD (sup-ckpt.c) */
	int r;		       /* the outcome: 0, or -errno with @err */
	struct sup_ckpt_result res;
	char err[768];
};

/** Start a checkpoint of the running job as @t says (copied) on the checkpoint thread; it
 *  drops the oldest beyond policy.keep. Its end comes to sup_ckpt_ended on the main thread.
 *  -errno with one line in @err when it cannot start (-EBUSY: one is in progress). */
int sup_ckpt_start(struct sup *s, const struct sup_ckpt_task *t, char *err, size_t errlen);
/** The checkpoint itself, on the checkpoint thread (sup-ckpt-thread.c): sets t->r, t->res. */
void sup_ckpt_run(struct sup *s, struct sup_ckpt_task *t);
/** Main thread, the thread joined: kill the init after --stop, reply to the client (or
 *  sup_periodic_ended), handle a SIGTERM that came meanwhile. */
void sup_ckpt_ended(struct sup *s, const struct sup_ckpt_task *t);
/** The end of a checkpoint the supervisor took itself (no client): log, SIGTERM's outcome. */
void sup_periodic_ended(struct sup *s, const struct sup_ckpt_task *t);

/* sup-ckpt-thread.c: the checkpoint thread, and the calls it has the main thread run. */
/** After epoll_create: its eventfd in s->ep. 0 or -errno with @err set. */
int sup_ckpt_thread_setup(struct sup *s, char *err, size_t errlen);
bool sup_ckpt_busy(const struct sup *s);
/** Run sup_ckpt_run(@task) on a new thread (@task is freed after sup_ckpt_ended). */
int sup_ckpt_thread_start(struct sup *s, struct sup_ckpt_task *task);
/** From the checkpoint thread: have the main thread run @fn(@s, @arg), and wait for it. */
void sup_ckpt_on_main(struct sup *s, void (*fn)(struct sup *s, void *arg), void *arg);
bool sup_ckpt_thread_owns(const struct sup *s, int fd);
/** The eventfd is readable: run the pending call; join an ended thread, sup_ckpt_ended. */
void sup_ckpt_thread_dispatch(struct sup *s);
/** Until no checkpoint is in progress, serving its calls (the supervisor is ending). */
void sup_ckpt_thread_wait(struct sup *s);
void sup_ckpt_thread_close(struct sup *s);

/** After vfs_open and epoll_create (sup-periodic.c): record or reload the checkpoint policy
 *  (`run` writes a->policy, `restore` reads the job's), remove what an interrupted checkpoint
 *  left, arm the period timer. 0 or -errno with @err set. */
int sup_periodic_setup(struct sup *s, char *err, size_t errlen);
/** The period timer fired: checkpoint the job if it runs (failures are logged). */
void sup_periodic_fire(struct sup *s);
/** SIGTERM to the supervisor: with policy CKPT_POLICY_ON_TERM, take a final checkpoint and end
 *  the job. True when done (the caller then does not forward the signal). */
bool sup_periodic_term(struct sup *s);
/** CONTROL_CKPT_DROP from client @c: drop one checkpoint and its epoch. */
void sup_ckpt_drop(struct sup *s, int c, const struct control_msg *m);
void sup_periodic_close(struct sup *s);

/** CONTROL_START (supervisor.c): launch the job (or the restore of s->restore_id); replies.
 *  0 when started; on failure s->done is set and it returns SUP_START_NOT_LAUNCHED when
 *  nothing was launched (the job's terminal and connections untouched), else -errno. */
#define SUP_START_NOT_LAUNCHED 1
int sup_job_start(struct sup *s, int c);
/** The init was reaped with @wstatus (sup-restore.c): after `checkpoint --stop`, or a crash of
 *  a job with a checkpoint policy and a checkpoint, keep the supervisor (its store, clients)
 *  for a restore in place and return true; else false (the job's end goes on as usual). */
bool sup_park_on_exit(struct sup *s, int wstatus);
/** End a parked job for good: the clients get EXITED, the supervisor then finishes. */
void sup_park_end(struct sup *s);
/** The loop's epoll timeout with the parked job's deadline in it. */
int sup_park_tick(struct sup *s, int timeout);
/** CONTROL_RESTORE from client @c: roll the store back to the checkpoint's epoch and restore
 *  the job in this supervisor (the attached clients stay). Replies STARTED or ERROR. */
void sup_restore_in_place(struct sup *s, int c, const struct control_msg *m);
/** After vfs_serve (sup-fusewatch.c): a watchdog that aborts the /tmp FUSE connection if the
 *  supervisor is killed while its main thread waits on its own mount. Root only; failures
 *  are logged. */
int sup_fusewatch_start(struct sup *s);
/** Before the store is closed: the watchdog leaves without aborting. NULL-safe. */
void sup_fusewatch_stop(struct sup *s);
/** sup_stdio_start() for a restore in place: hand the new job side to the existing ptyproxy. */
int sup_stdio_restart(struct sup *s, int pty_fd, struct ptyproxy_state *pst);

/** Close everything (clients get EOF), unlink attach.sock. */
void sup_stdio_close(struct sup *s);

/* sup-net.c: the job's network through netproxy. */
/** Serve the job's seccomp listener @net_fd (taken over, closed on error too) and watch
 *  netproxy's fd in s->ep. Returns 0 or -errno. */
int sup_net_start(struct sup *s, int net_fd);
/** Whether @fd is netproxy's (then call sup_net_dispatch). */
bool sup_net_owns(const struct sup *s, int fd);
void sup_net_dispatch(struct sup *s);
/** The job ended for good (not parked): connections held since its sockets closed (a job
 *  that might have been restored) end now as they would have (netproxy_release_held). */
void sup_net_job_ended(struct sup *s);
/** CONTROL_NET_STATUS from client socket @c: replies NET_STATUS_REPLY. */
void sup_net_status(struct sup *s, int c);
/** End every proxied connection (normally those that passed on all the job wrote, see
 *  netproxy_free; the others reset) and free the proxy. NULL-safe. */
void sup_net_close(struct sup *s);
/* After the job ended: let the sessions pass on what the job wrote (bounded), see sup-net.c. */
void sup_net_linger(struct sup *s);
/** Whether process @pid is exiting or gone (PF_EXITING in /proc/PID/stat, or no such file). */
bool sup_proc_exiting(pid_t pid);
/** Whether process @pid is in a group stop (state T: SIGSTOP, SIGTSTP...). */
bool sup_proc_stopped(pid_t pid);

/** Keep the --allow-changed paths of a restore in place: @len bytes of NUL-terminated names
 *  (replacing earlier ones; none when @len is 0). 0 or -ENOMEM. */
int sup_allow_set(struct sup *s, const char *names, size_t len);
void sup_allow_clear(struct sup *s);
/* sup-ckpt-net.c: the network half of a checkpoint and of a restore. */
struct sup_net_cut_ent {
	int fd, flags; /* the job's fd number and its open flags (O_NONBLOCK) */
	struct netproxy_cut cut;
	void *unread; /* bytes the job's socket had received but the job had not read */
	size_t len;
	void *unsent; /* cut while connecting: what the job wrote, for a reconnect */
	size_t unsent_len;
};
struct sup_net_cut {
	uint64_t instance; /* netproxy_instance of the proxy cut (0: unknown, an older net.cut) */
	size_t n, cap;
	struct sup_net_cut_ent *e; /* malloc'd */
};
/* What one checkpoint takes of proxied connections: every session the proxy may hold
 * (CKPTENV_NET_MAX_SESSIONS is at most this), and at most this many bytes captured in net.cut. */
#define SUP_NET_CUT_MAX	      NET_MAX_SESSIONS_MAX
#define SUP_NET_CUT_BYTES_MAX (1024u << 20)
/** Job frozen: detach every proxied connection of process @pid, capturing what it had not
 *  read, into @c. On failure everything is resumed and @err says what failed. */
int sup_ckpt_net_detach(struct sup *s, pid_t pid, struct sup_net_cut *c, char *err,
			size_t errlen);
/** Write @c ("net.cut") and the session table into the checkpoint directory @dirfd. */
int sup_ckpt_net_save(struct sup *s, const struct sup_net_cut *c, int dirfd);
/** After the checkpoint: resume the sessions (or leave them detached when @stop); frees @c. */
void sup_ckpt_net_finish(struct sup *s, struct sup_net_cut *c, bool stop);
void sup_net_cut_free(struct sup_net_cut *c);
/** Before the restore of checkpoint directory @rdir is launched: a socket for each proxied fd
 *  of the checkpoint (re-attached session, a new connect for one that was connecting, or one
 *  that fails with ECONNRESET, reported in s->net_report and the log), in *ret_fds (malloc'd,
 *  the fds owned by the caller) for fd numbers *ret_targets (malloc'd). Sessions the
 *  checkpoint lacks are closed and reported. */
int sup_ckpt_net_restore(struct sup *s, int rdir, int **ret_fds, int **ret_targets,
			 size_t *ret_n, char *err, size_t errlen);
/** Create the proxy (s->np) and watch it, before the job's listener exists. 0 or -errno. */
int sup_net_new(struct sup *s);

#endif
