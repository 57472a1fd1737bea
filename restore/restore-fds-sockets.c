/* Pipes, FIFOs and sockets at restore time (docs/fds.md). Both ends of a pipe or socketpair
 * are made at once, when the first of their fds is planned; the bytes that were buffered are
 * written into the new pipe (or sent by the peer) so the job reads them again. A second open
 * file description of one pipe end (not a dup) is a new open of /proc/self/fd/N, as the job's
 * own must have been. */
#include "restore/fds-internal.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

/* ---- pipes and FIFOs ------------------------------------------------------------------ */

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static bool same_pipe(const struct restore_fd *a, const struct restore_fd *b)
{
	return b->kind == RESTORE_FD_PIPE && a->ident.ino == b->ident.ino &&
	       a->ident.dev == b->ident.dev && !strcmp(a->target, b->target);
}

/* A new open file description on the end @acc of the pipe @fd refers to. */
static int reopen_end(int fd, int acc)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	int r = open(p, acc | O_NONBLOCK | O_CLOEXEC);
	return r < 0 ? -errno : r;
}

static int fifo_open(struct rst_ctx *c, const struct restore_fd *f, int acc)
{
	int fd = open(f->target, acc | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return rst_fd_sys_fail(c, f, f->target);
	struct stat st;
	bool dev_ok = (f->ident.flags & RESTORE_IDENT_F_JOB_VFS) != 0;
	if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && st.st_ino == f->ident.ino &&
	    (dev_ok || st.st_dev == f->ident.dev))
		return fd;
	close(fd);
	return rst_fail(c, -ESTALE, "fd %d: %s is another file than the FIFO at checkpoint time",
			f->fd, f->target);
}

int rst_plan_pipe(struct rst_ctx *c, size_t i)
{
	const struct restore_image *img = c->img;
	const struct restore_fd *f = &img->fds[i];
	if (f->st.flags & RESTORE_FDS_F_PEER_OUT)
		return rst_fail(c, -EOPNOTSUPP,
				"fd %d is a pipe whose other end was held outside the job; it "
				"must be handed over",
				f->fd);
	bool fifo = f->target[0] == '/';
	int ends[2] = {-1, -1}, r = 0;
	if (fifo) {
		ends[0] = fifo_open(c, f, O_RDWR); /* reader and writer: no open waits */
		if (ends[0] < 0)
			return ends[0];
		ends[1] = fcntl(ends[0], F_DUPFD_CLOEXEC, 0);
		if (ends[1] < 0)
			r = rst_fd_sys_fail(c, f, "dup");
	} else if (pipe2(ends, O_CLOEXEC) < 0) {
		return rst_fd_sys_fail(c, f, "pipe2");
	}
	/* The size first: the bytes must fit without blocking. Raising it past
	 * pipe-max-size needs CAP_SYS_RESOURCE; the bytes decide whether that matters. */
	if (r == 0 && f->st.value && fcntl(ends[1], F_SETPIPE_SZ, (int)f->st.value) < 0 &&
	    errno != EPERM)
		r = rst_fd_sys_fail(c, f, "F_SETPIPE_SZ");
	for (size_t j = i; j < img->nfds && r == 0; j++) {
		const struct restore_fd *g = &img->fds[j];
		if (!same_pipe(f, g) || !(g->st.flags & RESTORE_FDS_F_DATA) || !g->st.data_len)
			continue;
		if (fcntl(ends[1], F_SETFL, O_NONBLOCK) < 0)
			r = rst_fd_sys_fail(c, g, "F_SETFL");
		else if ((r = write_all(ends[1], g->st.data, g->st.data_len)) < 0)
			r = rst_fail(c, r, "fd %d (pipe): cannot put back its %llu bytes: %s",
				     g->fd, (unsigned long long)g->st.data_len, strerror(-r));
	}
	bool used[2] = {false, false};
	for (size_t j = i; j < img->nfds && r == 0; j++) {
		const struct restore_fd *g = &img->fds[j];
		if (!same_pipe(f, g) || g->st.dup_of >= 0 || c->fds[j].tmp >= 0 || g->fd <= 2)
			continue;
		int acc = (int)g->flags & O_ACCMODE, e = acc == O_RDONLY ? 0 : 1;
		int fd = fifo	   ? fifo_open(c, g, acc)
			 : used[e] ? reopen_end(ends[e], acc)
				   : fcntl(ends[e], F_DUPFD_CLOEXEC, 0);
		if (fd < 0 && !fifo)
			r = rst_fd_sys_fail(c, g, "reopen");
		else
			r = fd < 0 ? fd : rst_fd_take(c, j, fd);
		used[e] = true;
	}
	close(ends[0]);
	close(ends[1]);
	return r;
}

