/* Pipes and sockets at checkpoint time (docs/fds.md):
 *   - pipes: the buffered bytes are copied with tee(2), which duplicates pipe buffers without
 *     consuming them, from a second read end opened through /proc/PID/fd/N;
 *   - unix sockets: the receive queue read with MSG_PEEK from an SO_PEEK_OFF of 0, the offset
 *     put back afterwards; the peer and a listener's backlog from NETLINK_SOCK_DIAG;
 *   - TCP: listeners and unconnected sockets (address, options that differ from a fresh
 *     socket's, backlog); a connection the job accepted (its local address and port are a
 *     listener's) is refused, other connected ones are the proxy's legs, handed over at
 *     restore. */
#include "common/grow.h"
#include "restore/fds-internal.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

/* A connection waiting in a listener's accept queue lives in the kernel only: it cannot be
 * recreated, and dropping it would reset a client silently. */
#define PENDING_MSG                                                                              \
	"fd %d is a listening %s socket with %u connection(s) not accepted yet; they cannot be " \
	"checkpointed: retry once the job has accepted them"

/* ---- pipes -------------------------------------------------------------------------- */

/* Copy the bytes buffered in the pipe of image fd @f without consuming them: a new read end
 * (opened through /proc, O_NONBLOCK: never waits for a writer) is tee'd into a pipe of ours
 * of the same size, which is then read. */
