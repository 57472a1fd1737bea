/* Pack and unpack of the core.img sections (docs/image-format.md). Every field is explicit
 * fixed-width little endian; every count and length is bounded before anything is allocated,
 * and by the bytes actually left in the payload. */
#include "restore/image-internal.h"

#include <stdlib.h>

static bool is_shared_shmem(const struct restore_vma *v)
{
	return (v->kind == RESTORE_VMA_ANON_SHARED || v->kind == RESTORE_VMA_MEMFD) &&
	       (v->flags & RESTORE_VMA_F_SHARED) && v->inode;
}

bool img_vma_same_shmem(const struct restore_vma *a, const struct restore_vma *b)
{
	return is_shared_shmem(a) && is_shared_shmem(b) && a->inode == b->inode &&
	       a->maj == b->maj && a->min == b->min;
}

uint32_t img_version_of(const struct restore_image *img)
{
	if (img->proc.flags & RESTORE_PROC_F_UNDUMPABLE)
		return IMG_VERSION_UNDUMPABLE;
	if (img->proc.flags & (RESTORE_PROC_F_SCHED | RESTORE_PROC_F_PDEATH))
		return IMG_VERSION_PROC_SCHED; /* which reads shared memory as version 2 does */
	for (size_t i = 0; i < img->nvmas; i++) {
		if (!is_shared_shmem(&img->vmas[i]))
			continue; /* O(shmem mappings x mappings), not O(mappings^2) */
		for (size_t j = i + 1; j < img->nvmas; j++)
			if (img_vma_same_shmem(&img->vmas[i], &img->vmas[j]))
				return IMG_VERSION_SHMEM_ONCE;
	}
	return 1;
}

void img_hdr_pack(uint8_t *hdr, const char *magic, uint32_t version, uint32_t header_len,
		  uint64_t body_len, uint64_t body_checksum)
{
	memcpy(hdr, magic, IMG_MAGIC_LEN);
	ck_put_le32(hdr + 8, version);
	ck_put_le32(hdr + 12, header_len);
	ck_put_le64(hdr + 16, body_len);
	ck_put_le64(hdr + 24, body_checksum);
	ck_put_le64(hdr + 32, ck_checksum(hdr, 32));
}

/* ---- small helpers -------------------------------------------------------------------- */

static void put_cstr(struct ck_buf *b, const char *s)
{
	ck_buf_str(b, s ? s : "", s ? strlen(s) : 0);
}

/* A length-prefixed string copied out as a NUL-terminated malloc'd one; embedded NULs are
 * refused so the C string means what the bytes say. */
static bool get_cstr(struct ck_rd *r, size_t max, char **ret)
{
	const char *s;
	size_t n;
	if (!ck_rd_str(r, max, &s, &n))
		return false;
	if (memchr(s, 0, n)) {
		r->err = -EBADMSG;
		return false;
	}
	char *c = malloc(n + 1);
	if (!c) {
		r->err = -ENOMEM;
		return false;
	}
	memcpy(c, s, n);
	c[n] = 0;
	*ret = c;
	return true;
}

static bool get_u32(struct ck_rd *r, uint32_t *v)
{
	return ck_rd_le32(r, v);
}

static bool get_i32(struct ck_rd *r, int32_t *v)
{
	uint32_t u;
	if (!ck_rd_le32(r, &u))
		return false;
	*v = (int32_t)u;
	return true;
}

static void put_ident(struct ck_buf *b, const struct restore_ident *id)
{
	ck_buf_le64(b, id->dev);
	ck_buf_le64(b, id->ino);
	ck_buf_le64(b, id->size);
	ck_buf_le64(b, (uint64_t)id->mtime_sec);
	ck_buf_le32(b, id->mtime_nsec);
	ck_buf_le32(b, (id->mode & 0xffffu) | id->flags << 16);
}

static bool get_ident(struct ck_rd *r, struct restore_ident *id)
{
	uint64_t sec;
	bool ok = ck_rd_le64(r, &id->dev) && ck_rd_le64(r, &id->ino) && ck_rd_le64(r, &id->size) &&
		  ck_rd_le64(r, &sec) && get_u32(r, &id->mtime_nsec) && get_u32(r, &id->mode);
	id->mtime_sec = (int64_t)sec;
	id->flags = id->mode >> 16;
	id->mode &= 0xffffu;
	if (ok && id->mtime_nsec >= 1000000000u) {
		r->err = -EBADMSG;
		return false;
	}
	return ok;
}

