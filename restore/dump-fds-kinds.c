/* The state of each fd beyond its path (docs/image-format.md, section FDSTATE), read while the
 * job is frozen and without changing what it will see:
 *   - the close-on-exec flag by an injected fcntl(F_GETFD): fdinfo's "flags" also shows
 *     O_CLOEXEC for an fd whose file was *opened* with it and later dup'ed without it;
 *   - fds sharing one open file description (dup, fork): kcmp(KCMP_FILE);
 *   - eventfd, timerfd, signalfd, epoll, inotify: fdinfo lines; inotify watches are found by
 *     inode under the job's /tmp, its cwd and the directories of its open files;
 *   - pipes: the buffered bytes are copied with tee(2), which duplicates pipe buffers without
 *     consuming them, from a second read end opened through /proc/PID/fd/N;
 *   - unix sockets: the receive queue read with MSG_PEEK from an SO_PEEK_OFF of 0, the offset
 *     put back afterwards; the peer and a listener's backlog from NETLINK_SOCK_DIAG;
 *   - TCP: listeners and unconnected sockets (address, options that differ from a fresh
 *     socket's, backlog); a connection the job accepted (its local port is a listener's) is
 *     refused, other connected ones are the proxy's legs, handed over at restore. */
#include "common/grow.h"
#include "restore/fds-internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>

#define REFUSE(err, ...)                                                                       \
	do {                                                                                   \
		if (err)                                                                       \
			snprintf((err)->msg, sizeof((err)->msg), __VA_ARGS__);                 \
		return -EOPNOTSUPP;                                                            \
	} while (0)

static int getfd(int pidfd, int fd)
{
	int d = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	return d < 0 ? -errno : d;
}

static void fd_flags_inject(pid_t pid, struct restore_image *img)
{
	uint64_t ip;
	struct inject ij;
	if (inject_find_syscall(pid, &ip) < 0 || inject_begin(&ij, pid, ip) < 0)
		return; /* fdinfo's flags remain: O_CLOEXEC may be reported for a cleared fd */
	for (size_t i = 0; i < img->nfds; i++) {
		const uint64_t a[6] = {(uint64_t)img->fds[i].fd, F_GETFD, 0, 0, 0, 0};
		int64_t ret;
		if (inject_syscall(&ij, SYS_fcntl, a, &ret) == 0 && ret >= 0)
			img->fds[i].st.flags |= RESTORE_FDS_F_FDFLAGS |
						(ret & FD_CLOEXEC ? RESTORE_FDS_F_CLOEXEC : 0);
	}
	inject_end(&ij);
}

static void find_dups(pid_t pid, struct restore_image *img)
{
	for (size_t i = 0; i < img->nfds; i++) {
		struct restore_fd *f = &img->fds[i];
		for (size_t j = 0; j < i; j++) {
			const struct restore_fd *g = &img->fds[j];
			if (g->st.dup_of >= 0 || g->kind != f->kind || g->ident.ino != f->ident.ino ||
			    g->ident.dev != f->ident.dev)
				continue;
			if (syscall(SYS_kcmp, pid, pid, KCMP_FILE, g->fd, f->fd) == 0) {
				f->st.dup_of = g->fd;
				break;
			}
		}
	}
}

static const char *line_after(const char *text, const char *key)
{
	const char *l = strstr(text, key);
	return l ? l + strlen(key) : NULL;
}

/* ---- eventfd, timerfd, signalfd ----------------------------------------------------- */

static int eventfd_state(struct restore_fd *f)
{
	const char *c = line_after(f->fdinfo, "eventfd-count:");
	unsigned long long v;
	if (!c || sscanf(c, "%llx", &v) != 1)
		return -EIO;
	f->st.value = v;
	const char *s = line_after(f->fdinfo, "eventfd-semaphore:");
	if (s && atoi(s))
		f->st.flags |= RESTORE_FDS_F_SEMAPHORE;
	return 0;
}

static clockid_t base_clock(int c)
{
	return c == CLOCK_REALTIME_ALARM ? CLOCK_REALTIME
	       : c == CLOCK_BOOTTIME_ALARM ? CLOCK_BOOTTIME
					   : c;
}