/* ---- sockets ------------------------------------------------------------------------ */

static int set_opts(struct rst_ctx *c, const struct restore_fd *f, int s)
{
	for (uint32_t k = 0; k < f->st.nopts; k++) {
		const struct restore_sockopt *o = &f->st.opts[k];
		int v = o->value;
		/* the kernel doubles what it is given, and reports the doubled value */
		if (o->level == SOL_SOCKET && (o->name == SO_RCVBUF || o->name == SO_SNDBUF))
			v /= 2;
		if (setsockopt(s, o->level, o->name, &v, sizeof(v)) < 0)
			return rst_fail(c, -errno,
					"fd %d (socket): cannot set option %d/%d to %d: %s", f->fd,
					o->level, o->name, o->value, strerror(errno));
	}
	return 0;
}

/* A path name is bound again: a socket file left by the dead job (in the rolled-back /tmp,
 * say) that nobody listens on is removed first. Relative names are the job's cwd's. */
static int bind_addr(struct rst_ctx *c, const struct restore_fd *f, int s)
{
	const struct restore_fd_state *st = &f->st;
	struct sockaddr_storage ss = {0};
	socklen_t len = st->addr_len;
	memcpy(&ss, st->addr, CK_MIN(len, sizeof(ss)));
	if (st->family == AF_UNIX && len > sizeof(sa_family_t)) {
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;
		if (un->sun_path[0] && un->sun_path[0] != '/') {
			const char *cwd = c->img->proc.cwd ? c->img->proc.cwd : "/";
			char full[sizeof(un->sun_path) + 1];
			int n = snprintf(full, sizeof(full), "%s/%s", cwd, un->sun_path);
			if (n < 0 || (size_t)n >= sizeof(un->sun_path))
				return rst_fail(c, -ENAMETOOLONG,
						"fd %d: socket name %s relative to %s is too long",
						f->fd, un->sun_path, cwd);
			memcpy(un->sun_path, full, (size_t)n + 1);
			len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
		}
		if (bind(s, (struct sockaddr *)&ss, len) == 0)
			return 0;
		struct stat sb;
		int e = errno;
		if (e == EADDRINUSE && un->sun_path[0] && stat(un->sun_path, &sb) == 0 &&
		    S_ISSOCK(sb.st_mode)) {
			_cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (probe >= 0 && connect(probe, (struct sockaddr *)&ss, len) < 0 &&
			    errno == ECONNREFUSED && unlink(un->sun_path) == 0 &&
			    bind(s, (struct sockaddr *)&ss, len) == 0)
				return 0;
		}
		return rst_fail(c, -e, "fd %d (unix socket): cannot bind it again to %s%s: %s",
				f->fd, un->sun_path[0] ? "" : "@",
				un->sun_path[0] ? un->sun_path : un->sun_path + 1, strerror(e));
	}
	if (bind(s, (struct sockaddr *)&ss, len) == 0)
		return 0;
	int e = errno;
	char host[64] = "?";
	unsigned port = 0;
	if (st->family == AF_INET) {
		const struct sockaddr_in *in = (const void *)&ss;
		const uint8_t *a = (const uint8_t *)&in->sin_addr;
		snprintf(host, sizeof(host), "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
		port = ntohs(in->sin_port);
	} else {
		port = ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port);
		snprintf(host, sizeof(host), "[ipv6]");
	}
	return rst_fail(c, -e, "fd %d (TCP socket): cannot bind it again to %s:%u: %s", f->fd, host,
			port, strerror(e));
}

