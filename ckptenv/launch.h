/* Starting a job: the one place that creates the job's namespaces and its init (pid 1).
 *
 * launch_job() clones the init into new mount + pid namespaces (and a user namespace mapping
 * only our own uid/gid when not root). The init makes its mounts private, mounts the vfs on
 * /tmp, installs the netproxy seccomp filter, hands the /dev/fuse fd (and the filter's
 * listener) back, mounts a fresh /proc, and then waits for launch_go()
 * before it runs the command, so the supervisor can start serving /tmp first.
 * Later additions (a reserved address range) belong in struct launch_args and launch.c only;
 * the time namespace is entered by the init itself (init.c), right before it forks the job. */
#ifndef CKPTENV_LAUNCH_H
#define CKPTENV_LAUNCH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/types.h>
#include <termios.h>

#include "state.h"

struct launch_args {
	const struct job_spec *spec;
	int stdio[3];	  /* become the job's 0, 1, 2 (of the init; the command's unless pty) */
	bool allow_other; /* FUSE allow_other: only when we are root on the host */
	bool pty;	  /* the command runs on a pty of the job's own devpts instance */
	struct winsize ws; /* its initial size (0x0: 24x80) */
	const struct termios *tio; /* its initial modes (NULL: the defaults) */
	/* The "restore" variant: instead of running the command, the init's child takes pid
	 * @restore_pid (clone3 set_tid) and becomes checkpoint image @restore_id below
	 * @restore_dirfd (restore_process), with the job's stdio as 0, 1, 2. */
	int restore_dirfd; /* -1: run the command */
	const char *restore_id;
	pid_t restore_pid;
	const char *const *allow_changed; /* restore_process_opts.allow_paths */
	size_t nallow_changed;
	/* Sockets handed to a restore (the job's proxied connections): hand_fds[i] (ours; the
	 * job's once launch_job succeeds, sent to the init by launch_go) becomes fd hand_targets[i]. */
	const int *hand_fds, *hand_targets;
	size_t nhand;
};

/* launch_go sends the handed sockets this many to a message ('G' each, SCM_RIGHTS); the init
 * takes messages until it has launch_args.nhand. */
#define LAUNCH_HAND_CHUNK 16

struct launch_job {
	pid_t init_pid; /* host pid of the job's pid 1; our child (reap it with waitpid) */
	int sock;	/* our end of the init's socketpair; -1 after launch_running */
	int net_fd;	/* listener of the job's seccomp filter (netproxy): the caller takes it */
	int *hand;	/* launch_args.hand_fds (malloc'd copy), until launch_go sends them */
	size_t nhand;
};

/** Start the job's init. On success *ret holds the init and *ret_fuse_fd the mounted /dev/fuse
 *  descriptor (owned by the caller; pass it to vfs_serve), and the init waits for launch_go().
 *  With a->pty, *ret_pty_fd is the master of the job's terminal (/dev/pts/0 in the job's own
 *  devpts instance; O_NONBLOCK, owned by the caller), else -1.
 *  ret->net_fd is the listener of the netproxy seccomp filter the init installed on itself
 *  (so on the command, or the restored process, it forks): the caller owns it.
 *  On failure the init is killed and reaped, and @err holds one line saying what failed.
 *  The init dies with SIGKILL if the calling thread exits (PR_SET_PDEATHSIG). */
int launch_job(const struct launch_args *a, struct launch_job *ret, int *ret_fuse_fd,
	       int *ret_pty_fd, char *err, size_t errlen);

/** Let the init run the command (and send it the handed sockets, then closed). j->sock stays
 *  open: the init reports on it once the command has exec'd (a restore: once the image's pages
 *  are in and checked), or closes it when it dies first. */
int launch_go(struct launch_job *j);

/** When j->sock is readable (or to stop waiting): take the report and close j->sock. True when
 *  the init reported the command running (or the process rebuilt); false after a failed
 *  restore, or when the init died or had not reported yet. */
bool launch_running(struct launch_job *j);

/** Kill (SIGKILL) and reap an init that never got launch_go; closes the socket. */
void launch_abort(struct launch_job *j);

/** Entry of the job's pid 1 (init.c): runs in the new namespaces with stdio already in place
 *  and @sock the init's end of the socketpair; a->pty: give the command a terminal of size
 *  a->ws; a->restore_id: restore that image below @restore_dirfd (the fd number in the init)
 *  instead of running the command. Never returns. */
__attribute__((noreturn)) void init_main(int sock, const struct launch_args *a, int restore_dirfd);

#endif
