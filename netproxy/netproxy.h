/* netproxy: the job's TCP connections go through proxy sessions held by the supervisor.
 *
 * Job side: netproxy_filter_install() in the job's init/child before exec installs a seccomp
 * filter whose user notifications (connect, MSG_FASTOPEN sends, getpeername/getsockname) go to
 * the returned listener fd; send that fd to the supervisor (ck_send_fds).
 *
 * Supervisor side: a struct netproxy owns listener fds and sessions. It is single-threaded and
 * not thread-safe: call every function from the supervisor's loop thread. It exposes ONE fd
 * (netproxy_fd(), an epoll fd of its own) for the supervisor's epoll; when it is readable, call
 * netproxy_dispatch(), which never blocks on the job.
 *
 * Checkpoint: netproxy_session_detach() (job frozen) stops delivering, drains what the job wrote
 * and captures what it had not read; then either netproxy_session_resume() (the same job goes on)
 * or netproxy_session_attach() (a restored job gets a new socket that reads on exactly where the
 * old one stopped). netproxy_table_save() writes the session table for the checkpoint. */
#ifndef NETPROXY_H
#define NETPROXY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* ---- job side ---- */

enum netproxy_filter_flags {
	/* Also notify getpeername/getsockname so proxied sockets answer the real connection's
	 * addresses. Costs one supervisor round trip per such call on any socket. */
	NETPROXY_FILTER_NAMES = 1u << 0,
	/* Also notify setsockopt of the options a proxied socket must pass on to its real
	 * connection (SO_KEEPALIVE, SO_RCVBUF/SO_SNDBUF, SO_PRIORITY, TCP_NODELAY, TCP_KEEPIDLE/
	 * INTVL/CNT, TCP_USER_TIMEOUT, IP_TOS, IPV6_TCLASS): one round trip per such call. */
	NETPROXY_FILTER_SOCKOPTS = 1u << 1,
};

/** Install the netproxy seccomp filter on the calling thread (and, with TSYNC, its threads),
 *  setting PR_SET_NO_NEW_PRIVS only when the caller lacks CAP_SYS_ADMIN in its user namespace
 *  (so setuid programs keep working in a job). x86-64 only: syscalls of any other architecture or ABI
 *  (i386 int 0x80, x32) fail with ENOSYS; io_uring_setup/enter/register fail with ENOSYS;
 *  connect and sendto/sendmsg/sendmmsg with MSG_FASTOPEN are notified to the returned
 *  listener; everything else is allowed. Inherited across fork and kept across exec.
 *  Returns the listener fd (O_CLOEXEC; the caller sends it to the supervisor and closes it)
 *  or -errno (-EOPNOTSUPP when not built for x86-64). */
int netproxy_filter_install(unsigned flags);

/* ---- supervisor side ---- */

struct netproxy;

#define NETPROXY_MAX_SESSIONS_DEFAULT 1024u

struct netproxy_config {
	unsigned max_sessions;	   /* connects beyond this fail with EAGAIN; 0: the default */
	size_t buf_size;	   /* relay buffer per direction; 0 = 1 MiB */
	unsigned nonblock_wait_ms; /* how long a non-blocking connect waits for the upstream
				      before answering EINPROGRESS with the leg; 0 = 500 */
};

/** Create a proxy with @cfg (NULL: defaults). Returns 0 or -errno. */
int netproxy_new(const struct netproxy_config *cfg, struct netproxy **ret);
/** Close every session (upstreams reset) and listener. NULL-safe. */
void netproxy_free(struct netproxy *np);
/** Take ownership of a seccomp listener fd (closed on error too). Several may be added (a
 *  restored job installs a new filter). Returns 0 or -errno. */
int netproxy_add_listener(struct netproxy *np, int notify_fd);
/** The one fd to watch (EPOLLIN) in the supervisor's epoll. Owned by @np. */
int netproxy_fd(const struct netproxy *np);
/** Handle whatever is ready, without blocking. Errors of single sessions or notifications are
 *  handled inside (the session is dropped, the job gets an errno); returns 0, or -errno only
 *  when the proxy itself is broken. */
