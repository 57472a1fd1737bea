/* Recreating the fds that have no path, from their state in the image (section FDSTATE,
 * docs/fds.md): eventfd, timerfd, signalfd, epoll and inotify here, pipes and sockets in
 * restore-fds-sockets.c. Everything runs before the point of no return, so a failure leaves
 * the restorer as it was, except the epoll registrations: their key is (file, fd number), so
 * they are added once every fd is at its old number (rst_fds_epoll_install). */
#include "restore/fds-internal.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

/* File status flags F_SETFL can set back (O_ASYNC would need its owner too). */
#define SETFL_MASK (O_NONBLOCK | O_APPEND | O_NOATIME | O_DIRECT)

int rst_fd_take(struct rst_ctx *c, size_t i, int fd)
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

int rst_fd_sys_fail(struct rst_ctx *c, const struct restore_fd *f, const char *what)
{
	int r = -errno;
	return rst_fail(c, r, "fd %d (%s): %s: %s", f->fd, restore_fd_kind_name(f->kind), what,
			strerror(-r));
}

/* ---- eventfd, timerfd, signalfd ----------------------------------------------------- */

static int plan_eventfd(struct rst_ctx *c, size_t i)
{
	const struct restore_fd *f = &c->img->fds[i];
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK |
				    (f->st.flags & RESTORE_FDS_F_SEMAPHORE ? EFD_SEMAPHORE : 0));
	if (fd < 0)
		return rst_fd_sys_fail(c, f, "eventfd");
	uint64_t v = f->st.value;
	if (v && write(fd, &v, sizeof(v)) != sizeof(v)) {
		int r = rst_fd_sys_fail(c, f, "cannot set its counter");
		close(fd);
		return r;
	}
	return rst_fd_take(c, i, fd);
}

static clockid_t base_clock(int clk)
{
	return clk == CLOCK_REALTIME_ALARM   ? CLOCK_REALTIME
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
		return rst_fd_sys_fail(c, f, "timerfd_create");
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
		r = rst_fd_sys_fail(c, f, "timerfd_settime");
	uint64_t ticks = st->ticks;
	if (r == 0 && ticks && ioctl(fd, TFD_IOC_SET_TICKS, &ticks) < 0)
		r = rst_fd_sys_fail(c, f, "cannot set its pending expirations (TFD_IOC_SET_TICKS)");
	if (r < 0) {
		close(fd);
		return r;
	}
	return rst_fd_take(c, i, fd);
}

static int plan_signalfd(struct rst_ctx *c, size_t i)
{
	const struct restore_fd *f = &c->img->fds[i];
	uint64_t mask = f->st.value;
	int fd = (int)syscall(SYS_signalfd4, -1, &mask, sizeof(mask), SFD_CLOEXEC);
	if (fd < 0)
		return rst_fd_sys_fail(c, f, "signalfd");
	return rst_fd_take(c, i, fd);
}

/* ---- epoll, inotify ----------------------------------------------------------------- */

static int cmp_key_fd(const void *key, const void *elem)
{
	int k = *(const int *)key, fd = ((const struct restore_fd *)elem)->fd;
	return (k > fd) - (k < fd);
}

static int plan_epoll(struct rst_ctx *c, size_t i)
{
	const struct restore_fd *f = &c->img->fds[i];
	for (size_t k = 0; k < f->st.ntfds; k++) {
		/* the reader checked that the image's fds are sorted by number */
		if (!bsearch(&f->st.tfds[k].fd, c->img->fds, c->img->nfds, sizeof(*c->img->fds),
			     cmp_key_fd))
			return rst_fail(c, -EBADMSG,
					"fd %d (epoll) watches fd %d, not in the image", f->fd,
					f->st.tfds[k].fd);
	}
	int fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd < 0)
		return rst_fd_sys_fail(c, f, "epoll_create1");
	return rst_fd_take(c, i, fd);
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
		return rst_fd_sys_fail(c, f, "inotify_init1");
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
				r = rst_fd_sys_fail(c, f, "inotify_add_watch (filler)");
			next = d + 1;
		}
		if (r < 0)
			break;
		struct stat sb;
		bool dev_ok = (w->flags & RESTORE_IDENT_F_JOB_VFS) != 0;
		if (stat(w->path, &sb) < 0 || sb.st_ino != w->ino ||
		    (!dev_ok && sb.st_dev != w->dev)) {
			r = rst_fail(c, -ESTALE,
				     "fd %d (inotify): %s is not the file watched at "
				     "checkpoint time (watch %d)",
				     f->fd, w->path, w->wd);
			break;
		}
		int d = inotify_add_watch(fd, w->path, w->mask & ~IN_MASK_ADD);
		if (d < 0)
			r = rst_fd_sys_fail(c, f, w->path);
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
	return rst_fd_take(c, i, fd);
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
		return rst_plan_pipe(c, i);
	case RESTORE_FD_SOCKET:
		return rst_plan_socket(c, i);
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