static int timerfd_state(struct restore_fd *f)
{
	const char *t = f->fdinfo;
	const char *c = line_after(t, "clockid:"), *k = line_after(t, "ticks:");
	const char *fl = line_after(t, "settime flags:"), *v = line_after(t, "it_value:");
	const char *iv = line_after(t, "it_interval:");
	int clk;
	unsigned long long ticks, vs, vn, is, in;
	unsigned flags;
	if (!c || !k || !fl || !v || !iv || sscanf(c, "%d", &clk) != 1 ||
	    sscanf(k, "%llu", &ticks) != 1 || sscanf(fl, "%o", &flags) != 1 ||
	    sscanf(v, " (%llu, %llu)", &vs, &vn) != 2 || sscanf(iv, " (%llu, %llu)", &is, &in) != 2)
		return -EIO;
	struct restore_fd_state *s = &f->st;
	s->clockid = clk;
	s->ticks = ticks;
	s->tflags = flags & (TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET);
	s->it_value_ns = vs * 1000000000ull + vn;
	s->it_interval_ns = is * 1000000000ull + in;
	struct timespec now;
	if ((s->tflags & TFD_TIMER_ABSTIME) && clock_gettime(base_clock(clk), &now) == 0)
		s->abs_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec + (int64_t)s->it_value_ns;
	return 0;
}

static int signalfd_state(struct restore_fd *f)
{
	const char *m = line_after(f->fdinfo, "sigmask:");
	unsigned long long v;
	if (!m || sscanf(m, "%llx", &v) != 1)
		return -EIO;
	f->st.value = v;
	return 0;
}

/* ---- epoll ------------------------------------------------------------------------- */

static const struct restore_fd *img_fd(const struct restore_image *img, int fd)
{
	for (size_t i = 0; i < img->nfds; i++)
		if (img->fds[i].fd == fd)
			return &img->fds[i];
	return NULL;
}

static int epoll_state(const struct restore_image *img, struct restore_fd *f,
		       struct restore_err *err)
{
	struct restore_fd_state *s = &f->st;
	size_t cap = 0;
	for (const char *l = strstr(f->fdinfo, "tfd:"); l; l = strstr(l + 4, "tfd:")) {
		int tfd;
		unsigned ev;
		unsigned long long data, ino;
		if (sscanf(l, "tfd: %d events: %x data: %llx pos:%*d ino:%llx", &tfd, &ev, &data,
			   &ino) != 4)
			return -EIO;
		const struct restore_fd *t = img_fd(img, tfd);
		if (!t || t->ident.ino != ino)
			REFUSE(err,
			       "fd %d (epoll) watches a file that is no longer open at fd %d; such "
			       "an epoll set cannot be checkpointed",
			       f->fd, tfd);
		if (s->ntfds == IMG_MAX_FD_SUBS)
			REFUSE(err, "fd %d (epoll) has more than %u registrations", f->fd,
			       IMG_MAX_FD_SUBS);
		int r = CK_GROW(s->tfds, cap, s->ntfds + 1);
		if (r < 0)
			return r;
		s->tfds[s->ntfds++] = (struct restore_epoll_tfd){tfd, ev, data};
	}
	return 0;
}

/* ---- inotify ------------------------------------------------------------------------ */

struct search {
	dev_t dev;
	ino_t ino;
	unsigned budget; /* directory entries left to look at */
	char path[IMG_MAX_PATH];
};

