/* The fd table: for each fd its link target, fdinfo (pos, flags incl. O_CLOEXEC, mnt_id, and
 * the kind-specific lines the restorer needs: eventfd count, timerfd settings, epoll targets,
 * inotify watches, signalfd mask) and an fstat of the open file itself, taken on a duplicate
 * obtained with pidfd_getfd (falling back to stat through the /proc magic link). An fd whose
 * kind is not one the restorer knows refuses the dump, naming the fd. */
#include "common/grow.h"
#include "restore/fds-internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

static uint32_t fd_kind(const char *target, const struct stat *st)
{
	if (strncmp(target, "anon_inode:", 11) == 0) {
		const char *k = target + 11;
		if (strcmp(k, "[eventfd]") == 0)
			return RESTORE_FD_EVENTFD;
		if (strcmp(k, "[timerfd]") == 0)
			return RESTORE_FD_TIMERFD;
		if (strcmp(k, "[signalfd]") == 0)
			return RESTORE_FD_SIGNALFD;
		if (strcmp(k, "[eventpoll]") == 0)
			return RESTORE_FD_EPOLL;
		if (strcmp(k, "inotify") == 0)
			return RESTORE_FD_INOTIFY;
		return RESTORE_FD_OTHER;
	}
	switch (st->st_mode & S_IFMT) {
	case S_IFREG:
		return RESTORE_FD_REGULAR;
	case S_IFDIR:
		return RESTORE_FD_DIR;
	case S_IFIFO:
		return RESTORE_FD_PIPE;
	case S_IFSOCK:
		return RESTORE_FD_SOCKET;
	case S_IFCHR: {
		unsigned maj = major(st->st_rdev);
		/* 136-143: pty slaves (Unix98), 4: ttyN/ttySN, 5: /dev/tty, /dev/ptmx */
		if ((maj >= 136 && maj <= 143) || maj == 4 || maj == 5)
			return RESTORE_FD_TTY;
		return RESTORE_FD_CHR;
	}
	default:
		return RESTORE_FD_OTHER;
	}
}

static void fdinfo_fields(const char *info, struct restore_fd *f)
{
	for (const char *l = info; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		unsigned long long v;
		unsigned o;
		if (sscanf(l, "pos: %llu", &v) == 1)
			f->pos = v;
		else if (sscanf(l, "flags: %o", &o) == 1)
			f->flags = o;
		else if (sscanf(l, "mnt_id: %u", &o) == 1)
			f->mnt_id = o;
	}
}

static int fd_push(struct restore_image *img, size_t *cap)
{
	int r = CK_GROW(img->fds, *cap, img->nfds + 1);
	if (r < 0)
		return r;
	img->fds[img->nfds] = (struct restore_fd){0};
	return 0;
}

static int cmp_fd(const void *a, const void *b)
{
	const struct restore_fd *x = a, *y = b;
	return (x->fd > y->fd) - (x->fd < y->fd);
}

static int one_fd(pid_t pid, int pidfd, int fd, struct restore_fd *f)
{
	char p[96], target[IMG_MAX_PATH];
	f->fd = fd;
	snprintf(p, sizeof(p), "/proc/%d/fd/%d", (int)pid, fd);
	ssize_t n = readlink(p, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = 0;
	f->target = strdup(target);
	if (!f->target)
		return -ENOMEM;
	struct stat st;
	int dup = pidfd >= 0 ? (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0) : -1;
	int r = dup >= 0 ? fstat(dup, &st) : stat(p, &st);
	if (r < 0)
		r = -errno;
	if (dup >= 0)
		close(dup);
	if (r < 0)
		return r;
	f->rdev = st.st_rdev;
	f->ident = (struct restore_ident){
		.dev = st.st_dev,
		.ino = st.st_ino,
		.size = (uint64_t)st.st_size,
		.mtime_sec = st.st_mtim.tv_sec,
		.mtime_nsec = (uint32_t)st.st_mtim.tv_nsec,
		.mode = st.st_mode,
	};
	f->kind = fd_kind(target, &st);
	snprintf(p, sizeof(p), "/proc/%d/fdinfo/%d", (int)pid, fd);
	size_t len;
	/* An epoll set or inotify instance with many entries has a long fdinfo: read it whole
	 * for dump_fds_state(), then keep only what the image's text bound allows. */
	r = ck_read_file_at(AT_FDCWD, p, IMG_MAX_FDINFO, &f->fdinfo, &len);
	if (r < 0)
		return r;
	fdinfo_fields(f->fdinfo, f);
	return 0;
}

int dump_fds(pid_t pid, struct restore_image *img, bool inject, struct restore_err *err)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(p);
	if (!d)
		return -errno;
	_cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	size_t cap = 0;
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		r = fd_push(img, &cap);
		if (r < 0)
			break;
		struct restore_fd *f = &img->fds[img->nfds++];
		r = one_fd(pid, pidfd, atoi(de->d_name), f);
		if (r == -ENOENT || r == -EBADF) { /* closed meanwhile (by another task) */
			free(f->target);
			free(f->fdinfo);
			img->nfds--;
			r = 0;
			continue;
		}
		if (r < 0) {
			if (err)
				snprintf(err->msg, sizeof(err->msg),
					 "cannot inspect fd %s of pid %d: %s", de->d_name, (int)pid,
					 strerror(-r));
			break;
		}
		if (f->kind == RESTORE_FD_OTHER) {
			if (err)
				snprintf(err->msg, sizeof(err->msg),
					 "fd %d is %.200s; this kind of fd cannot be checkpointed",
					 f->fd, f->target);
			r = -EOPNOTSUPP;
			break;
		}
	}
	closedir(d);
	if (r < 0)
		return r;
	if (!img->fds && !(img->fds = calloc(1, sizeof(*img->fds))))
		return -ENOMEM;
	qsort(img->fds, img->nfds, sizeof(*img->fds), cmp_fd);
	r = dump_fds_state(pid, pidfd, img, inject, err);
	for (size_t i = 0; r == 0 && i < img->nfds; i++) {
		char *t = img->fds[i].fdinfo;
		if (strlen(t) >= IMG_MAX_TEXT) { /* cut after the last whole line that fits */
			t[IMG_MAX_TEXT - 1] = 0;
			char *nl = strrchr(t, '\n');
			if (nl)
				nl[1] = 0;
		}
	}
	return r;
}

