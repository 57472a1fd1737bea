/* Seccomp notifications. Rules the code relies on:
 * - The job's memory is read through /proc/PID/mem opened *before* SECCOMP_IOCTL_NOTIF_ID_VALID
 *   succeeds, so it cannot be another process that reused the pid.
 * - A TCP connect is never answered with CONTINUE: the supervisor connects upstream itself with
 *   the address it copied, and connects the very file it checked (its pidfd_getfd duplicate) to
 *   its leg listener, or puts a socket it made at the job's fd number (ADDFD + SETFD), so a
 *   rewritten sockaddr or a swapped fd cannot reach the network directly (a swapped-in socket
 *   stays unconnected).
 * - ADDFD_FLAG_SEND is not used: it makes the syscall return the new fd number, and connect()
 *   must return 0 or -1/errno. ADDFD then the answer are two steps; if the notification is
 *   aborted between them the job holds the connected leg and its restarted connect() gets
 *   EISCONN, as a connect interrupted on a real TCP socket would.
 * - Decisions are taken on the socket (domain, type, protocol of the file we hold), never on the
 *   job-controlled sockaddr. */
#include "netproxy/netproxy-internal.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <poll.h>
#include <sys/uio.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

int np_respond(int notify_fd, uint64_t id, int64_t val, int err, uint32_t flags)
{
	struct seccomp_notif_resp resp = {.id = id, .val = val, .error = -err, .flags = flags};
	if (ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0)
		return -errno;
	return 0;
}

static int respond_continue(int notify_fd, uint64_t id)
{
	return np_respond(notify_fd, id, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE);
}

bool np_id_valid(int notify_fd, uint64_t id)
{
	return ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

/* The job's task: its memory and a way to take its fds. */
struct job {
	int pidfd;
	int mem;
	pid_t pid;
};

static void job_close(struct job *j)
{
	if (j->pidfd >= 0)
		close(j->pidfd);
	if (j->mem >= 0)
		close(j->mem);
}

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

/* The thread group of task @tid, from /proc/TID/status (readable for any task, listed or not). */
static pid_t tgid_of(pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	_cleanup_close_ int f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return -1;
	ssize_t n = read(f, buf, sizeof(buf) - 1);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	const char *p = strstr(buf, "\nTgid:");
	return p ? (pid_t)strtol(p + 6, NULL, 10) : -1;
}

/* The notification names the calling *thread* (req->pid is its tid): pidfd_open refuses a tid
 * that is not a thread-group leader unless PIDFD_THREAD (6.9) says it is meant; older kernels
 * get the leader's pidfd (same fd table, as threads share it unless made with clone without
 * CLONE_FILES). Memory and /proc/TID/fdinfo work with the tid itself. */
static int pidfd_of_task(pid_t tid)
{
	int fd = (int)syscall(SYS_pidfd_open, tid, PIDFD_THREAD);
	if (fd >= 0 || errno != EINVAL)
		return fd;
	fd = (int)syscall(SYS_pidfd_open, tid, 0);
	if (fd >= 0 || errno != EINVAL)
		return fd;
	pid_t tgid = tgid_of(tid);
	if (tgid <= 0) {
		errno = ESRCH;
		return -1;
	}
	return (int)syscall(SYS_pidfd_open, tgid, 0);
}

static int job_open(struct job *j, pid_t pid, int notify_fd, uint64_t id, bool rw)
{
	char path[64];
	*j = (struct job){.pidfd = -1, .mem = -1, .pid = pid};
	j->pidfd = pidfd_of_task(pid);
	if (j->pidfd < 0)
		return np_id_valid(notify_fd, id) ? -errno : -ENOENT;
	if (rw) {
		snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
		j->mem = open(path, O_RDWR | O_CLOEXEC);
		if (j->mem < 0)
			return np_id_valid(notify_fd, id) ? -errno : -ENOENT;
	}
	if (!np_id_valid(notify_fd, id))
		return -ENOENT;
	return 0;
}

static int job_getfd(const struct job *j, int fd)
{
	int r = (int)syscall(SYS_pidfd_getfd, j->pidfd, fd, 0);
	return r < 0 ? -errno : r;
}

/* Reads go through process_vm_readv; the caller checks ID_VALID afterwards, which proves the
 * task (so the pid) was still the notifying one while we read. */
static int job_read(const struct job *j, uint64_t addr, void *buf, size_t len)
{
	if (j->mem < 0) {
		struct iovec l = {buf, len}, r = {(void *)(uintptr_t)addr, len};
		ssize_t n = process_vm_readv(j->pid, &l, 1, &r, 1, 0);
		return n == (ssize_t)len ? 0 : -EFAULT;
	}
	ssize_t n = ck_pread_full(j->mem, buf, len, (off_t)addr);
	if (n < 0 || (size_t)n != len)
		return -EFAULT;
	return 0;
}

static int job_write(const struct job *j, uint64_t addr, const void *buf, size_t len)
{
	return ck_pwrite_full(j->mem, buf, len, (off_t)addr) < 0 ? -EFAULT : 0;
}

/* FD_CLOEXEC is per fd, invisible through a duplicate: fdinfo shows it in "flags". */
static bool job_fd_cloexec(pid_t pid, int fd)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, fd);
	_cleanup_close_ int f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return false;
	ssize_t n = read(f, buf, sizeof(buf) - 1);
	if (n <= 0)
		return false;
	buf[n] = 0;
	const char *p = strstr(buf, "flags:");
	unsigned long fl = p ? strtoul(p + 6, NULL, 8) : 0;
	return fl & O_CLOEXEC;
}

