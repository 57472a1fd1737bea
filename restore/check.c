/* Can this image run here? restore_image_check() answers before anything is started: the
 * CPU's xsave features and layout, the kernel's [vvar]/[vvar_vclock]/[vdso] sizes, and the
 * identity of every file outside the job's /tmp that the process had open or mapped (its
 * executable and shared libraries included: an upgrade may have replaced them). The restorer
 * checks the same again in the job (restore_process); this is the early, one-line answer for
 * the command line, taken in the caller's mount namespace (the job's differs only below /tmp,
 * whose files come back from the checkpoint's epoch and are not checked here).
 *
 * Identity is (device, inode, size, mtime). Files of the job's vfs (RESTORE_IDENT_F_JOB_VFS)
 * are compared on inode and size only: each mount of the vfs has a new st_dev, and the mtime
 * the vfs stored for a file written through the kernel's writeback cache can differ from the
 * one the kernel showed at checkpoint time; their contents are the epoch's by construction. */
#include "restore/restore-internal.h"

#include <cpuid.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <time.h>

int rst_ident_cmp(const struct stat *st, const struct restore_ident *id)
{
	bool vfs = id->flags & RESTORE_IDENT_F_JOB_VFS;
	if ((!vfs && st->st_dev != id->dev) || st->st_ino != id->ino)
		return RST_IDENT_OTHER;
	if ((uint64_t)st->st_size != id->size)
		return RST_IDENT_CHANGED;
	if (!vfs && (st->st_mtim.tv_sec != id->mtime_sec ||
		     (uint32_t)st->st_mtim.tv_nsec != id->mtime_nsec))
		return RST_IDENT_CHANGED;
	return RST_IDENT_SAME;
}

bool rst_path_allowed(const struct restore_process_opts *o, const char *path)
{
	if (!o)
		return false;
	if (o->allow_changed)
		return true;
	for (size_t i = 0; i < o->nallow_paths; i++)
		if (strcmp(o->allow_paths[i], path) == 0)
			return true;
	return false;
}