/* Depth-first below @s->path (a /proc/PID/root/... path), not following symlinks. */
static bool search_dir(struct search *s, int depth)
{
	DIR *d = opendir(s->path);
	if (!d)
		return false;
	size_t len = strlen(s->path);
	bool found = false;
	struct dirent *e;
	while (!found && s->budget && (e = readdir(d))) {
		s->budget--;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (len + 1 + strlen(e->d_name) + 1 > sizeof(s->path))
			continue;
		snprintf(s->path + len, sizeof(s->path) - len, "/%s", e->d_name);
		struct stat st;
		if (fstatat(AT_FDCWD, s->path, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			if (st.st_dev == s->dev && st.st_ino == s->ino)
				found = true;
			else if (S_ISDIR(st.st_mode) && depth > 0)
				found = search_dir(s, depth - 1);
		}
		if (!found)
			s->path[len] = 0;
	}
	closedir(d);
	return found;
}

/* The path (as the job sees it) of inode (@dev, @ino): the files the job has open and their
 * directories first, then its cwd and /tmp a few levels deep, then the top of its root. */
static int find_inode(pid_t pid, const struct restore_image *img, dev_t dev, ino_t ino,
		      char **ret)
{
	struct search s = {.dev = dev, .ino = ino, .budget = 200000};
	int root_len = snprintf(s.path, sizeof(s.path), "/proc/%d/root", (int)pid);
	const char *roots[3] = {img->proc.cwd, "/tmp", "/"};
	const int depths[3] = {6, 6, 1};
	for (size_t i = 0; i < img->nfds + 3; i++) {
		bool file = i < img->nfds;
		const char *cand = file ? img->fds[i].target : roots[i - img->nfds];
		if (!cand || cand[0] != '/' || strstr(cand, " (deleted)"))
			continue;
		snprintf(s.path + root_len, sizeof(s.path) - (size_t)root_len, "%s", cand);
		for (int up = 0; up < (file ? 2 : 1); up++) { /* a file, then its directory */
			struct stat st;
			if (stat(s.path, &st) == 0) {
				if (st.st_dev == dev && st.st_ino == ino)
					goto found;
				if (S_ISDIR(st.st_mode) &&
				    search_dir(&s, file ? 0 : depths[i - img->nfds]))
					goto found;
			}
			char *slash = strrchr(s.path + root_len, '/');
			if (!slash || slash == s.path + root_len)
				break;
			*slash = 0;
		}
	}
	return -ENOENT;
found:
	*ret = strdup(s.path[root_len] ? s.path + root_len : "/");
	return *ret ? 0 : -ENOMEM;
}

static int inotify_state(pid_t pid, const struct restore_image *img, struct restore_fd *f,
			 struct restore_err *err)
{
	struct restore_fd_state *s = &f->st;
	size_t cap = 0;
	for (const char *l = strstr(f->fdinfo, "inotify wd:"); l;
	     l = strstr(l + 11, "inotify wd:")) {
		unsigned wd, sdev, mask, ign;
		unsigned long long ino;
		if (sscanf(l, "inotify wd:%x ino:%llx sdev:%x mask:%x ignored_mask:%x", &wd, &ino,
			   &sdev, &mask, &ign) != 5 || wd == 0 || wd > INT32_MAX)
			return -EIO;
		if (s->nwatches == IMG_MAX_FD_SUBS)
			REFUSE(err, "fd %d (inotify) has more than %u watches", f->fd,
			       IMG_MAX_FD_SUBS);
		int r = CK_GROW(s->watches, cap, s->nwatches + 1);
		if (r < 0)
			return r;
		/* fdinfo prints the kernel's dev_t: major in the bits above 20 */
		dev_t dev = makedev(sdev >> 20, sdev & 0xfffff);
		struct restore_inotify_watch *w = &s->watches[s->nwatches++];
		*w = (struct restore_inotify_watch){
			.wd = (int32_t)wd, .mask = mask, .ino = ino, .dev = dev};
		r = find_inode(pid, img, dev, (ino_t)ino, &w->path);
		if (r == -ENOENT)
			REFUSE(err,
			       "fd %d (inotify): watch %u is on inode %llu of device %u:%u, found "
			       "neither among the job's open files nor under its cwd or /tmp",
			       f->fd, wd, ino, major(dev), minor(dev));
		if (r < 0)
			return r;
	}
	/* fdinfo lists marks newest first; the restorer adds them in wd order */
	for (size_t i = 1; i < s->nwatches; i++)
		for (size_t j = i; j > 0 && s->watches[j - 1].wd > s->watches[j].wd; j--) {
			struct restore_inotify_watch t = s->watches[j];
			s->watches[j] = s->watches[j - 1];
			s->watches[j - 1] = t;
		}
	for (size_t i = 1; i < s->nwatches; i++)
		if (s->watches[i].wd == s->watches[i - 1].wd)
			return -EIO;
	return 0;
}

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
static int pipes_state(pid_t pid, int pidfd, struct restore_image *img, struct restore_err *err)
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
		_cleanup_close_ int dup = getfd(pidfd, f->fd);
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
	{SOL_SOCKET, SO_REUSEADDR, 0, 0, 0}, {SOL_SOCKET, SO_REUSEPORT, 0, 0, 0},
	{SOL_SOCKET, SO_KEEPALIVE, 0, 0, 0}, {SOL_SOCKET, SO_RCVBUF, 0, 0, 0},
	{SOL_SOCKET, SO_SNDBUF, 0, 0, 0},    {SOL_SOCKET, SO_RCVLOWAT, 0, 0, 0},
	{SOL_SOCKET, SO_PASSCRED, 0, 0, 0},  {SOL_SOCKET, SO_OOBINLINE, 0, 0, 0},
	{SOL_SOCKET, SO_PRIORITY, 0, 0, 0},  {IPPROTO_TCP, TCP_NODELAY, 1, 0, 0},
	{IPPROTO_TCP, TCP_DEFER_ACCEPT, 1, 0, 0}, {IPPROTO_TCP, TCP_KEEPIDLE, 1, 0, 0},
	{IPPROTO_TCP, TCP_KEEPINTVL, 1, 0, 0},	  {IPPROTO_TCP, TCP_KEEPCNT, 1, 0, 0},
	{IPPROTO_TCP, TCP_USER_TIMEOUT, 1, 0, 0}, {IPPROTO_TCP, TCP_FASTOPEN, 1, 0, 0},
	{IPPROTO_IPV6, IPV6_V6ONLY, 0, 0, 1},	  {IPPROTO_IP, IP_TOS, 0, 1, 0},
	{IPPROTO_IP, IP_FREEBIND, 0, 1, 0},
};

