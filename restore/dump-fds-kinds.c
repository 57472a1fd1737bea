/* The state of each fd beyond its path (docs/fds.md, section FDSTATE), read while the job is
 * frozen and without changing what it will see:
 *   - the close-on-exec flag by an injected fcntl(F_GETFD): fdinfo's "flags" is not the fd
 *     flag (docs/fds.md);
 *   - fds sharing one open file description (dup, fork): kcmp(KCMP_FILE);
 *   - eventfd, timerfd, signalfd, epoll, inotify: fdinfo lines; inotify watches are found by
 *     inode among the job's open files, under its cwd and /tmp;
 *   - pipes and sockets: dump-fds-sockets.c. */
#include "common/grow.h"
#include "restore/fds-internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/timerfd.h>
#include <time.h>

int dump_fd_getfd(int pidfd, int fd)
{
	int d = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	return d < 0 ? -errno : d;
}

/* fdinfo's flags are the file's with O_CLOEXEC ORed in when the fd has it: an fd shown
 * without it is not close-on-exec; only the others need asking. */
static void fd_flags_inject(pid_t pid, struct restore_image *img)
{
	uint64_t ip;
	struct inject ij;
	bool ask = false;
	for (size_t i = 0; i < img->nfds; i++) {
		if (!(img->fds[i].flags & O_CLOEXEC))
			img->fds[i].st.flags |= RESTORE_FDS_F_FDFLAGS;
		ask |= (img->fds[i].flags & O_CLOEXEC) != 0;
	}
	if (!ask || inject_find_syscall(pid, &ip) < 0 || inject_begin(&ij, pid, ip) < 0)
		return; /* fdinfo's flags remain: O_CLOEXEC may be reported for a cleared fd */
	for (size_t i = 0; i < img->nfds; i++) {
		if (!(img->fds[i].flags & O_CLOEXEC))
			continue;
		const uint64_t a[6] = {(uint64_t)img->fds[i].fd, F_GETFD, 0, 0, 0, 0};
		int64_t ret;
		if (inject_syscall(&ij, SYS_fcntl, a, &ret) == 0 && ret >= 0)
			img->fds[i].st.flags |= RESTORE_FDS_F_FDFLAGS |
						(ret & FD_CLOEXEC ? RESTORE_FDS_F_CLOEXEC : 0);
	}
	inject_end(&ij);
}

/* Order fds by kind and inode, then by the kernel's order of their open file descriptions
 * (kcmp's answer is a consistent total order: obfuscated pointers), then by number. */
static int by_file(const void *a, const void *b, void *u)
{
	const struct restore_fd *x = *(struct restore_fd *const *)a;
	const struct restore_fd *y = *(struct restore_fd *const *)b;
	pid_t pid = *(const pid_t *)u;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if (x->ident.dev != y->ident.dev)
		return x->ident.dev < y->ident.dev ? -1 : 1;
	if (x->ident.ino != y->ident.ino)
		return x->ident.ino < y->ident.ino ? -1 : 1;
	long k = syscall(SYS_kcmp, pid, pid, KCMP_FILE, x->fd, y->fd);
	if (k == 1 || k == 2)
		return k == 1 ? -1 : 1;
	return (x->fd > y->fd) - (x->fd < y->fd); /* same file (0), or kcmp failed */
}

/* fds of one open file description end up next to each other, lowest number first: each
 * later one is a dup of the first. O(n log n) kcmp calls (anon inodes all share one inode). */
static int find_dups(pid_t pid, struct restore_image *img)
{
	_cleanup_free_ struct restore_fd **v = calloc(img->nfds ? img->nfds : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < img->nfds; i++)
		v[i] = &img->fds[i];
	qsort_r(v, img->nfds, sizeof(*v), by_file, &pid);
	struct restore_fd *first = img->nfds ? v[0] : NULL;
	for (size_t i = 1; i < img->nfds; i++) {
		struct restore_fd *f = v[i];
		if (first->kind == f->kind && first->ident.ino == f->ident.ino &&
		    first->ident.dev == f->ident.dev &&
		    syscall(SYS_kcmp, pid, pid, KCMP_FILE, first->fd, f->fd) == 0)
			f->st.dup_of = first->fd;
		else
			first = f;
	}
	return 0;
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
	return c == CLOCK_REALTIME_ALARM   ? CLOCK_REALTIME
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
	/* A periodic timer that expired and was not read yet is not running: the kernel re-arms
	 * it on the read. Its next expiry is at most one interval away. */
	if (!s->it_value_ns && s->it_interval_ns && s->ticks)
		s->it_value_ns = s->it_interval_ns;
	struct timespec now;
	if ((s->tflags & TFD_TIMER_ABSTIME) && clock_gettime(base_clock(clk), &now) == 0)
		s->abs_ns =
			(int64_t)now.tv_sec * 1000000000 + now.tv_nsec + (int64_t)s->it_value_ns;
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

/* Bytes of pipes and socket queues in one image: FDSTATE is one section (IMG_SEC_MAX_LEN). */
#define FDSTATE_MAX_BYTES (IMG_SEC_MAX_LEN / 2)

static int cmp_key_fd(const void *key, const void *elem)
{
	int k = *(const int *)key, fd = ((const struct restore_fd *)elem)->fd;
	return (k > fd) - (k < fd);
}

/* img->fds is sorted by fd. */
static const struct restore_fd *img_fd(const struct restore_image *img, int fd)
{
	return bsearch(&fd, img->fds, img->nfds, sizeof(*img->fds), cmp_key_fd);
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
static int find_inode(pid_t pid, const struct restore_image *img, dev_t dev, ino_t ino, char **ret)
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
			   &sdev, &mask, &ign) != 5 ||
		    wd == 0 || wd > INT32_MAX)
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
	int r = find_dups(pid, img);
	if (r < 0)
		return r;
	struct dump_sockets ds = {.diag = -1};
	r = has_socket(img) ? sockdiag_tcp_listeners(&ds.ls, &ds.nls) : 0;
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
			r = dump_socket_state(pidfd, img, f, &ds, err);
			break;
		default:
			break;
		}
		if (r < 0 && !err->msg[0])
			snprintf(err->msg, sizeof(err->msg),
				 "cannot read the state of fd %d (%s): %s", f->fd,
				 restore_fd_kind_name(f->kind), strerror(-r));
	}
	free(ds.ls);
	if (ds.diag >= 0)
		close(ds.diag);
	if (r == 0)
		r = dump_pipes_state(pid, pidfd, img, err);
	uint64_t bytes = 0;
	for (size_t i = 0; r == 0 && i < img->nfds; i++)
		bytes += img->fds[i].st.data_len;
	if (r == 0 && bytes > FDSTATE_MAX_BYTES) { /* the section must stay below its bound */
		snprintf(err->msg, sizeof(err->msg),
			 "the job's pipes and sockets hold %llu MiB, more than a checkpoint keeps "
			 "(%u MiB); drain them first",
			 (unsigned long long)(bytes >> 20), FDSTATE_MAX_BYTES >> 20);
		return -EOPNOTSUPP;
	}
	if (r < 0 && !err->msg[0])
		snprintf(err->msg, sizeof(err->msg), "cannot read the pipes of pid %d: %s",
			 (int)pid, strerror(-r));
	return r;
}
