/* Memory side of restore_process(): what the blob maps (one ckr_vma per image mapping, files
 * reopened and checked now, shared memory as memfds), which page runs it reads, how the
 * restorer's vDSO triple moves, and where the landing zone goes: a gap that overlaps neither
 * the image's mappings nor the restorer's own, so both the old address space can be rebuilt
 * around it and the blob can run from it meanwhile. */
#include "restore/image-internal.h"
#include "restore/restore-internal.h"

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define TASK_SIZE_47 0x7ffffffff000ull
#define ZONE_FLOOR   (1ull << 32) /* clear of mmap_min_addr and of non-PIE executables */

int rst_self_maps(struct rst_ctx *c)
{
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return -errno;
	char line[512];
	size_t cap = 0;
	int r = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi;
		int n = 0;
		if (sscanf(line, "%llx-%llx %*s %*s %*s %*s %n", &lo, &hi, &n) < 2)
			continue;
		if (c->nself == cap) {
			cap = cap ? cap * 2 : 128;
			struct rst_self_vma *v = realloc(c->self, cap * sizeof(*v));
			if (!v) {
				r = -ENOMEM;
				break;
			}
			c->self = v;
		}
		struct rst_self_vma *v = &c->self[c->nself++];
		v->start = lo;
		v->end = hi;
		v->name[0] = 0;
		if (n > 0 && line[n] == '[') {
			snprintf(v->name, sizeof(v->name), "%s", line + n);
			v->name[strcspn(v->name, "\n")] = 0;
		}
	}
	fclose(f);
	return r;
}

/* [vvar], [vvar_vclock], [vdso] of the image go back to their old addresses by moving ours:
 * same kernel, same sizes, else the image cannot run here. */
int rst_vdso_plan(struct rst_ctx *c)
{
	static const struct {
		uint32_t kind;
		const char *name;
	} special[CKR_NREMAP] = {
		{RESTORE_VMA_VVAR, "[vvar]"},
		{RESTORE_VMA_VVAR_VCLOCK, "[vvar_vclock]"},
		{RESTORE_VMA_VDSO, "[vdso]"},
	};
	for (unsigned k = 0; k < CKR_NREMAP; k++) {
		const struct restore_vma *iv = NULL;
		const struct rst_self_vma *sv = NULL;
		for (size_t i = 0; i < c->img->nvmas; i++)
			if (c->img->vmas[i].kind == special[k].kind)
				iv = &c->img->vmas[i];
		for (size_t i = 0; i < c->nself; i++)
			if (strcmp(c->self[i].name, special[k].name) == 0)
				sv = &c->self[i];
		if (!iv && !sv)
			continue;
		if (!iv || !sv || iv->end - iv->start != sv->end - sv->start)
			return rst_fail(c, -ENOEXEC,
					"%s of the image (%llu bytes) does not match this kernel's "
					"(%llu bytes)",
					special[k].name,
					iv ? (unsigned long long)(iv->end - iv->start) : 0ull,
					sv ? (unsigned long long)(sv->end - sv->start) : 0ull);
		c->remap[c->nremap++] = (struct ckr_remap){
			.cur = sv->start, .target = iv->start, .len = iv->end - iv->start};
	}
	return 0;
}

/* A deleted file of the job's vfs that the caller's by-inode directory can open again. */
static bool by_inode(const struct rst_ctx *c, const struct restore_vma *v)
{
	return (v->flags & RESTORE_VMA_F_DELETED) && img_vma_job_vfs(v) && c->opts &&
	       c->opts->vfs_ino_dir;
}

