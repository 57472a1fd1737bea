/* Memory maps and page contents.
 *
 * Maps come from /proc/PID/smaps (VmFlags included). What is saved depends on the kind:
 *   anon private, heap, stack      present or swapped pages (pagemap bits 63/62)
 *   file private                   only pages that became anonymous (COW'd: pagemap bit 61 clear)
 *   file private of a deleted file every present page (the file will not be there to map)
 *   anon shared, memfd             the data of the shmem object (SEEK_DATA on map_files), each
 *                                  offset once however often it is mapped, or, when map_files
 *                                  cannot be opened, the present pages
 *   file shared, vvar, vdso        nothing: identity only / remapped at restore
 * Contents are read with process_vm_readv in chunks of 1 MiB, falling back to
 * /proc/PID/mem (which reads even PROT_NONE pages here: PROC_MEM_ALWAYS_FORCE) when a run is not
 * readable. Zero pages are dropped by the image writer. */
#include "common/grow.h"
#include "restore/dump-internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>

#define PM_PRESENT (1ull << 63)
#define PM_SWAP	   (1ull << 62)
#define PM_FILE	   (1ull << 61) /* file page or shared anon */

#define CHUNK_PAGES IMG_CHUNK_PAGES

static bool ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && strcmp(s + a - b, suf) == 0;
}

static uint32_t classify(const char *path, bool shared, uint32_t *flags)
{
	if (ends_with(path, " (deleted)"))
		*flags |= RESTORE_VMA_F_DELETED;
	if (!*path || strncmp(path, "[anon:", 6) == 0)
		return shared ? RESTORE_VMA_ANON_SHARED : RESTORE_VMA_ANON_PRIVATE;
	if (strncmp(path, "[anon_shmem:", 12) == 0)
		return RESTORE_VMA_ANON_SHARED;
	if (strcmp(path, "[heap]") == 0)
		return RESTORE_VMA_HEAP;
	if (strcmp(path, "[stack]") == 0)
		return RESTORE_VMA_STACK;
	if (strcmp(path, "[vvar]") == 0)
		return RESTORE_VMA_VVAR;
	if (strcmp(path, "[vvar_vclock]") == 0)
		return RESTORE_VMA_VVAR_VCLOCK;
	if (strcmp(path, "[vdso]") == 0)
		return RESTORE_VMA_VDSO;
	if (strncmp(path, "/memfd:", 7) == 0)
		return RESTORE_VMA_MEMFD;
	if (shared && (strcmp(path, "/dev/zero (deleted)") == 0 || strncmp(path, "/SYSV", 5) == 0))
		return RESTORE_VMA_ANON_SHARED;
	if (!shared && strcmp(path, "/dev/zero") == 0)
		return RESTORE_VMA_ANON_PRIVATE;
	return shared ? RESTORE_VMA_FILE_SHARED : RESTORE_VMA_FILE_PRIVATE;
}

static int vma_push(struct restore_image *img, size_t *cap)
{
	int r = CK_GROW(img->vmas, *cap, img->nvmas + 1);
	if (r < 0)
		return r;
	img->vmas[img->nvmas] = (struct restore_vma){0};
	return 0;
}

/* Stat the file behind a mapping: through map_files (works for deleted files; needs
 * CAP_CHECKPOINT_RESTORE), else by path when the inode still matches. */
static void vma_ident(pid_t pid, struct restore_vma *v)
{
	char p[96];
	struct stat st;
	snprintf(p, sizeof(p), "/proc/%d/map_files/%llx-%llx", (int)pid,
		 (unsigned long long)v->start, (unsigned long long)v->end);
	if (stat(p, &st) < 0 && (v->path[0] != '/' || (v->flags & RESTORE_VMA_F_DELETED) ||
				 stat(v->path, &st) < 0 || st.st_ino != v->inode))
		return;
	v->ident = (struct restore_ident){
		.dev = st.st_dev,
		.ino = st.st_ino,
		.size = (uint64_t)st.st_size,
		.mtime_sec = st.st_mtim.tv_sec,
		.mtime_nsec = (uint32_t)st.st_mtim.tv_nsec,
		.mode = st.st_mode,
	};
	v->flags |= RESTORE_VMA_F_HAS_IDENT;
}