#define JOB_VFS_FSTYPE "fuse.ckptenv"
#define MAX_VFS_DEVS   16

static void mark(struct restore_ident *id, const dev_t *devs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (id->ino && id->dev == devs[i])
			id->flags |= RESTORE_IDENT_F_JOB_VFS;
}

int dump_mark_job_vfs(pid_t pid, struct restore_image *img)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/mountinfo", (int)pid);
	_cleanup_free_ char *info = NULL;
	size_t len;
	int r = ck_read_file_at(AT_FDCWD, p, IMG_MAX_TEXT, &info, &len);
	if (r < 0)
		return r;
	dev_t devs[MAX_VFS_DEVS];
	size_t n = 0;
	/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS" */
	for (char *l = info, *eol; l && *l && n < MAX_VFS_DEVS; l = eol ? eol + 1 : NULL) {
		unsigned maj, min;
		eol = strchr(l, '\n');
		const char *sep = strstr(l, " - ");
		if (!sep || (eol && sep > eol) || sscanf(l, "%*u %*u %u:%u", &maj, &min) != 2)
			continue;
		if (!strncmp(sep + 3, JOB_VFS_FSTYPE " ", strlen(JOB_VFS_FSTYPE) + 1))
			devs[n++] = makedev(maj, min);
	}
	mark(&img->proc.exe_ident, devs, n);
	for (size_t i = 0; i < img->nvmas; i++)
		if (img->vmas[i].flags & RESTORE_VMA_F_HAS_IDENT)
			mark(&img->vmas[i].ident, devs, n);
	for (size_t i = 0; i < img->nfds; i++) {
		mark(&img->fds[i].ident, devs, n);
		for (size_t j = 0; j < img->fds[i].st.nwatches; j++) {
			struct restore_inotify_watch *w = &img->fds[i].st.watches[j];
			for (size_t k = 0; k < n; k++)
				if (w->dev == devs[k])
					w->flags |= RESTORE_IDENT_F_JOB_VFS;
		}
	}
	return 0;
}

/* The length of @p without the " (deleted)" /proc appends. */
static int path_len(const char *p)
{
	const char *d = strstr(p, " (deleted)");
	return (int)(d ? (size_t)(d - p) : strlen(p));
}

/* What the restorer refuses (restore-fds.c plan_one, reopen, rst_plan_pipe) when nothing but
 * the given stdio, the vfs's files and the proxied sockets are handed over. */