static int pipe_data(pid_t pid, int dup, struct restore_fd *f, struct restore_err *err)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/fd/%d", (int)pid, f->fd);
	_cleanup_close_ int rd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (rd < 0)
		return -errno;
	int avail = 0;
	if (ioctl(rd, FIONREAD, &avail) < 0)
		return -errno;
	if (avail <= 0)
		return 0;
	if ((unsigned)avail > IMG_MAX_FD_DATA)
		REFUSE(err,
		       "fd %d (pipe) holds %d bytes, more than a checkpoint keeps (%u); drain it "
		       "first",
		       f->fd, avail, IMG_MAX_FD_DATA);
	int tp[2];
	if (pipe2(tp, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	_cleanup_close_ int tr = tp[0], tw = tp[1];
	int size = fcntl(dup, F_GETPIPE_SZ);
	if (size > 0 && fcntl(tw, F_SETPIPE_SZ, size) < 0 && errno != EPERM)
		return -errno;
	ssize_t n = tee(rd, tw, (size_t)avail, SPLICE_F_NONBLOCK);
	if (n != avail)
		REFUSE(err,
		       "fd %d (pipe): cannot copy its %d buffered bytes (tee copied %zd); "
		       "drain the pipe before the checkpoint",
		       f->fd, avail, n);
	if (!(f->st.data = malloc((size_t)avail)))
		return -ENOMEM;
	int r = ck_read_full(tr, f->st.data, (size_t)avail);
	if (r < 0)
		return r;
	f->st.data_len = (uint64_t)avail;
	f->st.flags |= RESTORE_FDS_F_DATA;
	return 0;
}

/* Group the pipe fds by pipe; mark a pipe one of whose ends is held outside the job; copy the
 * buffered bytes of the others into the state of their first fd. */
int dump_pipes_state(pid_t pid, int pidfd, struct restore_image *img, struct restore_err *err)
{
	for (size_t i = 0; i < img->nfds; i++) {
		struct restore_fd *f = &img->fds[i];
		if (f->kind != RESTORE_FD_PIPE || f->st.dup_of >= 0)
			continue;
		bool first = true, rd = false, wr = false;
		for (size_t j = 0; j < img->nfds; j++) {
			const struct restore_fd *g = &img->fds[j];
			if (g->kind != RESTORE_FD_PIPE || g->ident.ino != f->ident.ino ||
			    g->ident.dev != f->ident.dev)
				continue;
			first &= j >= i;
			rd |= (g->flags & O_ACCMODE) != O_WRONLY;
			wr |= (g->flags & O_ACCMODE) != O_RDONLY;
		}
		if (!first)
			continue;
		_cleanup_close_ int dup = dump_fd_getfd(pidfd, f->fd);
		if (dup < 0)
			return dup;
		int size = fcntl(dup, F_GETPIPE_SZ);
		f->st.value = size > 0 ? (uint64_t)size : 0;
		bool fifo = f->target[0] == '/';
		if (!fifo && !(rd && wr)) {
			/* The missing end is gone (a reader sees EOF: POLLHUP; a writer EPIPE:
			 * POLLERR) or held outside the job. */
			struct pollfd pf = {.fd = dup, .events = rd ? POLLIN : POLLOUT};
			if (poll(&pf, 1, 0) < 0)
				return -errno;
			if (!(pf.revents & (rd ? POLLHUP : POLLERR))) {
				for (size_t j = 0; j < img->nfds; j++)
					if (img->fds[j].kind == RESTORE_FD_PIPE &&
					    img->fds[j].ident.ino == f->ident.ino)
						img->fds[j].st.flags |= RESTORE_FDS_F_PEER_OUT;
				continue;
			}
			if (!rd)
				continue; /* nobody can read what is left: nothing to keep */
		}
		int r = pipe_data(pid, dup, f, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- sockets ------------------------------------------------------------------------ */

struct optdef {
	int level, name;
	bool tcp, v4, v6;
};
static const struct optdef sockopts[] = {
	{SOL_SOCKET, SO_REUSEADDR, 0, 0, 0},	  {SOL_SOCKET, SO_REUSEPORT, 0, 0, 0},
	{SOL_SOCKET, SO_KEEPALIVE, 0, 0, 0},	  {SOL_SOCKET, SO_RCVBUF, 0, 0, 0},
	{SOL_SOCKET, SO_SNDBUF, 0, 0, 0},	  {SOL_SOCKET, SO_RCVLOWAT, 0, 0, 0},
	{SOL_SOCKET, SO_PASSCRED, 0, 0, 0},	  {SOL_SOCKET, SO_OOBINLINE, 0, 0, 0},
	{SOL_SOCKET, SO_PRIORITY, 0, 0, 0},	  {IPPROTO_TCP, TCP_NODELAY, 1, 0, 0},
	{IPPROTO_TCP, TCP_DEFER_ACCEPT, 1, 0, 0}, {IPPROTO_TCP, TCP_KEEPIDLE, 1, 0, 0},
	{IPPROTO_TCP, TCP_KEEPINTVL, 1, 0, 0},	  {IPPROTO_TCP, TCP_KEEPCNT, 1, 0, 0},
	{IPPROTO_TCP, TCP_USER_TIMEOUT, 1, 0, 0}, {IPPROTO_TCP, TCP_FASTOPEN, 1, 0, 0},
	{IPPROTO_IPV6, IPV6_V6ONLY, 0, 0, 1},	  {IPPROTO_IP, IP_TOS, 0, 1, 0},
	{IPPROTO_IP, IP_FREEBIND, 0, 1, 0},
};

/* The option values of a fresh socket of @st's kind, made once per kind. */
static const struct dump_fresh *fresh_defaults(struct dump_sockets *ds,
					       const struct restore_fd_state *st)
{
	for (size_t i = 0; i < ds->nfresh; i++)
		if (ds->fresh[i].family == st->family && ds->fresh[i].type == st->type &&
		    ds->fresh[i].protocol == st->protocol)
			return &ds->fresh[i];
	_cleanup_close_ int s = socket(st->family, st->type | SOCK_CLOEXEC, st->protocol);
	if (s < 0)
		return NULL;
	struct dump_fresh d = {.family = st->family, .type = st->type, .protocol = st->protocol};
	for (size_t i = 0; i < CK_ARRAY_SIZE(sockopts); i++) {
		socklen_t l = sizeof(d.val[i]);
		d.ok[i] = getsockopt(s, sockopts[i].level, sockopts[i].name, &d.val[i], &l) == 0;
	}
	size_t slot = ds->nfresh < DUMP_FRESH_CACHE ? ds->nfresh++ : DUMP_FRESH_CACHE - 1;
	ds->fresh[slot] = d;
	return &ds->fresh[slot];
}

/* The options of @s that differ from those of a fresh socket of the same kind. */
static int sock_opts(int s, struct restore_fd_state *st, struct dump_sockets *ds)
{
	_Static_assert(CK_ARRAY_SIZE(sockopts) == DUMP_SOCKOPTS_N, "DUMP_SOCKOPTS_N");
	const struct dump_fresh *fresh = fresh_defaults(ds, st);
	if (!fresh)
		return -errno;
	bool tcp = st->family != AF_UNIX && st->type == SOCK_STREAM;
	for (size_t i = 0; i < CK_ARRAY_SIZE(sockopts); i++) {
		const struct optdef *o = &sockopts[i];
		if ((o->tcp && !tcp) || (o->v4 && st->family != AF_INET) ||
		    (o->v6 && st->family != AF_INET6) || !fresh->ok[i])
			continue;
		int a = 0;
		socklen_t la = sizeof(a);
		if (getsockopt(s, o->level, o->name, &a, &la) < 0 || a == fresh->val[i])
			continue;
		if (st->nopts == RESTORE_SOCKOPT_MAX)
			return -E2BIG;
		st->opts[st->nopts++] = (struct restore_sockopt){o->level, o->name, a};
	}
	return 0;
}

/* The receive queue of unix socket @s, peeked from offset 0 on (SO_PEEK_OFF advances over
 * what each peek returned); the job's peek offset is put back. */
static int unix_peek(int s, struct restore_fd *f, struct restore_err *err)
{
	struct restore_fd_state *st = &f->st;
	int old = -1, zero = 0;
	socklen_t ol = sizeof(old);
	if (getsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &old, &ol) < 0 ||
	    setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)) < 0)
		return -errno;
	bool dgram = st->type != SOCK_STREAM;
	size_t cap = 0, mcap = 0, chunk = 1u << 20;
	_cleanup_free_ uint8_t *buf = malloc(chunk);
	int r = buf ? 0 : -ENOMEM;
	while (r == 0) {
		union {
			struct cmsghdr h;
			uint8_t b[256];
		} ctl;
		struct iovec iov = {buf, chunk};
		struct msghdr m = {.msg_iov = &iov,
				   .msg_iovlen = 1,
				   .msg_control = &ctl,
				   .msg_controllen = sizeof(ctl)};
		ssize_t n = recvmsg(s, &m, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
		if (n < 0) {
			r = errno == EAGAIN ? 1 : -errno;
			break;
		}
		bool fds = (m.msg_flags & MSG_CTRUNC) != 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				fds = true;
				int *v = (int *)CMSG_DATA(c);
				for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				     k++)
					close(v[k]);
			}
		if (fds) {
			snprintf(err->msg, sizeof(err->msg),
				 "fd %d is a unix socket with file descriptors in flight "
				 "(SCM_RIGHTS); receive them before the checkpoint",
				 f->fd);
			r = -EOPNOTSUPP;
			break;
		}
		if (n == 0 && !dgram)
			break; /* end of stream */
		if ((size_t)n > chunk || (n == 0 && dgram) ||
		    st->data_len + (size_t)n > IMG_MAX_FD_DATA || st->nmsgs == IMG_MAX_FD_SUBS) {
			snprintf(err->msg, sizeof(err->msg),
				 "fd %d (unix socket): its receive queue is too large or holds an "
				 "empty datagram; drain it before the checkpoint",
				 f->fd);
			r = -EOPNOTSUPP;
			break;
		}
		r = CK_GROW(st->data, cap, st->data_len + (size_t)n);
		if (r == 0 && dgram)
			r = CK_GROW(st->msg_len, mcap, st->nmsgs + 1);
		if (r < 0)
			break;
		memcpy(st->data + st->data_len, buf, (size_t)n);
		st->data_len += (size_t)n;
		if (dgram)
			st->msg_len[st->nmsgs++] = (uint32_t)n;
	}
	setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &old, sizeof(old));
	return r < 0 ? r : 0;
}