int dump_vmas(pid_t pid, struct restore_image *img, struct restore_err *err)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	_cleanup_free_ char *buf = NULL;
	size_t len, cap = 0;
	int r = ck_read_file_at(AT_FDCWD, path, 512u << 20, &buf, &len);
	if (r < 0)
		return r;
	struct restore_vma *cur = NULL;
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] >= 'A' && line[0] <= 'Z') {
			if (cur && strncmp(line, "VmFlags:", 8) == 0) {
				const char *f = line + 8;
				while (*f == ' ')
					f++;
				free(cur->vmflags);
				cur->vmflags = strndup(f, 255);
				if (!cur->vmflags)
					return -ENOMEM;
				if (strstr(f, "gd"))
					cur->flags |= RESTORE_VMA_F_GROWSDOWN;
			}
			continue;
		}
		unsigned long long lo, hi, off, ino;
		unsigned maj, mn;
		char perms[8];
		int n = 0;
		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &lo, &hi, perms, &off, &maj,
			   &mn, &ino, &n) < 7 ||
		    strlen(perms) != 4) {
			if (err)
				snprintf(err->msg, sizeof(err->msg), "%s: cannot parse \"%.80s\"",
					 path, line);
			return -EIO;
		}
		cur = NULL;
		const char *name = line + n;
		if (strcmp(name, "[vsyscall]") == 0)
			continue; /* fixed by the kernel, same in every process */
		r = vma_push(img, &cap);
		if (r < 0)
			return r;
		struct restore_vma *v = &img->vmas[img->nvmas++];
		v->start = lo;
		v->end = hi;
		v->pgoff = off;
		v->maj = maj;
		v->min = mn;
		v->inode = ino;
		v->prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
			  (perms[2] == 'x' ? PROT_EXEC : 0);
		bool shared = perms[3] == 's';
		if (shared)
			v->flags |= RESTORE_VMA_F_SHARED;
		v->path = strdup(name);
		if (!v->path)
			return -ENOMEM;
		v->kind = classify(name, shared, &v->flags);
		if (ino)
			vma_ident(pid, v);
		cur = v;
	}
	for (size_t i = 0; i < img->nvmas; i++)
		if (!img->vmas[i].vmflags && !(img->vmas[i].vmflags = strdup("")))
			return -ENOMEM;
	return 0;
}

struct pg_ctx {
	pid_t pid;
	int pagemap_fd, mem_fd;
	uint64_t *pm; /* CHUNK_PAGES entries */
	struct restore_image_writer *w;
	const struct restore_dump_opts *opts;
	struct restore_dump_stats *st;
	uint64_t next_progress;
};

/* Copy [addr, addr+len) of the target into a writer buffer and queue it. */
static int save_range(struct pg_ctx *c, uint64_t addr, size_t len)
{
	uint8_t *buf = img_writer_buf(c->w);
	struct iovec l = {buf, len}, rm = {(void *)addr, len};
	ssize_t n = process_vm_readv(c->pid, &l, 1, &rm, 1, 0);
	if (n != (ssize_t)len) {
		n = ck_pread_full(c->mem_fd, buf, len, (off_t)addr);
		if (n < 0)
			return (int)n;
		if ((size_t)n != len)
			return -EIO;
	}
	c->st->pages_scanned += len / RESTORE_PAGE_SIZE;
	int r = img_writer_submit(c->w, addr, len);
	if (r < 0)
		return r;
	uint64_t done = img_writer_bytes_nowait(c->w);
	if (c->opts && c->opts->progress && done >= c->next_progress) {
		c->opts->progress(done, c->opts->userdata);
		c->next_progress = done + (64u << 20);
	}
	return 0;
}

static bool want_page(uint64_t e, uint32_t kind, uint32_t flags)
{
	if (!(e & (PM_PRESENT | PM_SWAP)))
		return false;
	if (kind == RESTORE_VMA_FILE_PRIVATE && !(flags & RESTORE_VMA_F_DELETED))
		return !(e & PM_FILE);
	return true;
}

/* Walk a vma through pagemap and save the runs of wanted pages. */
static int save_by_pagemap(struct pg_ctx *c, const struct restore_vma *v)
{
	for (uint64_t a = v->start; a < v->end;) {
		size_t np = (size_t)CK_MIN((v->end - a) / RESTORE_PAGE_SIZE, (uint64_t)CHUNK_PAGES);
		ssize_t n = ck_pread_full(c->pagemap_fd, c->pm, np * 8,
					  (off_t)(a / RESTORE_PAGE_SIZE * 8));
		if (n < 0)
			return (int)n;
		if ((size_t)n != np * 8)
			return -EIO;
		for (size_t i = 0; i < np;) {
			while (i < np && !want_page(c->pm[i], v->kind, v->flags))
				i++;
			size_t j = i;
			while (j < np && want_page(c->pm[j], v->kind, v->flags))
				j++;
			if (j > i) {
				int r = save_range(c, a + i * RESTORE_PAGE_SIZE,
						   (j - i) * RESTORE_PAGE_SIZE);
				if (r < 0)
					return r;
			}
			i = j;
		}
		a += np * RESTORE_PAGE_SIZE;
	}
	return 0;
}

