/* Recreating the fds that have no path: pipes (and FIFOs, by path), unix and TCP sockets,
 * eventfd, timerfd, signalfd, epoll and inotify, from their state in the image (section
 * FDSTATE). Everything here runs before the point of no return, so a failure leaves the
 * restorer as it was, except the epoll registrations: their key is (file, fd number), so they
 * are added once every fd is at its old number (rst_fds_epoll_install).
 *
 * Both ends of a pipe or socketpair are made at once, when the first of their fds is planned;
 * the bytes that were buffered are written into the new pipe (or sent by the peer) so the
 * job reads them again. A second open file description of one pipe end (not a dup) is a new
 * open of /proc/self/fd/N, as the job's own must have been. */
#include "restore/fds-internal.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

/* File status flags F_SETFL can set back (O_ASYNC would need its owner too). */
#define SETFL_MASK (O_NONBLOCK | O_APPEND | O_NOATIME | O_DIRECT)

static int take(struct rst_ctx *c, size_t i, int fd)
{
	const struct restore_fd *f = &c->img->fds[i];
	if (fd < 0)
		return fd;
	if (fcntl(fd, F_SETFL, (int)f->flags & SETFL_MASK) < 0) {
		int r = -errno;
		close(fd);
		return rst_fail(c, r, "fd %d: cannot set its flags: %s", f->fd, strerror(-r));
	}
	fd = rst_fd_high(c, fd);
	if (fd < 0)
		return fd;
	c->fds[i].tmp = fd;
	return 0;
}

static int sys_fail(struct rst_ctx *c, const struct restore_fd *f, const char *what)
{
	int r = -errno;
	return rst_fail(c, r, "fd %d (%s): %s: %s", f->fd, restore_fd_kind_name(f->kind), what,
			strerror(-r));
}

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
		return sys_fail(c, f, f->target);
	struct stat st;
	bool dev_ok = (f->ident.flags & RESTORE_IDENT_F_JOB_VFS) != 0;
	if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && st.st_ino == f->ident.ino &&
	    (dev_ok || st.st_dev == f->ident.dev))
		return fd;
	close(fd);
	return rst_fail(c, -ESTALE, "fd %d: %s is another file than the FIFO at checkpoint time",
			f->fd, f->target);
}

static int plan_pipe(struct rst_ctx *c, size_t i)
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
		ends[1] = dup(ends[0]);
		if (ends[1] < 0)
			r = sys_fail(c, f, "dup");
	} else if (pipe2(ends, O_CLOEXEC) < 0) {
		return sys_fail(c, f, "pipe2");
	}
	/* The size first: the bytes must fit without blocking. Raising it past
	 * pipe-max-size needs CAP_SYS_RESOURCE; the bytes decide whether that matters. */
	if (r == 0 && f->st.value && fcntl(ends[1], F_SETPIPE_SZ, (int)f->st.value) < 0 &&
	    errno != EPERM)
		r = sys_fail(c, f, "F_SETPIPE_SZ");
	for (size_t j = i; j < img->nfds && r == 0; j++) {
		const struct restore_fd *g = &img->fds[j];
		if (!same_pipe(f, g) || !(g->st.flags & RESTORE_FDS_F_DATA) || !g->st.data_len)
			continue;
		if (fcntl(ends[1], F_SETFL, O_NONBLOCK) < 0)
			r = sys_fail(c, g, "F_SETFL");
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
			r = sys_fail(c, g, "reopen");
		else
			r = fd < 0 ? fd : take(c, j, fd);
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
			return rst_fail(c, -errno, "fd %d (socket): cannot set option %d/%d to %d: %s",
					f->fd, o->level, o->name, o->value, strerror(errno));
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
	return rst_fail(c, -e, "fd %d (TCP socket): cannot bind it again to %s:%u: %s", f->fd,
			host, port, strerror(e));
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
		return rst_fail(c, w, "fd %d (unix socket): cannot put back its %llu queued bytes: %s",
				to->fd, (unsigned long long)st->data_len, strerror(-w));
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
		return sys_fail(c, f, "socketpair");
	int r = set_opts(c, f, sp[0]);
	if (r == 0 && peer)
		r = set_opts(c, peer, sp[1]);
	if (r == 0)
		r = refill(c, f, sp[1]);
	if (r == 0 && peer)
		r = refill(c, peer, sp[0]);
	if (r < 0) {
		close(sp[0]);
		close(sp[1]);
		return r;
	}
	r = take(c, i, sp[0]);
	if (peer && peer->fd > 2 && c->fds[pj].tmp < 0) {
		int r2 = take(c, pj, sp[1]);
		r = r < 0 ? r : r2;
	} else {
		close(sp[1]); /* the peer is gone: the job reads the bytes, then end of file */
	}
	return r;
}