int netproxy_dispatch(struct netproxy *np);
/** Number of listeners still attached (0 once every filtered task of the job is gone). */
unsigned netproxy_listener_count(const struct netproxy *np);

enum netproxy_state {
	NETPROXY_STATE_CONNECTING,  /* upstream connect in progress */
	NETPROXY_STATE_ESTABLISHED, /* relaying both ways */
	NETPROXY_STATE_JOB_SHUT,    /* the job shut down its write side (FIN sent upstream) */
	NETPROXY_STATE_PEER_SHUT,   /* the upstream sent FIN */
	NETPROXY_STATE_DETACHED,    /* no job-side socket; upstream kept, buffered */
	NETPROXY_STATE_RESET,	    /* upstream reset; being reported to the job */
	NETPROXY_STATE_LOST,	    /* loaded from a table: its upstream did not survive */
};

struct netproxy_session_info {
	uint32_t id;
	enum netproxy_state state;
	struct sockaddr_storage local; /* the upstream socket's own address */
	struct sockaddr_storage peer;  /* the address the job connected to */
	uint64_t bytes_up;	       /* job -> upstream, written to the upstream */
	uint64_t bytes_down;	       /* upstream -> job, written to the job-side socket */
	uint64_t consumed;	       /* at the last detach: stream offset the job had read to */
	uint64_t delivered;	       /* at the last detach: offset received by the job socket */
};

struct netproxy_counters {
	unsigned sessions;	/* sessions now */
	unsigned max_sessions;	/* the configured limit */
	uint64_t connects;	/* TCP connects proxied (sessions made), ever */
	uint64_t refused_limit; /* connects refused with EAGAIN because of the limit, ever */
	uint64_t replay_mismatch; /* re-attached sessions reset because the restored job sent
				     other bytes than went upstream before (cut.c), ever */
	unsigned held;		  /* sessions held after their job-side socket ended (cut.c) */
};

/** Counters for logs and status. Never fails. */
void netproxy_counters_get(const struct netproxy *np, struct netproxy_counters *ret);

/** Snapshot of all sessions, malloc'd array (free()) in *ret, count in *ret_n. */
int netproxy_status(struct netproxy *np, struct netproxy_session_info **ret, size_t *ret_n);
/** "connecting", "established", ... Never NULL. */
const char *netproxy_state_to_string(enum netproxy_state state);
/** Format "1.2.3.4:80" or "[::1]:80" into @buf. Returns 0 or -EINVAL/-ENOSPC. */
int netproxy_addr_format(const struct sockaddr_storage *addr, char *buf, size_t len);

/** Find the session whose job-side socket is @job_sock (e.g. a pidfd_getfd duplicate taken
 *  while dumping the job's fd table). Returns 0 and *ret_id, or -ENOENT. */
int netproxy_session_find(struct netproxy *np, int job_sock, uint32_t *ret_id);

/** Detach session @id from its job-side socket. The job must be frozen. @job_sock is a
 *  pidfd_getfd duplicate of the job's socket (never fcntl'd or read by the caller), or -1 when
 *  the job is gone (then nothing unread can be captured: exactness is lost, see docs/net.md).
 *  Drains everything the job wrote (it goes upstream later), peeks what the job has not read,
 *  and returns a copy of those bytes in *ret_unread (malloc'd, may be NULL when *ret_len is 0)
 *  for the checkpoint image. Until resume or attach, the upstream is still read into a bounded
 *  buffer (reading stops when it is full). A session whose upstream is still connecting is
 *  detached too (nothing unread; what the job wrote waits for the upstream). -ENOENT (no such
 *  session), -EBUSY (its connect() not answered yet, or already detached), -EAGAIN (re-attached by a restore whose job has not yet sent again what
 *  the old one had sent after the cut: try later), -ETIMEDOUT (the job's socket would not drain), -ENOBUFS (more unsent data
 *  than the bound), -errno. */