/* Save the data extents of shmem object @fd in [lo, hi) (object offsets) through mapping @v. */
static int save_extents(struct pg_ctx *c, int fd, const struct restore_vma *v, off_t lo, off_t hi)
{
	for (off_t off = lo; off < hi;) {
		off_t d = lseek(fd, off, SEEK_DATA);
		if (d < 0 || d >= hi)
			break; /* ENXIO: no data past off */
		off_t h = lseek(fd, d, SEEK_HOLE);
		if (h < 0 || h > hi)
			h = hi;
		d &= ~(off_t)(RESTORE_PAGE_SIZE - 1);
		if (d < lo)
			d = lo;
		for (off_t x = d; x < h;) {
			size_t len = (size_t)CK_MIN((uint64_t)(h - x),
						    (uint64_t)CHUNK_PAGES * RESTORE_PAGE_SIZE);
			len = (len + RESTORE_PAGE_SIZE - 1) & ~(size_t)(RESTORE_PAGE_SIZE - 1);
			if ((off_t)len > hi - x)
				len = (size_t)(hi - x);
			uint8_t *buf = img_writer_buf(c->w);
			ssize_t n = ck_pread_full(fd, buf, len, x);
			if (n < 0)
				return (int)n;
			memset(buf + n, 0, len - (size_t)n); /* beyond EOF reads as zero */
			uint64_t addr = v->start + (uint64_t)x - v->pgoff;
			c->st->pages_scanned += len / RESTORE_PAGE_SIZE;
			int r = img_writer_submit(c->w, addr, len);
			if (r < 0)
				return r;
			x += (off_t)len;
		}
		off = h;
	}
	return 0;
}

/* Shared memory: read the object itself, data extents only, so pages the process never
 * touched through this mapping but that hold data are kept, and holes are skipped. An object
 * mapped more than once (twice at other addresses or offsets, a mremap'd alias, a mapping
 * split by mprotect) is one object: each offset is saved through the first mapping covering it
 * (@whole[j]: mapping j was saved from the object, not from its page tables), and the restorer
 * maps every one of them onto a single object (docs/image-format.md, version 2). */
static int save_shmem(struct pg_ctx *c, const struct restore_image *img, size_t i, bool *whole)
{
	const struct restore_vma *v = &img->vmas[i];
	char p[96];
	snprintf(p, sizeof(p), "/proc/%d/map_files/%llx-%llx", (int)c->pid,
		 (unsigned long long)v->start, (unsigned long long)v->end);
	_cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return save_by_pagemap(c, v);
	whole[i] = true;
	uint64_t lo = v->pgoff, hi = v->pgoff + (v->end - v->start);
	for (uint64_t x = lo; x < hi;) {
		/* An earlier mapping holding x moves x past it; else [x, next start) is ours. */
		uint64_t covered = x, next = hi;
		for (size_t j = 0; j < i; j++) {
			const struct restore_vma *o = &img->vmas[j];
			if (!whole[j] || !img_vma_same_shmem(o, v))
				continue;
			uint64_t olo = o->pgoff, ohi = o->pgoff + (o->end - o->start);
			if (olo <= x && ohi > covered)
				covered = ohi;
			else if (olo > x && olo < next)
				next = olo;
		}
		if (covered > x) {
			x = covered;
			continue;
		}
		int r = save_extents(c, fd, v, (off_t)x, (off_t)next);
		if (r < 0)
			return r;
		x = next;
	}
	return 0;
}

int dump_pages(pid_t pid, const struct restore_image *img, struct restore_image_writer *w,
	       const struct restore_dump_opts *opts, struct restore_dump_stats *st,
	       struct restore_err *err)
{
	char p[64];
	struct pg_ctx c = {.pid = pid, .w = w, .opts = opts, .st = st};
	snprintf(p, sizeof(p), "/proc/%d/pagemap", (int)pid);
	_cleanup_close_ int pm_fd = c.pagemap_fd = open(p, O_RDONLY | O_CLOEXEC);
	snprintf(p, sizeof(p), "/proc/%d/mem", (int)pid);
	_cleanup_close_ int mem_fd = c.mem_fd = open(p, O_RDONLY | O_CLOEXEC);
	if (pm_fd < 0 || mem_fd < 0) {
		int r = -errno;
		if (err)
			snprintf(err->msg, sizeof(err->msg), "cannot open %s: %s", p, strerror(-r));
		return r;
	}
	_cleanup_free_ uint64_t *pmv = c.pm = malloc(CHUNK_PAGES * sizeof(uint64_t));
	_cleanup_free_ bool *whole = calloc(img->nvmas ? img->nvmas : 1, sizeof(bool));
	if (!pmv || !whole)
		return -ENOMEM;
	for (size_t i = 0; i < img->nvmas; i++) {
		const struct restore_vma *v = &img->vmas[i];
		int r = 0;
		switch (v->kind) {
		case RESTORE_VMA_FILE_SHARED:
		case RESTORE_VMA_VVAR:
		case RESTORE_VMA_VVAR_VCLOCK:
		case RESTORE_VMA_VDSO:
			break;
		case RESTORE_VMA_ANON_SHARED:
		case RESTORE_VMA_MEMFD:
			r = (v->flags & RESTORE_VMA_F_SHARED) ? save_shmem(&c, img, i, whole)
							      : save_by_pagemap(&c, v);
			break;
		default:
			r = save_by_pagemap(&c, v);
			break;
		}
		if (r < 0) {
			if (err)
				snprintf(err->msg, sizeof(err->msg),
					 "cannot save memory of pid %d at 0x%llx (%s): %s",
					 (int)pid, (unsigned long long)v->start, v->path,
					 strerror(-r));
			return r;
		}
	}
	return 0;
}