/* The options of @s that differ from those of a fresh socket of the same kind. */
static int sock_opts(int s, struct restore_fd_state *st)
{
	_cleanup_close_ int fresh = socket(st->family, st->type | SOCK_CLOEXEC, st->protocol);
	if (fresh < 0)
		return -errno;
	bool tcp = st->family != AF_UNIX && st->type == SOCK_STREAM;
	for (size_t i = 0; i < CK_ARRAY_SIZE(sockopts); i++) {
		const struct optdef *o = &sockopts[i];
		if ((o->tcp && !tcp) || (o->v4 && st->family != AF_INET) ||
		    (o->v6 && st->family != AF_INET6))
			continue;
		int a = 0, b = 0;
		socklen_t la = sizeof(a), lb = sizeof(b);
		if (getsockopt(s, o->level, o->name, &a, &la) < 0 ||
		    getsockopt(fresh, o->level, o->name, &b, &lb) < 0 || a == b)
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
		struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
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
				for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++)
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

static int unix_state(int s, const struct restore_image *img, struct restore_fd *f,
		      struct restore_err *err)
{
	struct restore_fd_state *st = &f->st;
	struct sockdiag_unix d;
	int r = sockdiag_unix_get(f->ident.ino, &d);
	if (r < 0) {
		snprintf(err->msg, sizeof(err->msg), "fd %d (unix socket): sock_diag: %s", f->fd,
			 strerror(-r));
		return r;
	}
	if (d.state == TCP_LISTEN) {
		st->sock_state = RESTORE_SOCK_LISTEN;
		st->value = d.wqueue;
		return 0;
	}
	st->peer_ino = d.peer_ino;
	if (d.peer_ino) {
		st->sock_state = RESTORE_SOCK_CONNECTED;
		bool in = false;
		for (size_t i = 0; i < img->nfds; i++)
			in |= img->fds[i].kind == RESTORE_FD_SOCKET &&
			      img->fds[i].ident.ino == d.peer_ino;
		if (!in) {
			st->flags |= RESTORE_FDS_F_PEER_OUT;
			return 0;
		}
	} else {
		st->sock_state = d.state == TCP_ESTABLISHED ? RESTORE_SOCK_CONNECTED
							    : RESTORE_SOCK_UNCONNECTED;
	}
	return unix_peek(s, f, err);
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
		st->sock_state = RESTORE_SOCK_LISTEN;
		st->value = SOMAXCONN;
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
		if (ls[i].port == port)
			REFUSE(err,
			       "fd %d is a connected TCP%s socket the job accepted (local port "
			       "%u); accepted connections cannot be checkpointed: close them first",
			       f->fd, fam[0] ? "v6" : "", port);
	/* a leg of the network proxy: the supervisor hands its successor over */
	st->sock_state = RESTORE_SOCK_CONNECTED;
	st->flags |= RESTORE_FDS_F_PEER_OUT;
	return 0;
}

static int socket_state(int pidfd, const struct restore_image *img, struct restore_fd *f,
			const struct sockdiag_listener *ls, size_t nls, struct restore_err *err)
{
	_cleanup_close_ int s = getfd(pidfd, f->fd);
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
		REFUSE(err, "fd %d is a socket of family %d; this kind cannot be checkpointed",
		       f->fd, fam);
	}
	socklen_t al = sizeof(st->addr);
	if (getsockname(s, (struct sockaddr *)st->addr, &al) < 0)
		return -errno;
	st->addr_len = CK_MIN(al, (socklen_t)sizeof(st->addr));
	int r = st->family == AF_UNIX ? unix_state(s, img, f, err)
				      : inet_state(s, f, ls, nls, err);
	if (r == 0 && !(st->flags & RESTORE_FDS_F_PEER_OUT))
		r = sock_opts(s, st);
	return r;
}