static int plan_socket(struct rst_ctx *c, size_t i)
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
	if (st->family == AF_UNIX && st->sock_state == RESTORE_SOCK_CONNECTED)
		return plan_pair(c, i);
	int s = socket(st->family, st->type | SOCK_CLOEXEC, st->protocol);
	if (s < 0)
		return sys_fail(c, f, "socket");
	int r = set_opts(c, f, s);
	if (r == 0 && bound(st))
		r = bind_addr(c, f, s);
	if (r == 0 && st->sock_state == RESTORE_SOCK_LISTEN && listen(s, (int)st->value) < 0)
		r = sys_fail(c, f, "listen");
	if (r < 0) {
		close(s);
		return r;
	}
	return take(c, i, s);
}

/* ---- eventfd, timerfd, signalfd ----------------------------------------------------- */

static int plan_eventfd(struct rst_ctx *c, size_t i)
{
	const struct restore_fd *f = &c->img->fds[i];
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK |
				    (f->st.flags & RESTORE_FDS_F_SEMAPHORE ? EFD_SEMAPHORE : 0));
	if (fd < 0)
		return sys_fail(c, f, "eventfd");
	uint64_t v = f->st.value;
	if (v && write(fd, &v, sizeof(v)) != sizeof(v)) {
		int r = sys_fail(c, f, "cannot set its counter");
		close(fd);
		return r;
	}
	return take(c, i, fd);
}

static clockid_t base_clock(int clk)
{
	return clk == CLOCK_REALTIME_ALARM ? CLOCK_REALTIME
	       : clk == CLOCK_BOOTTIME_ALARM ? CLOCK_BOOTTIME
					     : clk;
}

