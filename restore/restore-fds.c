/* The fd table of restore_process(). Planning (before the point of no return) opens every file
 * the image names, checks its identity and moves it above the image's numbers, next to the fds
 * the caller hands over; installing puts each at its old number (dup3 keeps O_CLOEXEC as it
 * was), then closes every other fd but the restorer's temporaries, which the blob closes. */
#include "common/grow.h"
#include "restore/fds-internal.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

int rst_fail(struct rst_ctx *c, int r, const char *fmt, ...)
{
	if (c->err && !c->err->msg[0]) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->err->msg, sizeof(c->err->msg), fmt, ap);
		va_end(ap);
	}
	return r;
}

int rst_fd_high(struct rst_ctx *c, int fd)
{
	if (fd >= c->base_fd)
		return fd;
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, c->base_fd);
	int r = nfd < 0 ? -errno : nfd;
	close(fd);
	return r;
}

int rst_ident_check(struct rst_ctx *c, int fd, const struct restore_ident *id, const char *what)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	int how = rst_ident_cmp(&st, id);
	if (how == RST_IDENT_SAME || rst_path_allowed(c->opts, what) || rst_procfs_file(what, fd))
		return 0;
	char msg[sizeof(c->err->msg)];
	rst_ident_describe(msg, sizeof(msg), what, how, &st, id);
	return rst_fail(c, -ESTALE, "%s", msg);
}

static const struct restore_fd_map *handed(const struct rst_ctx *c, int target)
{
	for (size_t i = 0; c->opts && i < c->opts->nfds; i++)
		if (c->opts->fds[i].target == target)
			return &c->opts->fds[i];
	return NULL;
}

static int reopen(struct rst_ctx *c, const struct restore_fd *f, struct rst_fd_plan *p)
{
	if (f->target[0] != '/' || strstr(f->target, " (deleted)"))
		return rst_fail(c, -EOPNOTSUPP, "fd %d (%s, %s) cannot be restored yet", f->fd,
				restore_fd_kind_name(f->kind), f->target);
	int flags = (int)f->flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC);
	if (f->kind == RESTORE_FD_DIR)
		flags = O_RDONLY | O_DIRECTORY;
	int fd = open(f->target, flags | O_CLOEXEC);
	if (fd < 0)
		return rst_fail(c, -errno, "cannot reopen fd %d (%s): %s", f->fd, f->target,
				strerror(errno));
	fd = rst_fd_high(c, fd);
	if (fd < 0)
		return fd;
	p->tmp = fd;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (f->kind == RESTORE_FD_CHR) {
		if (!S_ISCHR(st.st_mode) || st.st_rdev != f->rdev)
			return rst_fail(c, -ESTALE, "fd %d: %s is another device now", f->fd,
					f->target);
		return 0;
	}
	if (f->kind == RESTORE_FD_DIR) {
		bool dev_ok =
			(f->ident.flags & RESTORE_IDENT_F_JOB_VFS) || st.st_dev == f->ident.dev;
		if (!dev_ok || st.st_ino != f->ident.ino)
			return rst_fail(c, -ESTALE, "fd %d: %s is another directory now", f->fd,
					f->target);
		return 0;
	}
	int r = rst_ident_check(c, fd, &f->ident, f->target);
	if (r < 0)
		return r;
	p->seek = true;
	p->pos = f->pos;
	return 0;
}

/* 0, 1 and 2 are the caller's (the job's pipes or terminal, given anew), unless the process
 * had redirected one to a file or device of its own (`exec >/tmp/out`, `sort -o`, `< input`,
 * `exec 2>/dev/null`): that one comes back from the image like any other fd. */
static bool stdio_given(const struct restore_fd *f)
{
	return f->fd <= 2 && f->kind != RESTORE_FD_REGULAR && f->kind != RESTORE_FD_DIR &&
	       f->kind != RESTORE_FD_CHR;
}