static void fmt_time(char *buf, size_t len, int64_t sec, uint32_t nsec)
{
	time_t t = (time_t)sec;
	struct tm tm;
	char d[32];
	if (!localtime_r(&t, &tm) || !strftime(d, sizeof(d), "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(d, sizeof(d), "%lld", (long long)sec);
	snprintf(buf, len, "%s.%09u", d, nsec);
}

void rst_ident_describe(char *buf, size_t len, const char *path, int how, const struct stat *st,
			const struct restore_ident *id)
{
	if (how == RST_IDENT_OTHER && st->st_ino == id->ino) /* same inode number, other fs */
		snprintf(buf, len,
			 "%s was replaced since the checkpoint (device %u:%u, was %u:%u); "
			 "--allow-changed %s to restore anyway",
			 path, major(st->st_dev), minor(st->st_dev), major((dev_t)id->dev),
			 minor((dev_t)id->dev), path);
	else if (how == RST_IDENT_OTHER)
		snprintf(buf, len,
			 "%s was replaced since the checkpoint (inode %llu, was %llu); "
			 "--allow-changed %s to restore anyway",
			 path, (unsigned long long)st->st_ino, (unsigned long long)id->ino, path);
	else if ((uint64_t)st->st_size != id->size)
		snprintf(buf, len,
			 "%s changed since the checkpoint (size %llu, was %llu); "
			 "--allow-changed %s to restore anyway",
			 path, (unsigned long long)st->st_size, (unsigned long long)id->size, path);
	else {
		char now[48], then[48];
		fmt_time(now, sizeof(now), st->st_mtim.tv_sec, (uint32_t)st->st_mtim.tv_nsec);
		fmt_time(then, sizeof(then), id->mtime_sec, id->mtime_nsec);
		snprintf(buf, len,
			 "%s changed since the checkpoint (modified %s, was %s); "
			 "--allow-changed %s to restore anyway",
			 path, now, then, path);
	}
}

int rst_cpu_check(const struct restore_image *img, uint64_t *ret_xcr0, uint32_t *ret_size,
		  char *msg, size_t len)
{
	unsigned a, b, c, d;
	__cpuid_count(0xd, 0, a, b, c, d);
	(void)a, (void)c, (void)d;
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	uint64_t xcr0 = ((uint64_t)hi << 32) | lo;
	*ret_xcr0 = xcr0;
	*ret_size = b;
	uint64_t want = img->proc.xcr0;
	for (size_t i = 0; i < img->nthreads; i++)
		want |= img->threads[i].xcr0;
	if (want & ~xcr0) {
		snprintf(msg, len,
			 "the image uses xsave features 0x%llx this CPU lacks (it has 0x%llx)",
			 (unsigned long long)want, (unsigned long long)xcr0);
		return -ENOEXEC;
	}
	if (img->proc.xcr0 == xcr0 && img->proc.xsave_size != b) {
		snprintf(msg, len,
			 "the image's xsave layout (%u bytes) is not this CPU's (%u bytes)",
			 img->proc.xsave_size, b);
		return -ENOEXEC;
	}
	for (size_t i = 0; i < img->nthreads; i++)
		if (img->threads[i].xsave_len > b) {
			snprintf(msg, len,
				 "xsave area of %u bytes (thread %d) does not fit this CPU (%u)",
				 img->threads[i].xsave_len, (int)img->threads[i].tid, b);
			return -ENOEXEC;
		}
	return 0;
}

/* Size of our own mapping named @name ("[vdso]"), 0 if none. */
static uint64_t self_size(const char *maps, const char *name)
{
	for (const char *l = maps; l && *l;) {
		const char *eol = strchr(l, '\n');
		size_t n = eol ? (size_t)(eol - l) : strlen(l);
		size_t k = strlen(name);
		unsigned long long lo, hi;
		if (n > k && memcmp(l + n - k, name, k) == 0 && l[n - k - 1] == ' ' &&
		    sscanf(l, "%llx-%llx", &lo, &hi) == 2)
			return hi - lo;
		l = eol ? eol + 1 : NULL;
	}
	return 0;
}

static int vdso_check(const struct restore_image *img, char *msg, size_t len)
{
	_cleanup_free_ char *maps = NULL;
	size_t n;
	int r = ck_read_file_at(AT_FDCWD, "/proc/self/maps", 64u << 20, &maps, &n);
	if (r < 0) {
		snprintf(msg, len, "cannot read /proc/self/maps: %s", strerror(-r));
		return r;
	}
	static const struct {
		uint32_t kind;
		const char *name;
	} special[] = {
		{RESTORE_VMA_VVAR, "[vvar]"},
		{RESTORE_VMA_VVAR_VCLOCK, "[vvar_vclock]"},
		{RESTORE_VMA_VDSO, "[vdso]"},
	};
	for (size_t k = 0; k < CK_ARRAY_SIZE(special); k++) {
		uint64_t mine = self_size(maps, special[k].name), theirs = 0;
		for (size_t i = 0; i < img->nvmas; i++)
			if (img->vmas[i].kind == special[k].kind)
				theirs = img->vmas[i].end - img->vmas[i].start;
		if (mine != theirs) {
			snprintf(msg, len,
				 "%s of the image (%llu bytes) does not match this kernel's (%llu "
				 "bytes): the image was taken under another kernel",
				 special[k].name, (unsigned long long)theirs,
				 (unsigned long long)mine);
			return -ENOEXEC;
		}
	}
	return 0;
}

struct ck_files {
	const struct restore_process_opts *opts;
	bool *used; /* per allow path: names a file of the image */
	char *msg;
	size_t len;
};

bool rst_procfs_file(const char *path, int fd)
{
	struct statfs sf;
	return !strncmp(path, "/proc/", 6) &&
	       (fd >= 0 ? fstatfs(fd, &sf) : statfs(path, &sf)) == 0 && sf.f_type == PROC_SUPER_MAGIC;
}

/* One file of the image: @dir_only compares the device and inode only (directories). */
static int check_file(struct ck_files *f, const char *path, const struct restore_ident *id,
		      bool dir_only)
{
	if (path[0] != '/' || strstr(path, " (deleted)") || !id->ino ||
	    (id->flags & RESTORE_IDENT_F_JOB_VFS) || rst_procfs_file(path, -1))
		return 0; /* gone at checkpoint time, the job's /tmp, or its /proc (a new mount
			   * each run: /proc/stat's identity never matches): not checked here */
	bool allowed = false;
	for (size_t i = 0; f->opts && i < f->opts->nallow_paths; i++)
		if (strcmp(f->opts->allow_paths[i], path) == 0)
			allowed = f->used[i] = true;
	if (allowed || (f->opts && f->opts->allow_changed))
		return 0;
	struct stat st;
	if (stat(path, &st) < 0) {
		int e = errno;
		snprintf(f->msg, f->len,
			 "%s, which the job had open or mapped, is gone (%s); --allow-changed %s "
			 "to try anyway",
			 path, strerror(e), path);
		return -ESTALE;
	}
	int how = rst_ident_cmp(&st, id);
	if (dir_only && how == RST_IDENT_CHANGED)
		how = RST_IDENT_SAME;
	if (how == RST_IDENT_SAME)
		return 0;
	rst_ident_describe(f->msg, f->len, path, how, &st, id);
	return -ESTALE;
}

static int check_files(const struct restore_image *img, struct ck_files *f)
{
	const struct restore_proc *p = &img->proc;
	int r = 0;
	if (p->exe)
		r = check_file(f, p->exe, &p->exe_ident, false);
	for (size_t i = 0; i < img->nvmas && r == 0; i++) {
		const struct restore_vma *v = &img->vmas[i];
		if ((v->kind == RESTORE_VMA_FILE_PRIVATE || v->kind == RESTORE_VMA_FILE_SHARED) &&
		    (v->flags & RESTORE_VMA_F_HAS_IDENT) && !(v->flags & RESTORE_VMA_F_DELETED))
			r = check_file(f, v->path, &v->ident, false);
	}
	for (size_t i = 0; i < img->nfds && r == 0; i++) {
		const struct restore_fd *d = &img->fds[i];
		if (d->kind == RESTORE_FD_REGULAR || d->kind == RESTORE_FD_DIR)
			r = check_file(f, d->target, &d->ident, d->kind == RESTORE_FD_DIR);
	}
	return r;
}

int restore_image_check(int dirfd, const char *id, const struct restore_process_opts *opts,
			struct restore_err *err)
{
	struct restore_image *img = NULL;
	int r = restore_image_load(dirfd, id, &img, err);
	if (r < 0)
		return r;
	char msg[sizeof(err->msg)] = "";
	uint64_t xcr0;
	uint32_t xsize;
	size_t na = opts ? opts->nallow_paths : 0;
	bool *used = calloc(na ? na : 1, sizeof(bool));
	if (!used) {
		restore_image_free(img);
		return -ENOMEM;
	}
	struct ck_files f = {.opts = opts, .used = used, .msg = msg, .len = sizeof(msg)};
	r = rst_cpu_check(img, &xcr0, &xsize, msg, sizeof(msg));
	if (r == 0)
		r = vdso_check(img, msg, sizeof(msg));
	if (r == 0)
		r = check_files(img, &f);
	for (size_t i = 0; r == 0 && i < na; i++)
		if (!used[i]) {
			snprintf(msg, sizeof(msg),
				 "--allow-changed %s: not a file the checkpointed process had open "
				 "or mapped",
				 opts->allow_paths[i]);
			r = -ENOENT;
		}
	free(used);
	restore_image_free(img);
	if (r < 0 && err)
		snprintf(err->msg, sizeof(err->msg), "%s", msg);
	return r;
}