static int sockopt_int(int fd, int level, int name, int *ret)
{
	socklen_t l = sizeof(*ret);
	return getsockopt(fd, level, name, ret, &l) < 0 ? -errno : 0;
}

struct sock_kind {
	int domain, type, protocol;
};

static int sock_kind(int fd, struct sock_kind *k)
{
	int r = sockopt_int(fd, SOL_SOCKET, SO_DOMAIN, &k->domain);
	if (r >= 0)
		r = sockopt_int(fd, SOL_SOCKET, SO_TYPE, &k->type);
	if (r >= 0)
		r = sockopt_int(fd, SOL_SOCKET, SO_PROTOCOL, &k->protocol);
	return r;
}

static bool kind_is_tcp(const struct sock_kind *k)
{
	return (k->domain == AF_INET || k->domain == AF_INET6) && k->type == SOCK_STREAM &&
	       (k->protocol == IPPROTO_TCP || k->protocol == IPPROTO_MPTCP);
}

/* A TCP socket in state CLOSE may still be one that was connected (its connection reset, or
 * its session ended): the kernel answers a connect() on it EISCONN, and on one whose
 * non-blocking connect failed the error (then it may connect again). Only the socket's own
 * state says which, so ask the kernel with an address too short for any connect: it checks
 * that state first and answers EISCONN or the error, and for a socket that may connect it
 * fails the length with EINVAL before anything is done. Returns 0 (a fresh socket) or the
 * errno to answer. MPTCP connects by another path: not asked. */
static int connected_before(int sock, const struct sock_kind *k)
{
	if (k->protocol != IPPROTO_TCP)
		return 0;
	struct sockaddr probe = {.sa_family = (sa_family_t)k->domain};
	if (connect(sock, &probe, sizeof(probe.sa_family)) == 0)
		return EISCONN; /* cannot happen: no connect takes two bytes */
	return errno == EINVAL ? 0 : errno;
}

/* Options the job set before connect reach the sockets we make: copied when they differ from a
 * fresh socket's default (so autotuned buffers stay autotuned). The defaults are read once. */
const struct np_opt np_passed_opts[] = {
	{SOL_SOCKET, SO_KEEPALIVE},   {SOL_SOCKET, SO_RCVBUF},	  {SOL_SOCKET, SO_SNDBUF},
	{SOL_SOCKET, SO_PRIORITY},    {IPPROTO_TCP, TCP_NODELAY}, {IPPROTO_TCP, TCP_KEEPIDLE},
	{IPPROTO_TCP, TCP_KEEPINTVL}, {IPPROTO_TCP, TCP_KEEPCNT}, {IPPROTO_TCP, TCP_USER_TIMEOUT},
	{IPPROTO_TCP, TCP_SYNCNT},    {IPPROTO_IP, IP_TOS},	  {IPPROTO_IPV6, IPV6_TCLASS},
};
const size_t np_passed_opts_n = CK_ARRAY_SIZE(np_passed_opts);
static int opt_default[2][CK_ARRAY_SIZE(np_passed_opts)];
static bool opt_default_known[2][CK_ARRAY_SIZE(np_passed_opts)];

/* The options of the job's socket that differ from a fresh socket's: read once per connect,
 * applied to the upstream and to the leg. */