/* A unix socket connected to one outside the job. A datagram socket connected to a named one
 * (syslog's /dev/log) is connected again by name at restore; its queue comes back sent to its
 * own name, so an unnamed one with bytes queued cannot. Anything else is handed over. */
static int unix_outside(int s, struct restore_fd *f, struct restore_err *err)
{
	struct restore_fd_state *st = &f->st;
	struct sockaddr_un pa;
	socklen_t pl = sizeof(pa);
	if (st->type != SOCK_DGRAM || getpeername(s, (struct sockaddr *)&pa, &pl) < 0 ||
	    pl <= sizeof(sa_family_t) || pl > sizeof(st->peer)) {
		st->flags |= RESTORE_FDS_F_PEER_OUT;
		return 0;
	}
	int r = unix_peek(s, f, err);
	if (r < 0)
		return r;
	if (st->data_len && st->addr_len <= sizeof(sa_family_t)) {
		st->flags |= RESTORE_FDS_F_PEER_OUT;
		return 0;
	}
	memcpy(st->peer, &pa, pl);
	st->peer_len = pl;
	st->flags |= RESTORE_FDS_F_RECONNECT;
	return 0;
}

static int unix_state(int s, const struct restore_image *img, struct restore_fd *f,
		      struct dump_sockets *ds, struct restore_err *err)
{
	struct restore_fd_state *st = &f->st;
	struct sockdiag_unix d;
	if (ds->diag < 0 && (ds->diag = sockdiag_open()) < 0) {
		int r = ds->diag;
		ds->diag = -1;
		snprintf(err->msg, sizeof(err->msg), "fd %d (unix socket): sock_diag: %s", f->fd,
			 strerror(-r));
		return r;
	}
	int r = sockdiag_unix_get(ds->diag, f->ident.ino, &d);
	if (r < 0) {
		snprintf(err->msg, sizeof(err->msg), "fd %d (unix socket): sock_diag: %s", f->fd,
			 strerror(-r));
		return r;
	}
	if (d.state == TCP_LISTEN) {
		if (d.rqueue)
			REFUSE(err, PENDING_MSG, f->fd, "unix", d.rqueue);
		st->sock_state = RESTORE_SOCK_LISTEN;
		st->value = d.wqueue;
		return 0;
	}
	st->peer_ino = d.peer_ino;
	st->flags |= (d.shutdown & 1 ? RESTORE_FDS_F_SHUT_RD : 0) |
		     (d.shutdown & 2 ? RESTORE_FDS_F_SHUT_WR : 0);
	if (d.peer_ino) {
		st->sock_state = RESTORE_SOCK_CONNECTED;
		bool in = false;
		for (size_t i = 0; i < img->nfds; i++)
			in |= img->fds[i].kind == RESTORE_FD_SOCKET &&
			      img->fds[i].ident.ino == d.peer_ino;
		if (!in)
			return unix_outside(s, f, err);
	} else {
		st->sock_state = d.state == TCP_ESTABLISHED ? RESTORE_SOCK_CONNECTED
							    : RESTORE_SOCK_UNCONNECTED;
	}
	return unix_peek(s, f, err);
}