/* The given stdio fd a pipe the job moved above 2 was (RESTORE_FDS_F_GIVEN), or -1. */
static int given_moved(const struct restore_fd *f)
{
	for (int k = 0; f->fd > 2 && k < 3; k++)
		if (f->st.flags & RESTORE_FDS_F_GIVEN(k))
			return k;
	return -1;
}

static bool cloexec_of(const struct restore_fd *f)
{
	if (f->st.present && (f->st.flags & RESTORE_FDS_F_FDFLAGS))
		return (f->st.flags & RESTORE_FDS_F_CLOEXEC) != 0;
	return (f->flags & O_CLOEXEC) != 0; /* older images: fdinfo's flags */
}

static int plan_one(struct rst_ctx *c, size_t i)
{
	const struct restore_fd *f = &c->img->fds[i];
	switch (f->kind) {
	case RESTORE_FD_REGULAR:
	case RESTORE_FD_DIR:
	case RESTORE_FD_CHR:
		return reopen(c, f, &c->fds[i]);
	case RESTORE_FD_PIPE:
	case RESTORE_FD_SOCKET:
	case RESTORE_FD_EVENTFD:
	case RESTORE_FD_TIMERFD:
	case RESTORE_FD_SIGNALFD:
	case RESTORE_FD_EPOLL:
	case RESTORE_FD_INOTIFY:
		return rst_fd_kind_plan(c, i);
	default:
		return rst_fail(c, -EOPNOTSUPP,
				"fd %d (%s, %s) cannot be restored yet unless handed over", f->fd,
				restore_fd_kind_name(f->kind), f->target);
	}
}

/* Handed-over fds first (they win over anything the image says), then each fd by its kind
 * (a pipe or socket pair plans all its fds at once), then the fds that share an open file
 * description with a lower one get a dup of it. */
int rst_fds_plan(struct rst_ctx *c)
{
	const struct restore_image *img = c->img;
	c->fds = calloc(img->nfds ? img->nfds : 1, sizeof(*c->fds));
	if (!c->fds)
		return -ENOMEM;
	for (size_t i = 0; c->opts && i < c->opts->nfds; i++) {
		bool found = false;
		for (size_t j = 0; j < img->nfds; j++)
			found |= img->fds[j].fd == c->opts->fds[i].target;
		if (!found)
			return rst_fail(c, -EINVAL, "fd %d handed over is not in the image",
					c->opts->fds[i].target);
	}
	c->nfds = img->nfds;
	for (size_t i = 0; i < img->nfds; i++) {
		const struct restore_fd *f = &img->fds[i];
		c->fds[i] =
			(struct rst_fd_plan){.target = f->fd, .tmp = -1, .cloexec = cloexec_of(f)};
		const struct restore_fd_map *m = handed(c, f->fd);
		int k = given_moved(f);
		if (!m && k < 0)
			continue;
		/* a moved stdio pipe: a dup of the one given at fd k, taken before fd k is
		 * installed (it may be redirected to a file of the image's) */
		int fd = fcntl(m ? m->fd : k, F_DUPFD_CLOEXEC, c->base_fd);
		if (fd < 0)
			return rst_fail(c, -errno, "fd %d handed over: %s", m ? m->fd : k,
					strerror(errno));
		c->fds[i].tmp = fd;
	}
	for (size_t i = 0; i < img->nfds; i++) {
		const struct restore_fd *f = &img->fds[i];
		if (c->fds[i].tmp >= 0 || stdio_given(f) || (f->st.present && f->st.dup_of >= 0))
			continue; /* handed over or planned with its pair; stdio as given; dups */
		int r = plan_one(c, i);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < img->nfds; i++) {
		const struct restore_fd *f = &img->fds[i];
		if (c->fds[i].tmp >= 0 || stdio_given(f) || !f->st.present || f->st.dup_of < 0)
			continue;
		size_t j = 0;
		while (j < i && img->fds[j].fd != f->st.dup_of)
			j++;
		if (j == i)
			return rst_fail(c, -EBADMSG, "fd %d is a dup of fd %d, not in the image",
					f->fd, f->st.dup_of);
		int src = c->fds[j].tmp >= 0 ? c->fds[j].tmp : c->fds[j].target;
		int fd = fcntl(src, F_DUPFD_CLOEXEC, c->base_fd);
		if (fd < 0)
			return rst_fail(c, -errno, "fd %d: cannot dup fd %d: %s", f->fd,
					f->st.dup_of, strerror(errno));
		c->fds[i].tmp = fd;
	}
	return 0;
}