static int check_strict(const struct restore_fd *f, const struct restore_dump_opts *opts,
			struct restore_err *err)
{
	bool deleted = strstr(f->target, " (deleted)") != NULL;
	switch (f->kind) {
	case RESTORE_FD_PIPE:
		if (f->fd > 2 && (f->st.flags & RESTORE_FDS_F_PEER_OUT) &&
		    !(f->st.flags & RESTORE_FDS_F_GIVEN_ANY))
			REFUSE(err,
			       "fd %d is a pipe whose other end is held outside the job (%s); it "
			       "cannot be checkpointed: close it first",
			       f->fd, f->target);
		return 0;
	case RESTORE_FD_REGULAR:
		if (!strncmp(f->target, "/memfd:", 7))
			REFUSE(err,
			       "fd %d is a memfd (%s); a restore cannot make it again yet, so it "
			       "cannot be checkpointed: close it first",
			       f->fd, f->target);
		if (deleted && (f->ident.flags & RESTORE_IDENT_F_JOB_VFS))
			return 0; /* reopened by inode (the epoch keeps it) */
		/* fall through */
	case RESTORE_FD_DIR:
	case RESTORE_FD_CHR:
		if (f->target[0] != '/' || deleted)
			REFUSE(err,
			       "fd %d is %.*s, a %s deleted while open; only files of the job's "
			       "/tmp are kept once deleted, so it cannot be checkpointed: close it "
			       "first",
			       f->fd, path_len(f->target), f->target, restore_fd_kind_name(f->kind));
		return 0;
	case RESTORE_FD_SOCKET:
		if ((f->st.flags & RESTORE_FDS_F_PEER_OUT) && f->st.family == AF_UNIX &&
		    !(f->st.flags & RESTORE_FDS_F_RECONNECT))
			REFUSE(err,
			       "fd %d is a unix socket connected outside the job (%s); a restore "
			       "cannot connect it again, so it cannot be checkpointed: close it first",
			       f->fd, f->target);
		return 0;
	case RESTORE_FD_TTY:
		if (f->fd > 2 && !(opts->tty_given && (!strcmp(f->target, "/dev/pts/0") ||
						       !strcmp(f->target, "/dev/tty"))))
			REFUSE(err,
			       "fd %d is the terminal %s, not the job's own; a restore cannot open it "
			       "again, so it cannot be checkpointed: close it first",
			       f->fd, f->target);
		return 0;
	case RESTORE_FD_OTHER:
		REFUSE(err,
		       "fd %d (%s) is of a kind a restore cannot make again; it cannot be "
		       "checkpointed: close it first",
		       f->fd, f->target);
	default:
		return 0;
	}
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* CAP_SYS_RESOURCE (root, mostly): the restorer lifts the hard limit itself
 * (restore_nofile_raise). */
static bool may_raise_nofile(void)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	if (ck_read_file_at(AT_FDCWD, "/proc/self/status", 1 << 16, &buf, &len) < 0)
		return false;
	const char *p = memmem(buf, len, "\nCapEff:", 8);
	return p && (strtoull(p + 8, NULL, 16) >> 24) & 1; /* CAP_SYS_RESOURCE */
}

/* The restorer holds every fd of the image twice for a moment (opened above the highest one,
 * then moved into place: restore-fds.c) and one fd per mapped file or shared memory object
 * besides. Beyond this process's hard open-file limit (the restorer raises its soft limit to
 * it) every restore of the image fails, after the checkpoint said it succeeded. */
int restore_nofile_check(const struct restore_image *img, bool restoring, struct restore_err *err)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_max == RLIM_INFINITY || may_raise_nofile())
		return 0;
	int maxfd = 2;
	for (size_t i = 0; i < img->nfds; i++)
		maxfd = CK_MAX(maxfd, img->fds[i].fd);
	_cleanup_free_ uint64_t *ino = calloc(img->nvmas + 1, sizeof(*ino));
	if (!ino)
		return 0; /* the restore will say */
	size_t n = 0, files = 0;
	for (size_t i = 0; i < img->nvmas; i++) {
		uint32_t k = img->vmas[i].kind;
		if (k == RESTORE_VMA_FILE_PRIVATE || k == RESTORE_VMA_FILE_SHARED ||
		    k == RESTORE_VMA_MEMFD || k == RESTORE_VMA_ANON_SHARED)
			ino[n++] = img->vmas[i].inode;
	}
	qsort(ino, n, sizeof(*ino), u64_cmp);
	for (size_t i = 0; i < n; i++)
		files += i == 0 || ino[i] != ino[i - 1];
	uint64_t need = (uint64_t)maxfd + 1 + img->nfds + files + 32;
	if (need > rl.rlim_max)
		REFUSE(err,
		       "the job has %zu fds open, up to fd %d, and %zu mapped files or shared "
		       "memory objects: a restore "
		       "would need about %llu fds at once, over the open-file limit %llu; %s",
		       img->nfds, maxfd, files, (unsigned long long)need,
		       (unsigned long long)rl.rlim_max,
		       restoring ? "restore from a shell with a higher hard limit (ulimit -Hn)"
				 : "close some, or start the job from a shell with a higher hard "
				   "limit (ulimit -Hn)");
	return 0;
}

int dump_check_restorable(struct restore_image *img, const struct restore_dump_opts *opts,
			  struct restore_err *err)
{
	for (size_t i = 0; i < img->nfds; i++) {
		struct restore_fd *f = &img->fds[i];
		for (int k = 0; opts && f->fd > 2 && f->kind == RESTORE_FD_PIPE &&
				(f->st.flags & RESTORE_FDS_F_PEER_OUT) && k < 3;
		     k++)
			if (opts->given[k].ino && f->ident.ino == opts->given[k].ino &&
			    f->ident.dev == opts->given[k].dev)
				f->st.flags |= RESTORE_FDS_F_GIVEN(k);
		int r = opts && opts->strict ? check_strict(f, opts, err) : 0;
		if (r < 0)
			return r;
	}
	int r = opts && opts->strict ? restore_nofile_check(img, false, err) : 0;
	if (r < 0)
		return r;
	const char *cwd = img->proc.cwd;
	if (opts && opts->strict && cwd && (cwd[0] != '/' || strstr(cwd, " (deleted)")))
		REFUSE(err,
		       "the job's working directory %.*s was deleted; a restore could not enter "
		       "it, so it cannot be checkpointed: let it change directory first",
		       path_len(cwd), cwd);
	return 0;
}