/* The listener's address is the socket's own, or the wildcard. */
static bool same_or_any(const struct restore_fd_state *st, const struct sockdiag_listener *l)
{
	static const uint8_t any[16];
	if (l->family != st->family)
		return false;
	size_t n = st->family == AF_INET ? 4 : 16;
	const uint8_t *a =
		st->family == AF_INET
			? (const uint8_t *)&((const struct sockaddr_in *)(const void *)st->addr)
				  ->sin_addr
			: (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)st->addr)
				  ->sin6_addr;
	return !memcmp(l->addr, any, n) || !memcmp(l->addr, a, n);
}

static int inet_state(int s, struct restore_fd *f, const struct sockdiag_listener *ls, size_t nls,
		      struct restore_err *err)
{
	struct restore_fd_state *st = &f->st;
	const char *fam = st->family == AF_INET ? "" : "v6 ";
	if (st->type != SOCK_STREAM || st->protocol != IPPROTO_TCP)
		REFUSE(err,
		       "fd %d is a%s %s socket; only listening TCP sockets, unconnected ones and "
		       "unix sockets can be checkpointed",
		       f->fd, st->type == SOCK_DGRAM ? " UDP" : "n IP",
		       st->family == AF_INET ? "IPv4" : "IPv6");
	struct tcp_info ti;
	socklen_t tl = sizeof(ti);
	if (getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &tl) < 0)
		return -errno;
	uint16_t port = st->family == AF_INET ? ntohs(((struct sockaddr_in *)st->addr)->sin_port)
					      : ntohs(((struct sockaddr_in6 *)st->addr)->sin6_port);
	if (ti.tcpi_state == TCP_LISTEN) {
		/* for a listener TCP_INFO reports the accept queue: unacked is its length,
		 * sacked its bound (the backlog) */
		if (ti.tcpi_unacked)
			REFUSE(err, PENDING_MSG, f->fd, "TCP", ti.tcpi_unacked);
		st->sock_state = RESTORE_SOCK_LISTEN;
		st->value = ti.tcpi_sacked;
		for (size_t i = 0; i < nls; i++)
			if (ls[i].ino == f->ident.ino)
				st->value = ls[i].backlog;
		return 0;
	}
	if (ti.tcpi_state == TCP_CLOSE) {
		st->sock_state = RESTORE_SOCK_UNCONNECTED;
		return 0;
	}
	for (size_t i = 0; i < nls; i++)
		if (ls[i].port == port && same_or_any(st, &ls[i]))
			REFUSE(err,
			       "fd %d is a connected TCP%s socket the job accepted (local port "
			       "%u); accepted connections cannot be checkpointed: close them first",
			       f->fd, fam[0] ? "v6" : "", port);
	/* a leg of the network proxy: the supervisor hands its successor over */
	st->sock_state = RESTORE_SOCK_CONNECTED;
	st->flags |= RESTORE_FDS_F_PEER_OUT;
	return 0;
}