int netproxy_session_detach(struct netproxy *np, uint32_t id, int job_sock, void **ret_unread,
			    size_t *ret_len);
/** Resume a detached session on its old job-side socket (a checkpoint that let the job go on).
 *  -ENOENT, -EINVAL when not detached or already attached elsewhere. */
int netproxy_session_resume(struct netproxy *np, uint32_t id);
/** Attach a detached session to a new job-side socket, returned in *ret_job_fd (a connected
 *  AF_INET/AF_INET6 TCP socket, blocking, O_CLOEXEC; the caller installs it in the restored job
 *  with the old fd's flags). The new socket first yields @unread (exactly the bytes detach
 *  returned: -EINVAL otherwise), then everything buffered since, then new upstream data. The old
 *  job-side socket's peer is closed. -ENOENT, -EINVAL, -errno. */
int netproxy_session_attach(struct netproxy *np, uint32_t id, const void *unread, size_t len,
			    int *ret_job_fd);

/** Write the session table (addresses, counters, state) to "netproxy.table" in @dirfd,
 *  atomically, with magic, version and checksum. Returns 0 or -errno. */
int netproxy_table_save(struct netproxy *np, int dirfd);
/** Read a table written by netproxy_table_save. Sessions come back as they were saved (the
 *  caller marks them LOST if their upstream is gone). -EBADMSG on any corruption (magic,
 *  checksum, lengths), -EPROTONOSUPPORT on an unknown version, -ENOENT, -errno. */
int netproxy_table_load(int dirfd, struct netproxy_session_info **ret, size_t *ret_n);

/* ---- the network half of a checkpoint (cut.c) ---- */

/* A socket option the job set on a proxied socket (one of the passed options, docs/net.md),
 * as setsockopt(level, name, &value, sizeof(int)) sets it again. */
struct netproxy_sockopt {
	int32_t level, name, value;
};
#define NETPROXY_CUT_OPTS_MAX 16

/* netproxy_cut.flags */
#define NETPROXY_CUT_CONNECTING 0x1u /* the upstream connect was still in progress */
/* Not a session: a job socket whose connect failed and whose SO_ERROR the job had not read yet
 * (a refused non-blocking connect, a reset connection): given back with the same error. */
#define NETPROXY_CUT_REFUSED	0x2u /* ECONNREFUSED pending */
#define NETPROXY_CUT_RESET	0x4u /* ECONNRESET pending */

/** Where a detached session stood at a checkpoint: enough to re-attach it to a restored job
 *  later, or to tell that it cannot be. */
struct netproxy_cut {
	uint32_t id;
	int family;
	struct sockaddr_storage peer;
	uint64_t up;	    /* bytes taken from the job (sent or queued upstream) */
	uint64_t consumed;  /* down stream offset the job had read to */
	uint64_t delivered; /* down stream offset its socket had received */
	uint64_t unread_sum; /* ck_checksum of the delivered-but-unread bytes */
	uint32_t flags;	     /* NETPROXY_CUT_* */
	uint32_t nopts;	     /* options the job had set on its socket, before or after connect */
	struct netproxy_sockopt opts[NETPROXY_CUT_OPTS_MAX];
};

/** The cut of a session just detached with its job socket (netproxy_session_detach with a
 *  socket). -ENOENT, -EINVAL (not detached, or nothing was captured). */
int netproxy_session_cut(struct netproxy *np, uint32_t id, struct netproxy_cut *ret);
/** A random id of this proxy (never 0): session ids start at 1 in every proxy, so a cut names
 *  its proxy too, and only that one may re-attach it. */