_Static_assert(CK_ARRAY_SIZE(np_passed_opts) <= NP_PASSED_OPTS_MAX, "np_opt_set too small");

static void read_options(int from, int family, struct np_opt_set *ret)
{
	int fi = np_family_idx(family);
	ret->n = 0;
	for (size_t i = 0; i < CK_ARRAY_SIZE(np_passed_opts); i++) {
		int level = np_passed_opts[i].level, name = np_passed_opts[i].name, v;
		if (level == IPPROTO_IPV6 && family != AF_INET6)
			continue;
		if (!opt_default_known[fi][i]) {
			_cleanup_close_ int fresh = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (fresh < 0 || sockopt_int(fresh, level, name, &opt_default[fi][i]) < 0)
				continue;
			opt_default_known[fi][i] = true;
		}
		if (sockopt_int(from, level, name, &v) < 0 || v == opt_default[fi][i])
			continue;
		if (level == SOL_SOCKET && (name == SO_RCVBUF || name == SO_SNDBUF))
			v /= 2; /* the kernel reports twice what was set */
		ret->o[ret->n].level = level;
		ret->o[ret->n].name = name;
		ret->o[ret->n++].v = v;
	}
}

void np_opts_apply(const struct np_opt_set *set, int to)
{
	for (size_t i = 0; i < set->n; i++)
		(void)setsockopt(to, set->o[i].level, set->o[i].name, &set->o[i].v,
				 sizeof(set->o[i].v));
}

static bool addr_unspecified(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
	return a->ss_family == AF_INET6 &&
	       IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

static socklen_t addr_len(int family)
{
	return family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* Validate the copied sockaddr for TCP socket @sock of @family, in the kernel's order
 * (tcp_v4_connect, tcp_v6_connect): the length of the socket's own address type, then the
 * family, then a v4-mapped address on an IPV6_V6ONLY socket (AF_UNSPEC is the caller's, before
 * this). Returns 0 or -errno for the job. */
static int normalise_addr(int sock, int family, struct sockaddr_storage *ss, size_t len)
{
	if (len < (family == AF_INET6 ? 24u /* SIN6_LEN_RFC2133 */ : sizeof(struct sockaddr_in)))
		return -EINVAL;
	if (ss->ss_family != family)
		return -EAFNOSUPPORT;
	if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)ss)->sin6_addr)) {
		int v6only = 0;
		socklen_t l = sizeof(v6only);
		if (getsockopt(sock, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &l) == 0 && v6only)
			return -ENETUNREACH;
	}
	if (len < sizeof(struct sockaddr_storage))
		memset((char *)ss + len, 0, sizeof(*ss) - len);
	return 0;
}

/* A job socket bound to a specific address keeps that source address upstream (not its port:
 * the job's own socket still holds it until the answer). Returns whether it was bound at all
 * (address or port), or cannot be told. */
static bool bind_like(int jsock, int us)
{
	struct sockaddr_storage ss;
	socklen_t l = sizeof(ss);
	if (getsockname(jsock, (struct sockaddr *)&ss, &l) < 0)
		return true;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *s4 = (void *)&ss;
		if (s4->sin_addr.s_addr == htonl(INADDR_ANY))
			return s4->sin_port != 0;
		s4->sin_port = 0;
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (void *)&ss;
		if (IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
			return s6->sin6_port != 0;
		s6->sin6_port = 0;
	} else {
		return true;
	}
	(void)bind(us, (struct sockaddr *)&ss, l);
	return true;
}

int np_session_new(struct netproxy *np, int family, struct np_session **ret)
{
	struct np_session *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->np = np;
	s->family = family;
	s->jsock = -1;
	s->ps = (struct np_ep){.kind = NP_EP_PS, .ptr = s, .fd = -1};
	s->us = (struct np_ep){.kind = NP_EP_US, .ptr = s, .fd = -1};
	if (np_ring_init(&s->up, np->cfg.buf_size, 0, 0) < 0 ||
	    np_ring_init(&s->down, np->cfg.buf_size + NP_KEEP, NP_KEEP, 0) < 0) {
		np_ring_free(&s->up);
		free(s);
		return -ENOMEM;
	}
	s->id = np->next_id++;
	s->next = np->sessions;
	if (s->next)
		s->next->prev = s;
	np->sessions = s;
	np->nsessions++;
	*ret = s;
	return 0;
}