static bool bound(const struct restore_fd_state *st)
{
	if (st->family == AF_UNIX)
		return st->addr_len > sizeof(sa_family_t);
	if (st->family == AF_INET)
		return st->addr_len >= sizeof(struct sockaddr_in) &&
		       ((const struct sockaddr_in *)(const void *)st->addr)->sin_port != 0;
	return st->addr_len >= sizeof(struct sockaddr_in6) &&
	       ((const struct sockaddr_in6 *)(const void *)st->addr)->sin6_port != 0;
}

static int send_one(int s, const uint8_t *p, size_t n)
{
	ssize_t w;
	do
		w = send(s, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	return w < 0 ? -errno : (int)w;
}

/* Send what @to had in its receive queue through its new peer @from: message by message for
 * datagram sockets, as one stream otherwise. */
static int refill(struct rst_ctx *c, const struct restore_fd *to, int from)
{
	const struct restore_fd_state *st = &to->st;
	uint64_t off = 0;
	int w = 0;
	for (uint32_t k = 0; k < st->nmsgs && w >= 0; k++, off += st->msg_len[k - 1]) {
		w = send_one(from, st->data + off, st->msg_len[k]);
		if (w >= 0 && (uint32_t)w != st->msg_len[k])
			w = -EMSGSIZE;
	}
	while (!st->nmsgs && off < st->data_len && w >= 0) {
		w = send_one(from, st->data + off, (size_t)(st->data_len - off));
		off += w > 0 ? (uint64_t)w : 0;
	}
	if (w < 0)
		return rst_fail(c, w,
				"fd %d (unix socket): cannot put back its %llu queued bytes: %s",
				to->fd, (unsigned long long)st->data_len, strerror(-w));
	return 0;
}

static int shut(struct rst_ctx *c, const struct restore_fd *f, int s)
{
	bool rd = f->st.flags & RESTORE_FDS_F_SHUT_RD, wr = f->st.flags & RESTORE_FDS_F_SHUT_WR;
	if (!rd && !wr)
		return 0;
	if (shutdown(s, rd && wr ? SHUT_RDWR : rd ? SHUT_RD : SHUT_WR) < 0)
		return rst_fd_sys_fail(c, f, "shutdown");
	return 0;
}

static int plan_pair(struct rst_ctx *c, size_t i)
{
	const struct restore_image *img = c->img;
	const struct restore_fd *f = &img->fds[i], *peer = NULL;
	size_t pj = 0;
	for (size_t j = 0; f->st.peer_ino && j < img->nfds; j++)
		if (img->fds[j].kind == RESTORE_FD_SOCKET && img->fds[j].st.dup_of < 0 &&
		    img->fds[j].ident.ino == f->st.peer_ino) {
			peer = &img->fds[j];
			pj = j;
		}
	if (f->st.peer_ino && !peer)
		return rst_fail(c, -EBADMSG, "fd %d: its peer socket is not in the image", f->fd);
	int sp[2];
	if (socketpair(AF_UNIX, f->st.type | SOCK_CLOEXEC, 0, sp) < 0)
		return rst_fd_sys_fail(c, f, "socketpair");
	int r = set_opts(c, f, sp[0]);
	if (r == 0 && peer)
		r = set_opts(c, peer, sp[1]);
	if (r == 0)
		r = refill(c, f, sp[1]);
	if (r == 0 && peer)
		r = refill(c, peer, sp[0]);
	/* after the bytes: a shutdown end cannot send them any more */
	if (r == 0)
		r = shut(c, f, sp[0]);
	if (r == 0 && peer)
		r = shut(c, peer, sp[1]);
	if (r < 0) {
		close(sp[0]);
		close(sp[1]);
		return r;
	}
	r = rst_fd_take(c, i, sp[0]);
	if (peer && peer->fd > 2 && c->fds[pj].tmp < 0) {
		int r2 = rst_fd_take(c, pj, sp[1]);
		r = r < 0 ? r : r2;
	} else {
		close(sp[1]); /* the peer is gone: the job reads the bytes, then end of file */
	}
	return r;
}

/* Datagrams that were queued on a bound unix socket come back sent to its name from an
 * unnamed socket (their sender's address is not kept). */
static int refill_to_name(struct rst_ctx *c, const struct restore_fd *f, int s)
{
	struct sockaddr_storage ss = {0};
	socklen_t len = sizeof(ss);
	if (f->st.family != AF_UNIX || !f->st.nmsgs ||
	    getsockname(s, (struct sockaddr *)&ss, &len) < 0)
		return rst_fail(c, -EOPNOTSUPP,
				"fd %d (socket): bytes queued on an unconnected socket cannot be "
				"put back",
				f->fd);
	int from = socket(AF_UNIX, f->st.type | SOCK_CLOEXEC, 0);
	if (from < 0)
		return rst_fd_sys_fail(c, f, "socket");
	int r = 0;
	uint64_t off = 0;
	for (uint32_t k = 0; k < f->st.nmsgs && r == 0; k++) {
		ssize_t w = sendto(from, f->st.data + off, f->st.msg_len[k], MSG_DONTWAIT,
				   (struct sockaddr *)&ss, len);
		if (w != (ssize_t)f->st.msg_len[k])
			r = rst_fail(
				c, w < 0 ? -errno : -EIO,
				"fd %d (unix socket): cannot put back its queued datagrams: %s",
				f->fd, w < 0 ? strerror(errno) : "short send");
		off += f->st.msg_len[k];
	}
	close(from);
	return r;
}

int rst_plan_socket(struct rst_ctx *c, size_t i)
{
	const struct restore_fd *f = &c->img->fds[i];
	const struct restore_fd_state *st = &f->st;
	if (st->flags & RESTORE_FDS_F_PEER_OUT)
		return rst_fail(c, -EOPNOTSUPP,
				"fd %d is a %s socket connected outside the job; it must be "
				"handed over",
				f->fd, st->family == AF_UNIX ? "unix" : "TCP");
	if (!st->family)
		return rst_fail(c, -EOPNOTSUPP, "fd %d (socket) has no recorded state", f->fd);
	if (st->family == AF_UNIX && st->sock_state == RESTORE_SOCK_CONNECTED &&
	    !(st->flags & RESTORE_FDS_F_RECONNECT))
		return plan_pair(c, i);
	int s = socket(st->family, st->type | SOCK_CLOEXEC, st->protocol);
	if (s < 0)
		return rst_fd_sys_fail(c, f, "socket");
	int r = set_opts(c, f, s);
	if (r == 0 && bound(st))
		r = bind_addr(c, f, s);
	if (r == 0 && st->sock_state == RESTORE_SOCK_LISTEN && listen(s, (int)st->value) < 0)
		r = rst_fd_sys_fail(c, f, "listen");
	if (r == 0 && st->data_len) /* datagrams queued on a bound socket */
		r = refill_to_name(c, f, s);
	if (r == 0 && (st->flags & RESTORE_FDS_F_RECONNECT) &&
	    connect(s, (const struct sockaddr *)st->peer, st->peer_len) < 0) {
		const struct sockaddr_un *un = (const void *)st->peer;
		bool abstract = st->peer_len > sizeof(sa_family_t) && !un->sun_path[0];
		r = rst_fail(c, -errno,
			     "fd %d (unix datagram socket): cannot connect it again to %s%.*s: %s",
			     f->fd, abstract ? "@" : "",
			     (int)(st->peer_len - sizeof(sa_family_t) - (abstract ? 1 : 0)),
			     un->sun_path + (abstract ? 1 : 0), strerror(errno));
	}
	if (r < 0) {
		close(s);
		return r;
	}
	return rst_fd_take(c, i, s);
}