uint64_t netproxy_instance(const struct netproxy *np);
/** Attach session cut->id to a new job-side socket (as netproxy_session_attach) so that it
 *  reads on at cut->consumed: @unread are the bytes captured at that cut. The cut's options
 *  are set on the new socket and again on the upstream. A session cut while connecting
 *  re-attaches as well and goes on connecting. The session may be
 *  detached (the job stopped), held, or still attached to a job that is gone. What the new
 *  socket sends first is compared with what the old job sent after the cut and dropped when
 *  equal; at the first byte that differs the session is reset (counters.replay_mismatch).
 *  -ENOENT (no such session), -ECONNRESET (its upstream was reset), -ESTALE (what the job
 *  sent, or received, after the cut is no longer kept: NP_RETAIN up, NP_KEEP down), -EBUSY,
 *  -EINVAL, -errno. */
int netproxy_session_reattach(struct netproxy *np, const struct netproxy_cut *cut,
			      const void *unread, size_t len, int *ret_job_fd);
/** A copy of what session @id took from the job and has not sent upstream (malloc'd in
 *  *ret, may be NULL when *ret_len is 0): for a session cut while connecting, everything the
 *  job wrote, which a reconnect sends. -ENOENT, -EINVAL (not detached), -ENOMEM. */
int netproxy_session_unsent(struct netproxy *np, uint32_t id, void **ret, size_t *ret_len);
/** For a cut taken while the upstream was connecting (NETPROXY_CUT_CONNECTING) in a proxy
 *  that no longer has the session (a new supervisor): a new session connecting to cut->peer
 *  again, with the cut's options, that first sends @unsent; the job-side socket in
 *  *ret_job_fd (as netproxy_session_attach). Nothing had reached the peer, so this is the
 *  connection the job asked for; it completes, or fails and the job's socket is reset.
 *  -EINVAL (not such a cut), -EAGAIN (session limit), -errno. */
int netproxy_session_reconnect(struct netproxy *np, const struct netproxy_cut *cut,
			       const void *unsent, size_t len, int *ret_job_fd);
/** Set the cut's options on @fd (a socket handed to the restored job in place of the proxied
 *  one). Failures are ignored: the job set each once, so the kernel took it then. */
void netproxy_cut_apply_opts(const struct netproxy_cut *cut, int fd);
/** Whether @cut (read back from a file) is one a checkpoint could have taken: IPv4 or IPv6,
 *  known flags, at most NETPROXY_CUT_OPTS_MAX options and only passed ones (a TCP_REPAIR in
 *  a crafted file would be set as root on the upstream), consumed <= delivered, a session id
 *  unless it holds only a pending error. 0 or -EINVAL. */
int netproxy_cut_check(const struct netproxy_cut *cut);
/** Sessions with a cut whose job-side socket ended (EOF or reset) are held, not passed on
 *  upstream (counters.held): the job may have died, to be restored. When the job's process
 *  is not exiting (it closed the socket itself), or ended for good, release them: the EOF or
 *  reset goes upstream as it would have. */
void netproxy_release_held(struct netproxy *np);

/** Sessions still passing on what their job wrote (its leg not at its end, or bytes in the up
 * ring), for a caller that lets them finish after the job ended; *ret_bytes_up: bytes sent
 * upstream so far by all sessions (progress). netproxy_free() then closes the finished ones
 * normally (their upstream's send queue is still delivered) and resets the others. */
unsigned netproxy_sending(const struct netproxy *np, uint64_t *ret_bytes_up);
/** Close session @id, resetting its upstream. -ENOENT. */
int netproxy_session_drop(struct netproxy *np, uint32_t id);
/** A connected TCP socket of @family (blocking, O_CLOEXEC) whose first recv or send fails with
 *  ECONNRESET: what a restored job gets for a connection that is gone. Returns 0 or -errno. */
int netproxy_reset_socket(int family, int *ret_fd);
/** Make the unconnected TCP socket @fd of @family hold @err (ECONNREFUSED or ECONNRESET)
 *  pending in SO_ERROR, as a refused non-blocking connect or a reset connection leaves it:
 *  its connect to a loopback port that refuses it, or to a listener that resets it. Its
 *  O_NONBLOCK is kept. 0, -EINVAL (another error), -errno. */
int netproxy_pend_error(int fd, int family, int err);

#endif