static int int_cmp(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

/* One "lock:" line of fdinfo ("lock:\t1: FLOCK  ADVISORY  WRITE 22206 fe:00:405882 0 EOF")
 * into @l; false for what is not taken again (leases, delegations). */
static bool lock_parse(const char *line, struct rst_lock *l)
{
	char kind[16], mode[16], acc[16], end[24];
	long long start;
	const char *p = strchr(line + 5, ':'); /* past "lock:", the number's */
	const char *eol = strchr(line, '\n');
	if (!p || (eol && p > eol) ||
	    sscanf(p + 1, "%15s %15s %15s %*d %*s %lld %23s", kind, mode, acc, &start, end) != 5)
		return false;
	l->write = !strcmp(acc, "WRITE");
	if (!l->write && strcmp(acc, "READ"))
		return false;
	l->kind = !strcmp(kind, "FLOCK")    ? RST_LOCK_FLOCK
		  : !strcmp(kind, "POSIX")  ? RST_LOCK_POSIX
		  : !strcmp(kind, "OFDLCK") ? RST_LOCK_OFD
					    : (enum rst_lock_kind)-1;
	if ((int)l->kind < 0 || start < 0)
		return false;
	long long last = strcmp(end, "EOF") ? atoll(end) : -1;
	l->start = start;
	l->len = last < 0 ? 0 : last - start + 1;
	return l->len >= 0;
}

int rst_fds_locks_plan(struct rst_ctx *c)
{
	size_t cap = 0;
	for (size_t i = 0; i < c->img->nfds; i++) {
		const struct restore_fd *f = &c->img->fds[i];
		for (const char *l = f->fdinfo; l && (l = strstr(l, "lock:")); l += 5) {
			struct rst_lock k = {.fd = f->fd, .target = f->target};
			if (!lock_parse(l, &k))
				continue;
			int r = CK_GROW(c->locks, cap, c->nlocks + 1);
			if (r < 0)
				return r;
			c->locks[c->nlocks++] = k;
		}
	}
	return 0;
}

size_t rst_fds_locks_posix(const struct rst_ctx *c, struct ckr_lock *out)
{
	size_t n = 0;
	for (size_t i = 0; i < c->nlocks; i++) {
		const struct rst_lock *l = &c->locks[i];
		if (l->kind != RST_LOCK_POSIX)
			continue;
		if (out)
			out[n] = (struct ckr_lock){.fd = l->fd,
						   .fl = {.type = l->write ? F_WRLCK : F_RDLCK,
							  .whence = SEEK_SET,
							  .start = l->start,
							  .len = l->len}};
		n++;
	}
	return n;
}

int rst_fds_locks(struct rst_ctx *c)
{
	for (size_t i = 0; i < c->nlocks; i++) {
		const struct rst_lock *l = &c->locks[i];
		struct flock fl = {.l_type = l->write ? F_WRLCK : F_RDLCK,
				   .l_whence = SEEK_SET,
				   .l_start = (off_t)l->start,
				   .l_len = (off_t)l->len};
		int r = l->kind == RST_LOCK_FLOCK
				? flock(l->fd, (l->write ? LOCK_EX : LOCK_SH) | LOCK_NB)
				: fcntl(l->fd, l->kind == RST_LOCK_OFD ? F_OFD_SETLK : F_SETLK, &fl);
		if (r == 0)
			continue;
		r = -errno;
		char what[96];
		int n = snprintf(what, sizeof(what), "%s %s lock",
				 l->kind == RST_LOCK_FLOCK   ? "FLOCK"
				 : l->kind == RST_LOCK_POSIX ? "POSIX"
							     : "OFDLCK",
				 l->write ? "write" : "read");
		if (l->kind != RST_LOCK_FLOCK && n > 0 && (size_t)n < sizeof(what)) {
			if (l->len)
				snprintf(what + n, sizeof(what) - (size_t)n, " on bytes %lld-%lld",
					 (long long)l->start, (long long)(l->start + l->len - 1));
			else
				snprintf(what + n, sizeof(what) - (size_t)n, " on bytes %lld-EOF",
					 (long long)l->start);
		}
		if (r == -EAGAIN || r == -EACCES || r == -EWOULDBLOCK)
			return rst_fail(c, -EBUSY,
					"the %s the job held on %s (fd %d) is held by another "
					"process now; restore once it is released",
					what, l->target, l->fd);
		return rst_fail(c, r, "cannot take the %s on %s (fd %d) again: %s", what,
				l->target, l->fd, strerror(-r));
	}
	return 0;
}

int rst_fds_install(struct rst_ctx *c)
{
	/* Every fd to keep: the image's, then the blob's temporaries (all >= base_fd). */
	size_t n = c->nfds + c->ntmp + 4;
	_cleanup_free_ int *keep = calloc(n, sizeof(int));
	if (!keep)
		return -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < c->nfds; i++) {
		struct rst_fd_plan *p = &c->fds[i];
		keep[k++] = p->target;
		if (p->tmp < 0) {
			if (fcntl(p->target, F_SETFD, p->cloexec ? FD_CLOEXEC : 0) < 0)
				return rst_fail(c, -errno, "fd %d: %s", p->target, strerror(errno));
			continue;
		}
		if (p->seek && lseek(p->tmp, (off_t)p->pos, SEEK_SET) < 0)
			return rst_fail(c, -errno, "fd %d: cannot seek to %llu: %s", p->target,
					(unsigned long long)p->pos, strerror(errno));
		if (dup3(p->tmp, p->target, p->cloexec ? O_CLOEXEC : 0) < 0)
			return rst_fail(c, -errno, "fd %d: dup3: %s", p->target, strerror(errno));
		close(p->tmp);
		p->tmp = -1;
	}
	for (size_t i = 0; i < c->ntmp; i++)
		keep[k++] = c->tmp_fds[i];
	keep[k++] = c->pages_fd;
	if (c->exe_fd >= 0)
		keep[k++] = c->exe_fd;
	if (c->err_fd >= 0)
		keep[k++] = c->err_fd;
	if (c->check_fd >= 0)
		keep[k++] = c->check_fd;
	qsort(keep, k, sizeof(int), int_cmp);
	unsigned from = 0;
	for (size_t i = 0; i <= k; i++) {
		unsigned to = i < k ? (unsigned)keep[i] : ~0u;
		if (to > from && syscall(SYS_close_range, from, to - 1, 0) < 0)
			return rst_fail(c, -errno, "close_range: %s", strerror(errno));
		if (i < k)
			from = (unsigned)keep[i] + 1;
	}
	int r = rst_fds_epoll_install(c);
	return r < 0 ? r : rst_fds_locks(c);
}

void rst_ctx_close_temps(struct rst_ctx *c)
{
	for (size_t i = 0; i < c->nfds; i++)
		if (c->fds[i].tmp >= 0)
			close(c->fds[i].tmp);
	for (size_t i = 0; i < c->ntmp; i++)
		close(c->tmp_fds[i]);
	if (c->pages_fd >= 0)
		close(c->pages_fd);
	if (c->exe_fd >= 0)
		close(c->exe_fd);
	if (c->err_fd >= 0)
		close(c->err_fd);
	if (c->check_fd >= 0)
		close(c->check_fd);
	c->nfds = c->ntmp = 0;
	c->pages_fd = c->exe_fd = c->err_fd = c->check_fd = -1;
}