int dump_socket_state(int pidfd, const struct restore_image *img, struct restore_fd *f,
		      struct dump_sockets *ds, struct restore_err *err)
{
	_cleanup_close_ int s = dump_fd_getfd(pidfd, f->fd);
	if (s < 0)
		return s;
	struct restore_fd_state *st = &f->st;
	socklen_t l = sizeof(int);
	if (getsockopt(s, SOL_SOCKET, SO_DOMAIN, &st->family, &l) < 0 ||
	    getsockopt(s, SOL_SOCKET, SO_TYPE, &st->type, &l) < 0 ||
	    getsockopt(s, SOL_SOCKET, SO_PROTOCOL, &st->protocol, &l) < 0)
		return -errno;
	if (st->family != AF_UNIX && st->family != AF_INET && st->family != AF_INET6) {
		int fam = st->family;
		st->family = 0;
		REFUSE(err,
		       "fd %d is a %s socket (family %d); only unix and TCP sockets can be "
		       "checkpointed",
		       f->fd,
		       fam == AF_NETLINK  ? "netlink"
		       : fam == AF_PACKET ? "packet"
					  : "",
		       fam);
	}
	socklen_t al = sizeof(st->addr);
	if (getsockname(s, (struct sockaddr *)st->addr, &al) < 0)
		return -errno;
	st->addr_len = CK_MIN(al, (socklen_t)sizeof(st->addr));
	int r = st->family == AF_UNIX ? unix_state(s, img, f, ds, err)
				      : inet_state(s, f, ds->ls, ds->nls, err);
	if (r == 0 && !(st->flags & RESTORE_FDS_F_PEER_OUT))
		r = sock_opts(s, st, ds);
	return r;
}