static int handle_connect(struct netproxy *np, int nfd, const struct seccomp_notif *req)
{
	int jfd = (int)req->data.args[0];
	uint64_t uaddr = req->data.args[1];
	uint32_t ulen = (uint32_t)req->data.args[2];
	_cleanup_(job_close) struct job j = {.pidfd = -1, .mem = -1};
	int r = job_open(&j, (pid_t)req->pid, nfd, req->id, false);
	if (r == -ENOENT)
		return r; /* gone, or aborted: nothing to answer */
	if (r < 0) {
		/* The task is there but cannot be looked at: never leave it waiting. */
		ck_debug("netproxy: connect of task %d: cannot open it: %s", (int)req->pid,
			 strerror(-r));
		return np_respond(nfd, req->id, 0, EPERM, 0);
	}
	_cleanup_close_ int sock = job_getfd(&j, jfd);
	if (sock < 0)
		return np_respond(nfd, req->id, 0, sock == -EBADF ? EBADF : -sock, 0);
	struct sock_kind k;
	r = sock_kind(sock, &k);
	if (r < 0)
		return np_respond(nfd, req->id, 0, r == -ENOPROTOOPT ? ENOTSOCK : -r, 0);
	if (k.domain != AF_INET && k.domain != AF_INET6)
		return respond_continue(nfd, req->id); /* AF_UNIX & co.: see docs/net.md */

	struct sockaddr_storage ss = {0};
	if (ulen > sizeof(ss) || ulen < sizeof(sa_family_t))
		return np_respond(nfd, req->id, 0, EINVAL, 0);
	if (job_read(&j, uaddr, &ss, ulen) < 0)
		return np_respond(nfd, req->id, 0, EFAULT, 0);
	if (!np_id_valid(nfd, req->id))
		return -ENOENT;

	if (!kind_is_tcp(&k)) {
		if (k.type != SOCK_DGRAM)
			return respond_continue(nfd, req->id);
		/* UDP: connect the very file we checked, with the address we copied. */
		r = connect(sock, (struct sockaddr *)&ss, ulen) < 0 ? errno : 0;
		return np_respond(nfd, req->id, 0, r, 0);
	}

	struct stat st;
	if (fstat(sock, &st) < 0)
		st.st_ino = 0;
	if (ss.ss_family == AF_UNSPEC) {
		/* Dissolve the association, as the kernel does: a proxied connection is reset
		 * upstream, then the job's very socket is disconnected (from its leg) and may
		 * connect again. */
		struct np_session *old = st.st_ino ? np_session_by_ino(np, st.st_ino) : NULL;
		if (old)
			np_session_destroy(old, true);
		r = connect(sock, (struct sockaddr *)&ss, ulen) < 0 ? errno : 0;
		return np_respond(nfd, req->id, 0, r, 0);
	}
	if (st.st_ino && np_session_by_ino(np, st.st_ino))
		return np_respond(nfd, req->id, 0, EISCONN, 0);
	struct tcp_info ti;
	socklen_t til = sizeof(ti);
	if (getsockopt(sock, IPPROTO_TCP, TCP_INFO, &ti, &til) == 0 && ti.tcpi_state != TCP_CLOSE)
		return np_respond(nfd, req->id, 0,
				  ti.tcpi_state == TCP_SYN_SENT ? EALREADY : EISCONN, 0);
	r = connected_before(sock, &k);
	if (r != 0)
		return np_respond(nfd, req->id, 0, r, 0);
	r = normalise_addr(sock, k.domain, &ss, ulen);
	if (r < 0)
		return np_respond(nfd, req->id, 0, -r, 0);
	if (np->nsessions >= np->cfg.max_sessions) {
		ck_debug("netproxy: session limit %u reached, connect refused with EAGAIN",
			 np->cfg.max_sessions);
		np->nrefused_limit++;
		return np_respond(nfd, req->id, 0, EAGAIN, 0);
	}

	struct np_session *s = NULL;
	r = np_session_new(np, k.domain, &s);
	if (r < 0)
		return np_respond(nfd, req->id, 0, -r, 0);
	np->nconnects++;
	s->peer = ss;
	s->notify_fd = nfd;
	s->notif_id = req->id;
	s->job_fd = jfd;
	int fl = fcntl(sock, F_GETFL);
	s->job_nonblock = fl >= 0 && (fl & O_NONBLOCK);
	s->job_tid = j.pid;
	s->leg_ino = st.st_ino; /* the job's own socket, if np_leg_attach_job connects it */
	s->answer_pending = true;
	s->deadline_ns = ck_now_ns() + (uint64_t)np->cfg.nonblock_wait_ms * 1000000u;

	s->us.fd = socket(k.domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (s->us.fd < 0) {
		r = errno;
		np_session_destroy(s, false); /* answers ECONNABORTED */
		return -r;
	}
	read_options(sock, k.domain, &s->opts);
	np_opts_apply(&s->opts, s->us.fd);
	/* MPTCP: its checkpoint counters are the leg's TCP ones only on a leg of ours. */
	s->needs_leg = bind_like(sock, s->us.fd) || k.protocol != IPPROTO_TCP;
	s->jsock = TAKE_FD(sock);
	np_upstream_connect(s);
	return 0;
}

void np_upstream_connect(struct np_session *s)
{
	s->connecting = true;
	if (connect(s->us.fd, (struct sockaddr *)&s->peer, addr_len(s->family)) == 0) {
		np_connect_complete(s, 0);
		return;
	}
	if (errno != EINPROGRESS) {
		np_connect_complete(s, errno);
		return;
	}
	/* Loopback and fast networks complete at once: save a trip through epoll. */
	struct pollfd p = {.fd = s->us.fd, .events = POLLOUT};
	if (poll(&p, 1, 0) == 1) {
		int err = 0;
		socklen_t el = sizeof(err);
		if (getsockopt(s->us.fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			err = errno;
		np_connect_complete(s, err);
		return;
	}
	int r = np_ep_set(s->np, &s->us, EPOLLOUT);
	if (r < 0) {
		np_connect_complete(s, -r);
		return;
	}
	np_timer_arm(s->np);
}

static void answer(struct np_session *s, int err)
{
	(void)np_respond(s->notify_fd, s->notif_id, 0, err, 0);
	s->answer_pending = false;
	if (s->jsock >= 0) {
		close(s->jsock);
		s->jsock = -1;
	}
}

/* Connect the job's own socket to us and answer; else put a leg at the job's fd number and
 * answer. On failure the session is gone. */
static int install_leg(struct np_session *s, int err_to_report)
{
	struct netproxy *np = s->np;
	int js, ps;
	if (!s->needs_leg && s->leg_ino && s->jsock >= 0 &&
	    np_leg_attach_job(np, s->family, s->jsock, &ps) == 0) {
		answer(s, err_to_report);
		return np_relay_start(s, ps);
	}
	int r = np_leg_new(np, s->family, &js, &ps);
	if (r < 0) {
		answer(s, r == -ETIMEDOUT ? EAGAIN : -r);
		np_session_destroy(s, true);
		return r;
	}
	np_opts_apply(&s->opts, js);
	if (!s->job_nonblock) {
		int fl = fcntl(js, F_GETFL);
		(void)fcntl(js, F_SETFL, fl & ~O_NONBLOCK);
	}
	struct stat st;
	if (fstat(js, &st) == 0)
		s->leg_ino = st.st_ino;
	struct seccomp_notif_addfd add = {
		.id = s->notif_id,
		.flags = SECCOMP_ADDFD_FLAG_SETFD,
		.srcfd = (uint32_t)js,
		.newfd = (uint32_t)s->job_fd,
		.newfd_flags = job_fd_cloexec(s->job_tid, s->job_fd) ? O_CLOEXEC : 0,
	};
	if (ioctl(s->notify_fd, SECCOMP_IOCTL_NOTIF_ADDFD, &add) < 0) {
		/* ENOENT: the connect() was aborted (signal, freeze, death). Drop cleanly. */
		r = -errno;
		close(js);
		close(ps);
		s->answer_pending = false;
		np_session_destroy(s, true);
		return r;
	}
	close(js); /* the job holds it now; we must not, or its close() would not end it */
	answer(s, err_to_report);
	return np_relay_start(s, ps);
}

void np_connect_complete(struct np_session *s, int err)
{
	struct netproxy *np = s->np;
	s->connecting = false;
	/* Reset after the handshake (a server that accepts and resets at once): a direct
	 * connect() succeeds and the first use fails, so the job gets its leg and the relay
	 * passes the reset on, rather than an ECONNRESET from connect() itself. */
	if (err == ECONNRESET) {
		err = 0;
		s->peer_reset = true; /* SO_ERROR was its only trace: the relay reads EOF now */
	}
	np_ep_set(np, &s->us, 0);
	if (!err) {
		socklen_t l = sizeof(s->local);
		(void)getsockname(s->us.fd, (struct sockaddr *)&s->local, &l);
		/* A connect to 0.0.0.0 or :: reaches this host: the job's getpeername says where. */
		if (addr_unspecified(&s->peer)) {
			l = sizeof(s->peer);
			(void)getpeername(s->us.fd, (struct sockaddr *)&s->peer, &l);
		}
	}
	if (!s->answer_pending) {
		/* The leg was installed when the non-blocking wait expired. */
		if (err)
			np_session_destroy(s, false); /* the job's leg is reset: ECONNRESET */
		else
			np_relay_pump(s);
		return;
	}
	if (!np_id_valid(s->notify_fd, s->notif_id)) {
		s->answer_pending = false;
		np_session_destroy(s, true);
		return;
	}
	if (!err) {
		(void)install_leg(s, s->job_nonblock ? EINPROGRESS : 0);
		if (np->timer_armed) /* else nothing waits: no walk over the sessions */
			np_timer_arm(np);
		return;
	}
	int js;
	if (s->job_nonblock && err == ECONNREFUSED && np_leg_refused(np, s->family, &js) == 0) {
		/* A socket whose own connect was refused: the job's poll sees it writable and
		 * SO_ERROR says ECONNREFUSED, as on a real non-blocking connect. */
		struct seccomp_notif_addfd add = {
			.id = s->notif_id,
			.flags = SECCOMP_ADDFD_FLAG_SETFD,
			.srcfd = (uint32_t)js,
			.newfd = (uint32_t)s->job_fd,
			.newfd_flags = job_fd_cloexec(s->job_tid, s->job_fd) ? O_CLOEXEC : 0,
		};
		if (ioctl(s->notify_fd, SECCOMP_IOCTL_NOTIF_ADDFD, &add) >= 0)
			err = EINPROGRESS; /* ADDFD returns the fd number */
		close(js);
	}
	answer(s, err);
	np_session_destroy(s, false);
	np_timer_arm(np);
}

void np_connect_expire(struct np_session *s)
{
	/* The job's non-blocking connect has waited long enough: give it the leg now and let
	 * the upstream finish in the background (a later failure reaches it as a reset). */
	(void)install_leg(s, EINPROGRESS);
}

static int handle_fastopen(int nfd, const struct seccomp_notif *req)
{
	_cleanup_(job_close) struct job j = {.pidfd = -1, .mem = -1};
	int r = job_open(&j, (pid_t)req->pid, nfd, req->id, false);
	if (r == -ENOENT)
		return r;
	if (r < 0) /* never CONTINUE what could be an implicit TCP connect */
		return np_respond(nfd, req->id, 0, EOPNOTSUPP, 0);
	_cleanup_close_ int sock = job_getfd(&j, (int)req->data.args[0]);
	struct sock_kind k;
	if (sock >= 0 && sock_kind(sock, &k) == 0 && kind_is_tcp(&k))
		/* What the kernel answers when TCP Fast Open is disabled for clients: callers
		 * fall back to connect(), which we proxy. */
		return np_respond(nfd, req->id, 0, EOPNOTSUPP, 0);
	return respond_continue(nfd, req->id);
}

static int handle_name(struct netproxy *np, int nfd, const struct seccomp_notif *req)
{
	_cleanup_(job_close) struct job j = {.pidfd = -1, .mem = -1};
	int r = job_open(&j, (pid_t)req->pid, nfd, req->id, true);
	if (r < 0) /* aborted (then the answer fails harmlessly), or not ours to look at */
		return respond_continue(nfd, req->id);
	_cleanup_close_ int sock = job_getfd(&j, (int)req->data.args[0]);
	struct stat st;
	struct np_session *s = NULL;
	if (sock >= 0 && fstat(sock, &st) == 0)
		s = np_session_by_ino(np, st.st_ino);
	if (!s) /* not ours: the kernel answers (no side effect, so no race to fear) */
		return respond_continue(nfd, req->id);
	const struct sockaddr_storage *a = req->data.nr == SYS_getpeername ? &s->peer : &s->local;
	int32_t len;
	if (job_read(&j, req->data.args[2], &len, sizeof(len)) < 0)
		return np_respond(nfd, req->id, 0, EFAULT, 0);
	if (len < 0)
		return np_respond(nfd, req->id, 0, EINVAL, 0);
	int32_t full = (int32_t)addr_len(a->ss_family);
	if (job_write(&j, req->data.args[1], a, (size_t)CK_MIN(len, full)) < 0 ||
	    job_write(&j, req->data.args[2], &full, sizeof(full)) < 0)
		return np_respond(nfd, req->id, 0, EFAULT, 0);
	return np_respond(nfd, req->id, 0, 0, 0);
}

/* The session keeps the options the job set, before connect (read_options) and after, for a
 * restored job's new socket (cut.c). */
static void record_option(struct np_opt_set *set, int level, int name, int v)
{
	size_t i = 0;
	while (i < set->n && (set->o[i].level != level || set->o[i].name != name))
		i++;
	if (i == CK_ARRAY_SIZE(set->o))
		return; /* cannot happen: one slot per passed option */
	set->o[i].level = level;
	set->o[i].name = name;
	set->o[i].v = v;
	if (i == set->n)
		set->n++;
}

/* setsockopt of a passed-on option (filter: NETPROXY_FILTER_SOCKOPTS). On a proxied socket the
 * supervisor sets it on the job's socket itself (the kernel validates it and its answer is the
 * job's) and, if that worked, on the upstream, so TCP_NODELAY, keepalive and buffer sizes reach
 * the real connection. Other sockets: CONTINUE (no race matters: the option lands on whatever
 * socket the fd names when the kernel runs the call, as without us). */
static int handle_sockopt(struct netproxy *np, int nfd, const struct seccomp_notif *req)
{
	_cleanup_(job_close) struct job j = {.pidfd = -1, .mem = -1};
	if (job_open(&j, (pid_t)req->pid, nfd, req->id, false) < 0)
		return respond_continue(nfd, req->id); /* as handle_name */
	_cleanup_close_ int sock = job_getfd(&j, (int)req->data.args[0]);
	struct stat st;
	struct np_session *s = NULL;
	if (sock >= 0 && fstat(sock, &st) == 0)
		s = np_session_by_ino(np, st.st_ino);
	if (!s)
		return respond_continue(nfd, req->id);
	int level = (int)req->data.args[1], name = (int)req->data.args[2];
	/* Every passed option is an int (or smaller); the kernel reads no more than that. */
	uint8_t buf[16] = {0};
	uint32_t ulen = (uint32_t)req->data.args[4];
	size_t len = CK_MIN((size_t)ulen, sizeof(buf));
	if (len && job_read(&j, req->data.args[3], buf, len) < 0)
		return np_respond(nfd, req->id, 0, EFAULT, 0);
	if (!np_id_valid(nfd, req->id))
		return -ENOENT;
	if (setsockopt(sock, level, name, len ? buf : NULL, (socklen_t)len) < 0)
		return np_respond(nfd, req->id, 0, errno, 0);
	int v = 0;
	if (len >= sizeof(v))
		memcpy(&v, buf, sizeof(v));
	else if (len)
		v = buf[0]; /* IP_TOS and IPV6_TCLASS take a byte too */
	record_option(&s->opts, level, name, v);
	if (s->us.fd >= 0 && setsockopt(s->us.fd, level, name, buf, (socklen_t)len) < 0)
		ck_debug("netproxy: session %u: option %d/%d not applied upstream: %m", s->id,
			 level, name);
	return np_respond(nfd, req->id, 0, 0, 0);
}

int np_notify_handle(struct netproxy *np, struct np_listener *l)
{
	_cleanup_free_ struct seccomp_notif *req = calloc(1, np->notif_size);
	if (!req)
		return -ENOMEM;
	if (ioctl(l->ep.fd, SECCOMP_IOCTL_NOTIF_RECV, req) < 0)
		return -errno; /* ENOENT: the task went away before we took it */
	int nfd = l->ep.fd;
	if (req->data.arch != AUDIT_ARCH_X86_64)
		return np_respond(nfd, req->id, 0, ENOSYS, 0);
	switch (req->data.nr) {
	case SYS_connect:
		return handle_connect(np, nfd, req);
	case SYS_sendto:
	case SYS_sendmsg:
	case SYS_sendmmsg:
		return handle_fastopen(nfd, req);
	case SYS_getpeername:
	case SYS_getsockname:
		return handle_name(np, nfd, req);
	case SYS_setsockopt:
		return handle_sockopt(np, nfd, req);
	default:
		return respond_continue(nfd, req->id);
	}
}