static struct timespec ts_of(uint64_t ns)
{
	return (struct timespec){(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
}

/* The remaining time goes on from where it was (relative timers, and absolute ones on the
 * monotonic clocks, which a time namespace continues); an absolute CLOCK_REALTIME timer keeps
 * its deadline on the wall clock. Ticks not read yet come back through TFD_IOC_SET_TICKS. */
static int plan_timerfd(struct rst_ctx *c, size_t i)
{
	const struct restore_fd *f = &c->img->fds[i];
	const struct restore_fd_state *st = &f->st;
	int fd = timerfd_create(st->clockid, TFD_CLOEXEC);
	if (fd < 0)
		return sys_fail(c, f, "timerfd_create");
	struct itimerspec its = {.it_interval = ts_of(st->it_interval_ns),
				 .it_value = ts_of(st->it_value_ns)};
	int flags = 0;
	int r = 0;
	if (st->it_value_ns && (st->tflags & TFD_TIMER_ABSTIME)) {
		struct timespec now = {0, 0};
		int64_t at = st->abs_ns;
		if (base_clock(st->clockid) != CLOCK_REALTIME) {
			if (clock_gettime(base_clock(st->clockid), &now) < 0)
				r = -errno;
			at = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec +
			     (int64_t)st->it_value_ns;
		}
		its.it_value = ts_of(at > 0 ? (uint64_t)at : 1);
		flags = (int)st->tflags;
	}
	if (r == 0 && timerfd_settime(fd, flags, &its, NULL) < 0)
		r = sys_fail(c, f, "timerfd_settime");
	uint64_t ticks = st->ticks;
	if (r == 0 && ticks && ioctl(fd, TFD_IOC_SET_TICKS, &ticks) < 0)
		r = sys_fail(c, f, "cannot set its pending expirations (TFD_IOC_SET_TICKS)");
	if (r < 0) {
		close(fd);
		return r;
	}
	return take(c, i, fd);
}

static int plan_signalfd(struct rst_ctx *c, size_t i)
{
	const struct restore_fd *f = &c->img->fds[i];
	uint64_t mask = f->st.value;
	int fd = (int)syscall(SYS_signalfd4, -1, &mask, sizeof(mask), SFD_CLOEXEC);
	if (fd < 0)
		return sys_fail(c, f, "signalfd");
	return take(c, i, fd);
}

/* ---- epoll, inotify ----------------------------------------------------------------- */

static int plan_epoll(struct rst_ctx *c, size_t i)
{
	const struct restore_fd *f = &c->img->fds[i];
	for (size_t k = 0; k < f->st.ntfds; k++) {
		bool found = false;
		for (size_t j = 0; j < c->img->nfds; j++)
			found |= c->img->fds[j].fd == f->st.tfds[k].fd;
		if (!found)
			return rst_fail(c, -EBADMSG, "fd %d (epoll) watches fd %d, not in the image",
					f->fd, f->st.tfds[k].fd);
	}
	int fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd < 0)
		return sys_fail(c, f, "epoll_create1");
	return take(c, i, fd);
}

int rst_fds_epoll_install(struct rst_ctx *c)
{
	for (size_t i = 0; i < c->img->nfds; i++) {
		const struct restore_fd *f = &c->img->fds[i];
		if (f->kind != RESTORE_FD_EPOLL || !f->st.present || f->st.dup_of >= 0)
			continue;
		for (size_t k = 0; k < f->st.ntfds; k++) {
			const struct restore_epoll_tfd *t = &f->st.tfds[k];
			struct epoll_event ev = {.events = t->events, .data.u64 = t->data};
			if (epoll_ctl(f->fd, EPOLL_CTL_ADD, t->fd, &ev) < 0)
				return rst_fail(c, -errno,
						"fd %d (epoll): cannot register fd %d again: %s",
						f->fd, t->fd, strerror(errno));
		}
	}
	return 0;
}

#define WD_GAP_MAX 65536

/* Watch descriptors are handed out in increasing order (idr_alloc_cyclic): watches are added
 * in wd order, and a gap is used up by adding and removing a watch on some other inode; the
 * IN_IGNORED events this queues are read away. */
static int plan_inotify(struct rst_ctx *c, size_t i)
{
	const struct restore_fd *f = &c->img->fds[i];
	int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (fd < 0)
		return sys_fail(c, f, "inotify_init1");
	int r = 0, next = 1;
	const char *filler = "/";
	for (size_t k = 0; k < f->st.nwatches; k++)
		if (!strcmp(f->st.watches[k].path, "/"))
			filler = "/proc";
	for (size_t k = 0; k < f->st.nwatches && r == 0; k++) {
		const struct restore_inotify_watch *w = &f->st.watches[k];
		if (w->wd - next > WD_GAP_MAX) {
			r = rst_fail(c, -E2BIG, "fd %d (inotify): watch descriptor %d is too high",
				     f->fd, w->wd);
			break;
		}
		while (next < w->wd && r == 0) {
			int d = inotify_add_watch(fd, filler, IN_DELETE_SELF);
			if (d < 0 || inotify_rm_watch(fd, d) < 0)
				r = sys_fail(c, f, "inotify_add_watch (filler)");
			next = d + 1;
		}
		if (r < 0)
			break;
		struct stat sb;
		bool dev_ok = (w->flags & RESTORE_IDENT_F_JOB_VFS) != 0;
		if (stat(w->path, &sb) < 0 || sb.st_ino != w->ino || (!dev_ok && sb.st_dev != w->dev)) {
			r = rst_fail(c, -ESTALE, "fd %d (inotify): %s is not the file watched at "
						  "checkpoint time (watch %d)",
				     f->fd, w->path, w->wd);
			break;
		}
		int d = inotify_add_watch(fd, w->path, w->mask & ~IN_MASK_ADD);
		if (d < 0)
			r = sys_fail(c, f, w->path);
		else if (d != w->wd)
			r = rst_fail(c, -EIO, "fd %d (inotify): %s got watch %d instead of %d",
				     f->fd, w->path, d, w->wd);
		next = d + 1;
	}
	uint8_t buf[4096];
	while (r == 0 && read(fd, buf, sizeof(buf)) > 0)
		;
	if (r < 0) {
		close(fd);
		return r;
	}
	return take(c, i, fd);
}

int rst_fd_kind_plan(struct rst_ctx *c, size_t i)
{
	const struct restore_fd *f = &c->img->fds[i];
	if (!f->st.present)
		return rst_fail(c, -EOPNOTSUPP,
				"fd %d (%s, %s) cannot be restored: the image has no state for it",
				f->fd, restore_fd_kind_name(f->kind), f->target);
	switch (f->kind) {
	case RESTORE_FD_PIPE:
		return plan_pipe(c, i);
	case RESTORE_FD_SOCKET:
		return plan_socket(c, i);
	case RESTORE_FD_EVENTFD:
		return plan_eventfd(c, i);
	case RESTORE_FD_TIMERFD:
		return plan_timerfd(c, i);
	case RESTORE_FD_SIGNALFD:
		return plan_signalfd(c, i);
	case RESTORE_FD_EPOLL:
		return plan_epoll(c, i);
	case RESTORE_FD_INOTIFY:
		return plan_inotify(c, i);
	default:
		return rst_fail(c, -EOPNOTSUPP, "fd %d (%s, %s) cannot be restored", f->fd,
				restore_fd_kind_name(f->kind), f->target);
	}
}