/* ---- all ---------------------------------------------------------------------------- */

static bool has_socket(const struct restore_image *img)
{
	for (size_t i = 0; i < img->nfds; i++)
		if (img->fds[i].kind == RESTORE_FD_SOCKET)
			return true;
	return false;
}

int dump_fds_state(pid_t pid, int pidfd, struct restore_image *img, bool inject,
		   struct restore_err *err)
{
	struct restore_err dummy;
	if (!err)
		err = &dummy;
	for (size_t i = 0; i < img->nfds; i++)
		img->fds[i].st = (struct restore_fd_state){.present = true, .dup_of = -1};
	if (inject)
		fd_flags_inject(pid, img);
	find_dups(pid, img);
	_cleanup_free_ struct sockdiag_listener *ls = NULL;
	size_t nls = 0;
	int r = has_socket(img) ? sockdiag_tcp_listeners(&ls, &nls) : 0;
	if (r < 0) {
		snprintf(err->msg, sizeof(err->msg), "cannot list the TCP listeners: %s",
			 strerror(-r));
		return r;
	}
	for (size_t i = 0; i < img->nfds && r == 0; i++) {
		struct restore_fd *f = &img->fds[i];
		if (f->st.dup_of >= 0)
			continue;
		switch (f->kind) {
		case RESTORE_FD_EVENTFD:
			r = eventfd_state(f);
			break;
		case RESTORE_FD_TIMERFD:
			r = timerfd_state(f);
			break;
		case RESTORE_FD_SIGNALFD:
			r = signalfd_state(f);
			break;
		case RESTORE_FD_EPOLL:
			r = epoll_state(img, f, err);
			break;
		case RESTORE_FD_INOTIFY:
			r = inotify_state(pid, img, f, err);
			break;
		case RESTORE_FD_SOCKET:
			r = socket_state(pidfd, img, f, ls, nls, err);
			break;
		default:
			break;
		}
		if (r < 0 && !err->msg[0])
			snprintf(err->msg, sizeof(err->msg), "cannot read the state of fd %d (%s): %s",
				 f->fd, restore_fd_kind_name(f->kind), strerror(-r));
	}
	if (r == 0)
		r = pipes_state(pid, pidfd, img, err);
	if (r < 0 && !err->msg[0])
		snprintf(err->msg, sizeof(err->msg), "cannot read the pipes of pid %d: %s",
			 (int)pid, strerror(-r));
	return r;
}