static int open_vma_file(struct rst_ctx *c, size_t i)
{
	const struct restore_vma *v = &c->img->vmas[i];
	for (size_t j = 0; j < i; j++) /* one fd per file */
		if (c->vmas[j].how == CKR_MAP_FILE && c->img->vmas[j].kind == v->kind &&
		    strcmp(c->img->vmas[j].path, v->path) == 0 && c->img->vmas[j].inode == v->inode)
			return c->vmas[j].fd;
	bool shared = v->kind == RESTORE_VMA_FILE_SHARED;
	char byino[PATH_MAX];
	const char *path = v->path;
	if (by_inode(c, v)) {
		snprintf(byino, sizeof(byino), "%s/%llu", c->opts->vfs_ino_dir,
			 (unsigned long long)v->ident.ino);
		path = byino;
	}
	int fd = open(path, (shared ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0 && shared && errno == EACCES && !(v->prot & PROT_WRITE))
		fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return rst_fail(c, -errno, "cannot open %s (mapped at 0x%llx): %s", v->path,
				(unsigned long long)v->start, strerror(errno));
	fd = rst_fd_high(c, fd);
	if (fd < 0)
		return fd;
	c->tmp_fds[c->ntmp++] = fd;
	int r = 0;
	if (v->flags & RESTORE_VMA_F_HAS_IDENT) {
		r = rst_ident_check(c, fd, &v->ident, v->path);
	} else {
		struct stat st;
		if (fstat(fd, &st) < 0)
			r = -errno;
		else if (st.st_ino != v->inode)
			r = rst_fail(c, -ESTALE, "%s is another file than at checkpoint time",
				     v->path);
	}
	return r < 0 ? r : fd;
}

/* One memfd per shmem object: a mapping of an object met before (img_vma_same_shmem) gets the
 * same fd, so a write through one address is seen through the others; the memfd is as large
 * as the furthest offset any of its mappings reaches. */
static int memfd_for(struct rst_ctx *c, size_t i)
{
	const struct restore_image *img = c->img;
	const struct restore_vma *v = &img->vmas[i];
	uint64_t size = 0;
	for (size_t j = 0; j < img->nvmas; j++) {
		const struct restore_vma *o = &img->vmas[j];
		if (j != i && !img_vma_same_shmem(o, v))
			continue;
		if (j < i)
			return c->vmas[j].fd;
		size = CK_MAX(size, o->pgoff + (o->end - o->start));
	}
	int fd = memfd_create("ckptenv-shmem", MFD_CLOEXEC);
	if (fd < 0 && errno == EMFILE) {
		struct rlimit rl = {0};
		(void)getrlimit(RLIMIT_NOFILE, &rl);
		size_t objs = 0;
		for (size_t j = 0; j < img->nvmas; j++) {
			const struct restore_vma *o = &img->vmas[j];
			bool first = (o->kind == RESTORE_VMA_ANON_SHARED ||
				      o->kind == RESTORE_VMA_MEMFD) &&
				     (o->flags & RESTORE_VMA_F_SHARED);
			for (size_t k = 0; first && k < j; k++)
				first = !img_vma_same_shmem(&img->vmas[k], o);
			objs += first;
		}
		return rst_fail(c, -EMFILE,
				"the image has %zu shared memory objects and %zu fds: the restore "
				"holds them all open at once, over the open file limit %llu here "
				"(raise it: ulimit -n)",
				objs, img->nfds, (unsigned long long)rl.rlim_cur);
	}
	if (fd < 0)
		return -errno;
	fd = rst_fd_high(c, fd);
	if (fd < 0)
		return fd;
	c->tmp_fds[c->ntmp++] = fd;
	if (ftruncate(fd, (off_t)size) < 0)
		return -errno;
	return fd;
}

int rst_vmas_plan(struct rst_ctx *c)
{
	const struct restore_image *img = c->img;
	c->vmas = calloc(img->nvmas ? img->nvmas : 1, sizeof(*c->vmas));
	c->tmp_fds = calloc(img->nvmas ? img->nvmas : 1, sizeof(int));
	if (!c->vmas || !c->tmp_fds)
		return -ENOMEM;
	for (size_t i = 0; i < img->nvmas; i++) {
		const struct restore_vma *v = &img->vmas[i];
		struct ckr_vma *o = &c->vmas[i];
		*o = (struct ckr_vma){.start = v->start,
				      .end = v->end,
				      .pgoff = v->pgoff,
				      .prot = v->prot,
				      .fill_prot = v->prot,
				      .fd = -1,
				      .how = CKR_MAP_ANON,
				      .mmap_flags = MAP_PRIVATE};
		bool shared = v->flags & RESTORE_VMA_F_SHARED;
		int fd = -1;
		switch (v->kind) {
		case RESTORE_VMA_VVAR:
		case RESTORE_VMA_VVAR_VCLOCK:
		case RESTORE_VMA_VDSO:
			o->how = CKR_MAP_SKIP;
			continue;
		case RESTORE_VMA_ANON_PRIVATE:
		case RESTORE_VMA_HEAP:
		case RESTORE_VMA_STACK:
			o->pgoff = 0;
			if (v->flags & RESTORE_VMA_F_GROWSDOWN)
				o->mmap_flags |= MAP_GROWSDOWN;
			continue;
		case RESTORE_VMA_ANON_SHARED:
		case RESTORE_VMA_MEMFD:
			if (!shared) { /* private view: every present page was saved */
				o->pgoff = 0;
				continue;
			}
			fd = memfd_for(c, i);
			break;
		case RESTORE_VMA_FILE_PRIVATE:
			if (v->flags & RESTORE_VMA_F_DELETED) { /* present pages were saved */
				o->pgoff = 0;
				continue;
			}
			fd = open_vma_file(c, i);
			break;
		case RESTORE_VMA_FILE_SHARED:
			if ((v->flags & RESTORE_VMA_F_DELETED) && !by_inode(c, v))
				return rst_fail(
					c, -EOPNOTSUPP,
					"shared mapping of deleted file %s at 0x%llx cannot "
					"be restored yet",
					v->path, (unsigned long long)v->start);
			fd = open_vma_file(c, i);
			break;
		default:
			return rst_fail(c, -EOPNOTSUPP, "mapping kind %u at 0x%llx", v->kind,
					(unsigned long long)v->start);
		}
		if (fd < 0)
			return fd;
		o->how = CKR_MAP_FILE;
		o->fd = fd;
		o->mmap_flags = shared ? MAP_SHARED : MAP_PRIVATE;
	}
	return 0;
}

/* Runs tile pages.img in address order: merge neighbours into single preads, and make the
 * mappings they land in writable while they are filled. */
int rst_runs_plan(struct rst_ctx *c)
{
	const struct restore_image *img = c->img;
	c->runs = calloc(img->nruns ? img->nruns : 1, sizeof(*c->runs));
	if (!c->runs)
		return -ENOMEM;
	size_t vi = 0;
	for (size_t i = 0; i < img->nruns; i++) {
		const struct restore_page_run *r = &img->runs[i];
		uint64_t len = (uint64_t)r->npages * RESTORE_PAGE_SIZE;
		struct ckr_run *last = c->nruns ? &c->runs[c->nruns - 1] : NULL;
		if (last && last->addr + last->len == r->addr &&
		    last->off + last->len == r->file_off)
			last->len += len;
		else
			c->runs[c->nruns++] = (struct ckr_run){r->addr, r->file_off, len};
		for (uint64_t a = r->addr; a < r->addr + len;) {
			while (vi < img->nvmas && img->vmas[vi].end <= a)
				vi++;
			if (vi == img->nvmas || img->vmas[vi].start > a ||
			    c->vmas[vi].how == CKR_MAP_SKIP)
				return rst_fail(c, -EBADMSG,
						"page run at 0x%llx outside the mappings",
						(unsigned long long)a);
			c->vmas[vi].fill_prot = c->vmas[vi].prot | PROT_READ | PROT_WRITE;
			a = img->vmas[vi].end;
		}
	}
	return 0;
}

struct span {
	uint64_t lo, hi;
};

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* A gap of @len bytes (plus a guard page each side) clear of the image and of ourselves. */
int rst_zone_map(struct rst_ctx *c, uint64_t len)
{
	size_t n = c->img->nvmas + c->nself;
	_cleanup_free_ struct span *s = calloc(n ? n : 1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < c->img->nvmas; i++)
		s[i] = (struct span){c->img->vmas[i].start, c->img->vmas[i].end};
	for (size_t i = 0; i < c->nself; i++)
		s[c->img->nvmas + i] = (struct span){c->self[i].start, c->self[i].end};
	qsort(s, n, sizeof(*s), span_cmp);
	const uint64_t g = RESTORE_PAGE_SIZE;
	uint64_t at = ZONE_FLOOR;
	for (size_t i = 0; i <= n; i++) {
		uint64_t next = i < n ? s[i].lo : TASK_SIZE_47;
		if (next > at + g && next - at - g >= len + g) {
			void *p = mmap((void *)(at + g), len, PROT_NONE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
			if (p == MAP_FAILED)
				return rst_fail(c, -errno,
						"cannot map the landing zone at 0x%llx: %s",
						(unsigned long long)(at + g), strerror(errno));
			c->zone = at + g;
			c->zone_len = len;
			return 0;
		}
		if (i < n && s[i].hi > at)
			at = s[i].hi;
	}
	return rst_fail(c, -ENOMEM, "no room for the restorer's landing zone (%llu bytes)",
			(unsigned long long)len);
}