static void put_siginfos(struct ck_buf *b, const struct restore_siginfo *s, size_t n)
{
	ck_buf_le32(b, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		ck_buf_append(b, s[i].raw, RESTORE_SIGINFO_SIZE);
}

/* Bound a count read from the image by a hard cap and by what the payload can still hold. */
static bool bounded_count(struct ck_rd *r, uint32_t *n, uint32_t max, size_t min_each)
{
	if (!ck_rd_le32(r, n))
		return false;
	if (*n > max || (uint64_t)*n * min_each > r->len - r->off) {
		r->err = -EBADMSG;
		return false;
	}
	return true;
}

static bool get_siginfos(struct ck_rd *r, struct restore_siginfo **ret, size_t *ret_n)
{
	uint32_t n;
	if (!bounded_count(r, &n, IMG_MAX_PENDING, RESTORE_SIGINFO_SIZE))
		return false;
	if (n == 0)
		return true;
	struct restore_siginfo *s = calloc(n, sizeof(*s));
	if (!s) {
		r->err = -ENOMEM;
		return false;
	}
	*ret = s;
	*ret_n = n;
	for (uint32_t i = 0; i < n; i++)
		if (!ck_rd_bytes(r, s[i].raw, RESTORE_SIGINFO_SIZE))
			return false;
	return true;
}

static int finish(struct ck_rd *r)
{
	if (!r->err && r->off != r->len)
		r->err = -EBADMSG; /* trailing bytes inside a section */
	return r->err;
}

/* ---- proc ----------------------------------------------------------------------------- */

void img_pack_proc(struct ck_buf *b, const struct restore_proc *p)
{
	ck_buf_le32(b, (uint32_t)p->pid);
	ck_buf_le32(b, p->flags);
	ck_buf_le32(b, p->umask);
	ck_buf_le32(b, p->personality);
	ck_buf_append(b, p->comm, sizeof(p->comm));
	ck_buf_le32(b, RESTORE_MM_N);
	for (int i = 0; i < RESTORE_MM_N; i++)
		ck_buf_le64(b, p->mm[i]);
	ck_buf_le32(b, RESTORE_NRLIMIT);
	for (int i = 0; i < RESTORE_NRLIMIT; i++) {
		ck_buf_le64(b, p->rlim_cur[i]);
		ck_buf_le64(b, p->rlim_max[i]);
	}
	ck_buf_le64(b, p->sig_ign);
	ck_buf_le64(b, p->sig_cgt);
	ck_buf_le32(b, RESTORE_NSIG);
	for (int i = 0; i < RESTORE_NSIG; i++) {
		ck_buf_le64(b, p->sigact[i].handler);
		ck_buf_le64(b, p->sigact[i].flags);
		ck_buf_le64(b, p->sigact[i].restorer);
		ck_buf_le64(b, p->sigact[i].mask);
	}
	ck_buf_le64(b, p->xcr0);
	ck_buf_le32(b, p->xsave_size);
	ck_buf_str(b, (const char *)p->auxv, p->auxv_len);
	put_cstr(b, p->exe);
	put_ident(b, &p->exe_ident);
	put_cstr(b, p->cwd);
	put_cstr(b, p->timers);
	put_siginfos(b, p->pending, p->npending);
	if (p->flags & (RESTORE_PROC_F_SCHED | RESTORE_PROC_F_PDEATH)) { /* version 3 */
		ck_buf_le32(b, (uint32_t)p->nice);
		ck_buf_le32(b, p->pdeathsig);
		ck_buf_str(b, (const char *)p->cpus, CK_MIN(p->cpus_len, (uint32_t)RESTORE_CPUS_MAX));
	}
}

int img_unpack_proc(struct ck_rd *r, struct restore_proc *p)
{
	uint32_t n;
	get_i32(r, &p->pid);
	get_u32(r, &p->flags);
	get_u32(r, &p->umask);
	get_u32(r, &p->personality);
	ck_rd_bytes(r, p->comm, sizeof(p->comm));
	if (ck_rd_le32(r, &n) && n != RESTORE_MM_N)
		r->err = -EBADMSG;
	for (int i = 0; i < RESTORE_MM_N; i++)
		ck_rd_le64(r, &p->mm[i]);
	if (ck_rd_le32(r, &n) && n != RESTORE_NRLIMIT)
		r->err = -EBADMSG;
	for (int i = 0; i < RESTORE_NRLIMIT; i++) {
		ck_rd_le64(r, &p->rlim_cur[i]);
		ck_rd_le64(r, &p->rlim_max[i]);
	}
	ck_rd_le64(r, &p->sig_ign);
	ck_rd_le64(r, &p->sig_cgt);
	if (ck_rd_le32(r, &n) && n != RESTORE_NSIG)
		r->err = -EBADMSG;
	for (int i = 0; i < RESTORE_NSIG; i++) {
		ck_rd_le64(r, &p->sigact[i].handler);
		ck_rd_le64(r, &p->sigact[i].flags);
		ck_rd_le64(r, &p->sigact[i].restorer);
		ck_rd_le64(r, &p->sigact[i].mask);
	}
	ck_rd_le64(r, &p->xcr0);
	get_u32(r, &p->xsave_size);
	const char *s;
	size_t len;
	if (ck_rd_str(r, IMG_MAX_AUXV, &s, &len)) {
		if (len % 16) {
			r->err = -EBADMSG;
		} else if (len) {
			p->auxv = malloc(len);
			if (!p->auxv)
				return -ENOMEM;
			memcpy(p->auxv, s, len);
			p->auxv_len = len;
		}
	}
	if (!r->err)
		get_cstr(r, IMG_MAX_PATH, &p->exe);
	if (!r->err)
		get_ident(r, &p->exe_ident);
	if (!r->err)
		get_cstr(r, IMG_MAX_PATH, &p->cwd);
	if (!r->err)
		get_cstr(r, IMG_MAX_TEXT, &p->timers);
	if (!r->err)
		get_siginfos(r, &p->pending, &p->npending);
	if (!r->err && r->off < r->len) { /* version 3: scheduling and prctl attributes */
		uint32_t nice;
		ck_rd_le32(r, &nice);
		p->nice = (int32_t)nice;
		get_u32(r, &p->pdeathsig);
		if (ck_rd_str(r, RESTORE_CPUS_MAX, &s, &len)) {
			memcpy(p->cpus, s, len);
			p->cpus_len = (uint32_t)len;
		}
		if (!r->err && (p->nice < -20 || p->nice > 19 || p->pdeathsig > 64))
			r->err = -EBADMSG;
	} else {
		p->flags &= ~(RESTORE_PROC_F_SCHED | RESTORE_PROC_F_PDEATH);
	}
	if (!r->err && (p->pid <= 0 || p->comm[15] != 0))
		r->err = -EBADMSG;
	return finish(r);
}

void img_proc_clear(struct restore_proc *p)
{
	free(p->auxv);
	free(p->exe);
	free(p->cwd);
	free(p->timers);
	free(p->pending);
	*p = (struct restore_proc){0};
}

/* ---- threads -------------------------------------------------------------------------- */

static void regs_to_array(const struct user_regs_struct *u, uint64_t *a)
{
	const unsigned long long f[IMG_NREGS] = {
		u->r15,	    u->r14,	 u->r13, u->r12, u->rbp,    u->rbx, u->r11,
		u->r10,	    u->r9,	 u->r8,	 u->rax, u->rcx,    u->rdx, u->rsi,
		u->rdi,	    u->orig_rax, u->rip, u->cs,	 u->eflags, u->rsp, u->ss,
		u->fs_base, u->gs_base,	 u->ds,	 u->es,	 u->fs,	    u->gs,
	};
	for (unsigned i = 0; i < IMG_NREGS; i++)
		a[i] = f[i];
}

static void array_to_regs(const uint64_t *a, struct user_regs_struct *u)
{
	unsigned long long *f[IMG_NREGS] = {
		&u->r15,     &u->r14,	   &u->r13, &u->r12, &u->rbp,	 &u->rbx, &u->r11,
		&u->r10,     &u->r9,	   &u->r8,  &u->rax, &u->rcx,	 &u->rdx, &u->rsi,
		&u->rdi,     &u->orig_rax, &u->rip, &u->cs,  &u->eflags, &u->rsp, &u->ss,
		&u->fs_base, &u->gs_base,  &u->ds,  &u->es,  &u->fs,	 &u->gs,
	};
	for (unsigned i = 0; i < IMG_NREGS; i++)
		*f[i] = a[i];
}

void img_pack_thread(struct ck_buf *b, const struct restore_thread *t)
{
	uint64_t regs[IMG_NREGS];
	regs_to_array(&t->regs, regs);
	ck_buf_le32(b, (uint32_t)t->tid);
	ck_buf_le32(b, t->flags);
	ck_buf_le32(b, IMG_NREGS);
	for (unsigned i = 0; i < IMG_NREGS; i++)
		ck_buf_le64(b, regs[i]);
	ck_buf_le64(b, t->sigmask);
	ck_buf_le64(b, t->xcr0);
	ck_buf_str(b, (const char *)t->xsave, t->xsave_len);
	ck_buf_le64(b, t->rseq_ptr);
	ck_buf_le32(b, t->rseq_len);
	ck_buf_le32(b, t->rseq_sig);
	ck_buf_le32(b, t->rseq_flags);
	ck_buf_le64(b, t->robust_head);
	ck_buf_le64(b, t->robust_len);
	ck_buf_le64(b, t->altstack_sp);
	ck_buf_le64(b, t->altstack_size);
	ck_buf_le32(b, t->altstack_flags);
	ck_buf_le64(b, t->clear_child_tid);
	ck_buf_append(b, t->comm, sizeof(t->comm));
	put_siginfos(b, t->pending, t->npending);
}

int img_unpack_thread(struct ck_rd *r, struct restore_thread *t)
{
	uint32_t n;
	uint64_t regs[IMG_NREGS] = {0};
	get_i32(r, &t->tid);
	get_u32(r, &t->flags);
	if (ck_rd_le32(r, &n) && n != IMG_NREGS)
		r->err = -EBADMSG;
	for (unsigned i = 0; i < IMG_NREGS; i++)
		ck_rd_le64(r, &regs[i]);
	array_to_regs(regs, &t->regs);
	ck_rd_le64(r, &t->sigmask);
	ck_rd_le64(r, &t->xcr0);
	const char *s;
	size_t len;
	if (ck_rd_str(r, IMG_MAX_XSAVE, &s, &len)) {
		/* 512 legacy + 64 header bytes are the minimum of a standard-format xsave area. */
		if (len && len < 576) {
			r->err = -EBADMSG;
		} else if (len) {
			t->xsave = malloc(len);
			if (!t->xsave)
				return -ENOMEM;
			memcpy(t->xsave, s, len);
			t->xsave_len = (uint32_t)len;
		}
	}
	ck_rd_le64(r, &t->rseq_ptr);
	get_u32(r, &t->rseq_len);
	get_u32(r, &t->rseq_sig);
	get_u32(r, &t->rseq_flags);
	ck_rd_le64(r, &t->robust_head);
	ck_rd_le64(r, &t->robust_len);
	ck_rd_le64(r, &t->altstack_sp);
	ck_rd_le64(r, &t->altstack_size);
	get_u32(r, &t->altstack_flags);
	ck_rd_le64(r, &t->clear_child_tid);
	ck_rd_bytes(r, t->comm, sizeof(t->comm));
	if (!r->err)
		get_siginfos(r, &t->pending, &t->npending);
	if (!r->err && (t->tid <= 0 || t->comm[15] != 0))
		r->err = -EBADMSG;
	return finish(r);
}

void img_thread_clear(struct restore_thread *t)
{
	free(t->xsave);
	free(t->pending);
	*t = (struct restore_thread){0};
}

/* ---- vmas ----------------------------------------------------------------------------- */

void img_pack_vmas(struct ck_buf *b, const struct restore_vma *v, size_t n)
{
	ck_buf_le32(b, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		ck_buf_le64(b, v[i].start);
		ck_buf_le64(b, v[i].end);
		ck_buf_le64(b, v[i].pgoff);
		ck_buf_le32(b, v[i].prot);
		ck_buf_le32(b, v[i].flags);
		ck_buf_le32(b, v[i].kind);
		ck_buf_le32(b, v[i].maj);
		ck_buf_le32(b, v[i].min);
		ck_buf_le64(b, v[i].inode);
		put_ident(b, &v[i].ident);
		put_cstr(b, v[i].path);
		put_cstr(b, v[i].vmflags);
	}
}

#define VMA_MIN_BYTES (3 * 8 + 5 * 4 + 8 + 40 + 4 + 4)

int img_unpack_vmas(struct ck_rd *r, struct restore_image *img)
{
	uint32_t n;
	if (!bounded_count(r, &n, IMG_MAX_VMAS, VMA_MIN_BYTES))
		return r->err;
	img->vmas = calloc(n ? n : 1, sizeof(*img->vmas));
	if (!img->vmas)
		return -ENOMEM;
	for (uint32_t i = 0; i < n && !r->err; i++) {
		struct restore_vma *v = &img->vmas[i];
		img->nvmas = i + 1;
		ck_rd_le64(r, &v->start);
		ck_rd_le64(r, &v->end);
		ck_rd_le64(r, &v->pgoff);
		get_u32(r, &v->prot);
		get_u32(r, &v->flags);
		get_u32(r, &v->kind);
		get_u32(r, &v->maj);
		get_u32(r, &v->min);
		ck_rd_le64(r, &v->inode);
		if (!r->err)
			get_ident(r, &v->ident);
		if (!r->err)
			get_cstr(r, IMG_MAX_PATH, &v->path);
		if (!r->err)
			get_cstr(r, 256, &v->vmflags);
		if (r->err)
			break;
		bool bad = v->start >= v->end ||
			   (v->start | v->end | v->pgoff) % RESTORE_PAGE_SIZE ||
			   v->end > (1ull << 57) || v->kind < RESTORE_VMA_ANON_PRIVATE ||
			   v->kind > RESTORE_VMA_VDSO || v->prot & ~7u ||
			   (i > 0 && v->start < img->vmas[i - 1].end);
		if (bad)
			r->err = -EBADMSG;
	}
	return finish(r);
}

/* ---- fds ------------------------------------------------------------------------------ */

void img_pack_fds(struct ck_buf *b, const struct restore_fd *v, size_t n)
{
	ck_buf_le32(b, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		ck_buf_le32(b, (uint32_t)v[i].fd);
		ck_buf_le32(b, v[i].kind);
		ck_buf_le32(b, v[i].flags);
		ck_buf_le32(b, v[i].mnt_id);
		ck_buf_le64(b, v[i].pos);
		ck_buf_le64(b, v[i].rdev);
		put_ident(b, &v[i].ident);
		put_cstr(b, v[i].target);
		put_cstr(b, v[i].fdinfo);
	}
}

#define FD_MIN_BYTES (4 * 4 + 2 * 8 + 40 + 4 + 4)

int img_unpack_fds(struct ck_rd *r, struct restore_image *img)
{
	uint32_t n;
	if (!bounded_count(r, &n, IMG_MAX_FDS, FD_MIN_BYTES))
		return r->err;
	img->fds = calloc(n ? n : 1, sizeof(*img->fds));
	if (!img->fds)
		return -ENOMEM;
	for (uint32_t i = 0; i < n && !r->err; i++) {
		struct restore_fd *f = &img->fds[i];
		img->nfds = i + 1;
		get_i32(r, &f->fd);
		get_u32(r, &f->kind);
		get_u32(r, &f->flags);
		get_u32(r, &f->mnt_id);
		ck_rd_le64(r, &f->pos);
		ck_rd_le64(r, &f->rdev);
		if (!r->err)
			get_ident(r, &f->ident);
		if (!r->err)
			get_cstr(r, IMG_MAX_PATH, &f->target);
		if (!r->err)
			get_cstr(r, IMG_MAX_TEXT, &f->fdinfo);
		if (r->err)
			break;
		if (f->fd < 0 || f->kind < RESTORE_FD_REGULAR || f->kind > RESTORE_FD_OTHER ||
		    (i > 0 && f->fd <= img->fds[i - 1].fd))
			r->err = -EBADMSG;
	}
	return finish(r);
}

/* ---- page runs ------------------------------------------------------------------------ */

void img_pack_runs(struct ck_buf *b, const struct restore_page_run *v, size_t n,
		   uint64_t pages_size)
{
	ck_buf_le64(b, pages_size);
	ck_buf_le32(b, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		ck_buf_le64(b, v[i].addr);
		ck_buf_le64(b, v[i].file_off);
		ck_buf_le32(b, v[i].npages);
		ck_buf_le64(b, v[i].checksum);
	}
}

/* Runs tile pages.img in order (each starts where the previous ended, the first right after
 * the header page), lie in increasing address order, and are page aligned. */
int img_unpack_runs(struct ck_rd *r, struct restore_image *img)
{
	uint32_t n;
	ck_rd_le64(r, &img->pages_size);
	if (!bounded_count(r, &n, IMG_MAX_RUNS, 28))
		return r->err;
	img->runs = calloc(n ? n : 1, sizeof(*img->runs));
	if (!img->runs)
		return -ENOMEM;
	uint64_t off = IMG_PAGES_HDR_LEN, prev_end = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct restore_page_run *p = &img->runs[i];
		if (!ck_rd_le64(r, &p->addr) || !ck_rd_le64(r, &p->file_off) ||
		    !get_u32(r, &p->npages) || !ck_rd_le64(r, &p->checksum))
			break;
		img->nruns = i + 1;
		if (p->npages == 0 || p->npages > IMG_MAX_RUN_PAGES ||
		    p->addr % RESTORE_PAGE_SIZE || p->addr < prev_end || p->file_off != off ||
		    p->addr > (1ull << 57)) {
			r->err = -EBADMSG;
			break;
		}
		prev_end = p->addr + (uint64_t)p->npages * RESTORE_PAGE_SIZE;
		off += (uint64_t)p->npages * RESTORE_PAGE_SIZE;
	}
	if (!r->err && off != img->pages_size)
		r->err = -EBADMSG;
	return finish(r);
}
