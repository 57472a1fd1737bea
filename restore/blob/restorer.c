/* The restorer blob: runs after restore_process() jumped into the landing zone, with no libc,
 * no heap, no TLS, raw syscalls only. Its code is copied to the landing zone as bytes, so it must
 * be position independent and self-contained: built with its own flags (restore/CMakeLists.txt),
 * linked at 0 by blob.lds, and refused at build time if it needs a symbol from outside or an
 * absolute relocation.
 *
 * Order: unmap everything but the landing zone and the vDSO triple; move [vvar], [vvar_vclock],
 * [vdso] to the image's addresses through parking slots; map every old mapping writable, fill it
 * from pages.img (with a page check: report each step, wait for its verdict), set its real
 * protection; close the restorer's fds; PR_SET_MM_MAP; clone the
 * other threads (threads.c); the leader's thread state rt_sigreturn does not carry (fs/gs base,
 * tid address, robust list, rseq, name, its pending signals); queue the shared pending signals
 * again (every signal is blocked until each sigreturn installs the old mask); wait for every
 * thread, release them; then rt_sigreturn on the leader's frame. A failure can only be reported by a message on err_fd and
 * exit_group(CKR_BLOB_EXIT_STATUS): the caller's address space is gone. */
#include "sys.h"

#pragma GCC visibility push(hidden)

#define NR_read		     0
#define NR_write	     1
#define NR_close	     3
#define NR_fcntl	     72
#define NR_mmap		     9
#define NR_mprotect	     10
#define NR_munmap	     11
#define NR_pread64	     17
#define NR_mremap	     25
#define NR_getpid	     39
#define NR_exit_group	     231
#define NR_prctl	     157
#define NR_arch_prctl	     158
#define NR_gettid	     186
#define NR_set_tid_address   218
#define NR_set_robust_list   273
#define NR_rt_tgsigqueueinfo 297
#define NR_rt_sigqueueinfo   129
#define NR_rseq		     334

#define PROT_NONE_	0
#define MAP_FIXED_	0x10
#define MAP_ANONYMOUS_	0x20
#define MAP_PRIVATE_	0x02
#define MREMAP_MAYMOVE_ 1
#define MREMAP_FIXED_	2
#define PR_SET_MM_	35
#define PR_SET_MM_MAP_	14
#define ARCH_SET_GS_	0x1001
#define ARCH_SET_FS_	0x1002
#define EINTR_		4
#define EPERM_		1
#define EBUSY_		16
#define EPIPE_		32

/* GCC may emit calls to these even in freestanding code (struct copies). */
void *memset(void *d, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);
void *memset(void *d, int c, unsigned long n)
{
	unsigned char *p = d;
	while (n--)
		*p++ = (unsigned char)c;
	return d;
}
void *memcpy(void *d, const void *s, unsigned long n)
{
	unsigned char *p = d;
	const unsigned char *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

static unsigned long slen(const char *s)
{
	unsigned long n = 0;
	while (s[n])
		n++;
	return n;
}

/* "ckptenv restorer: WHAT at 0xADDR: errno N\n" on err_fd, then exit. */
static __attribute__((noreturn)) void fail(const struct ckr_args *a, const char *what,
					   uint64_t addr, long ret)
{
	char buf[160];
	unsigned long n = 0;
	const char *pre = "ckptenv restorer: ";
	for (unsigned long i = 0; pre[i] && n < 60; i++)
		buf[n++] = pre[i];
	for (unsigned long i = 0, l = slen(what); i < l && n < 100; i++)
		buf[n++] = what[i];
	const char *at = " at 0x";
	for (unsigned long i = 0; at[i]; i++)
		buf[n++] = at[i];
	for (int sh = 60; sh >= 0; sh -= 4)
		buf[n++] = "0123456789abcdef"[(addr >> sh) & 0xf];
	const char *en = ": errno ";
	for (unsigned long i = 0; en[i]; i++)
		buf[n++] = en[i];
	unsigned long e = (unsigned long)(ret < 0 ? -ret : ret);
	char d[24];
	int nd = 0;
	do {
		d[nd++] = (char)('0' + e % 10);
		e /= 10;
	} while (e && nd < 20);
	while (nd)
		buf[n++] = d[--nd];
	buf[n++] = '\n';
	if (a->err_fd >= 0)
		sys3(NR_write, a->err_fd, buf, n);
	for (;;)
		sys1(NR_exit_group, CKR_BLOB_EXIT_STATUS);
}

void ckr_fail(const struct ckr_args *a, const char *what, uint64_t addr, long ret)
{
	fail(a, what, addr, ret);
}

/* Unmap [lo, hi) minus the landing zone and the current vDSO triple. */
static void unmap_all_but(const struct ckr_args *a)
{
	uint64_t klo[1 + CKR_NREMAP], khi[1 + CKR_NREMAP];
	unsigned n = 0;
	klo[n] = a->zone_lo;
	khi[n++] = a->zone_hi;
	for (unsigned i = 0; i < a->nremap; i++) {
		klo[n] = a->remap[i].cur;
		khi[n++] = a->remap[i].cur + a->remap[i].len;
	}
	for (unsigned i = 1; i < n; i++) /* insertion sort by start */
		for (unsigned j = i; j > 0 && klo[j] < klo[j - 1]; j--) {
			uint64_t t = klo[j];
			klo[j] = klo[j - 1];
			klo[j - 1] = t;
			t = khi[j];
			khi[j] = khi[j - 1];
			khi[j - 1] = t;
		}
	uint64_t from = 0;
	for (unsigned i = 0; i <= n; i++) {
		uint64_t to = i < n ? klo[i] : a->task_size;
		if (to > from) {
			long r = sys2(NR_munmap, from, to - from);
			if (is_err(r))
				fail(a, "munmap", from, r);
		}
		if (i < n && khi[i] > from)
			from = khi[i];
	}
}

static void move_vdso(const struct ckr_args *a)
{
	for (unsigned i = 0; i < a->nremap; i++) {
		const struct ckr_remap *m = &a->remap[i];
		long r = sys5(NR_mremap, m->cur, m->len, m->len, MREMAP_MAYMOVE_ | MREMAP_FIXED_,
			      m->park);
		if (is_err(r))
			fail(a, "mremap of the vdso to its parking slot", m->cur, r);
	}
	for (unsigned i = 0; i < a->nremap; i++) {
		const struct ckr_remap *m = &a->remap[i];
		long r = sys5(NR_mremap, m->park, m->len, m->len, MREMAP_MAYMOVE_ | MREMAP_FIXED_,
			      m->target);
		if (is_err(r))
			fail(a, "mremap of the vdso", m->target, r);
	}
}

static void map_vmas(const struct ckr_args *a)
{
	for (unsigned i = 0; i < a->nvmas; i++) {
		const struct ckr_vma *v = &a->vmas[i];
		long r;
		if (v->how == CKR_MAP_SKIP)
			continue;
		if (v->how == CKR_MAP_ANON)
			r = sys6(NR_mmap, (long)v->start, (long)(v->end - v->start), v->fill_prot,
				 v->mmap_flags | MAP_FIXED_ | MAP_ANONYMOUS_, -1, 0);
		else
			r = sys6(NR_mmap, (long)v->start, (long)(v->end - v->start), v->fill_prot,
				 v->mmap_flags | MAP_FIXED_, v->fd, (long)v->pgoff);
		if (is_err(r) || (uint64_t)r != v->start)
			fail(a, "mmap", v->start, r);
	}
}

/* The parent's verdict: returns on CKR_CHECK_GO; a refusal is its line, passed on as the
 * blob's last words. */
static void read_verdict(const struct ckr_args *a)
{
	char buf[512];
	unsigned long n = 0;
	while (n < sizeof(buf)) {
		long r = sys3(NR_read, a->check_fd, buf + n, sizeof(buf) - n);
		if (r == -EINTR_)
			continue;
		if (r <= 0)
			break;
		n += (unsigned long)r;
		if (buf[0] == CKR_CHECK_GO || buf[n - 1] == '\n')
			break;
	}
	if (n == 0)
		fail(a, "wait for the page check (it ended)", 0, -EPIPE_);
	if (buf[0] == CKR_CHECK_GO)
		return;
	if (a->err_fd >= 0)
		sys3(NR_write, a->err_fd, buf, n);
	for (;;)
		sys1(NR_exit_group, CKR_BLOB_EXIT_STATUS);
}

/* A refusal may come before the last report (the parent stops listening): it is read then. */
static void check_report(const struct ckr_args *a, uint64_t filled)
{
	long r;
	do
		r = sys3(NR_write, a->check_fd, &filled, sizeof(filled));
	while (r == -EINTR_);
	if (r == (long)sizeof(filled))
		return;
	read_verdict(a);
	fail(a, "report to the page check", filled, r < 0 ? r : -EPIPE_);
}

/* Reads of at most CKR_CHECK_STEP so that the parent's check keeps pace with the disk. */
static void fill_pages(const struct ckr_args *a)
{
	uint64_t step = a->check_fd >= 0 ? CKR_CHECK_STEP : ~0ull, filled = 0;
	for (uint64_t i = 0; i < a->nruns; i++) {
		const struct ckr_run *run = &a->runs[i];
		uint64_t done = 0;
		while (done < run->len) {
			uint64_t want = run->len - done < step ? run->len - done : step;
			long r = sys4(NR_pread64, a->pages_fd, run->addr + done, want,
				      run->off + done);
			if (r == -EINTR_)
				continue;
			if (r <= 0)
				fail(a, "read of pages.img", run->addr + done, r ? r : -5);
			done += (uint64_t)r;
			filled += (uint64_t)r;
			if (a->check_fd >= 0)
				check_report(a, filled);
		}
	}
}

/* Every page is in: nothing goes on before the parent's verdict on their checksums. */
static void await_verdict(const struct ckr_args *a)
{
	check_report(a, CKR_CHECK_END);
	read_verdict(a);
	sys1(NR_close, a->check_fd);
}

static void protect_vmas(const struct ckr_args *a)
{
	for (unsigned i = 0; i < a->nvmas; i++) {
		const struct ckr_vma *v = &a->vmas[i];
		if (v->how == CKR_MAP_SKIP || v->prot == v->fill_prot)
			continue;
		long r = sys3(NR_mprotect, v->start, v->end - v->start, v->prot);
		if (is_err(r))
			fail(a, "mprotect", v->start, r);
	}
}

static void set_mm(const struct ckr_args *a)
{
	struct {
		uint64_t f[11];
		uint64_t auxv;
		uint32_t auxv_size;
		uint32_t exe_fd;
	} map;
	for (int i = 0; i < 11; i++)
		map.f[i] = a->mm[i];
	map.auxv = a->auxv;
	map.auxv_size = a->auxv_size;
	map.exe_fd = (uint32_t)a->exe_fd;
	long r = sys5(NR_prctl, PR_SET_MM_, PR_SET_MM_MAP_, &map, sizeof(map), 0);
	if (is_err(r) && a->exe_fd >= 0) {
		/* Setting the exe link needs CAP_CHECKPOINT_RESTORE/CAP_SYS_ADMIN: optional. */
		map.exe_fd = (uint32_t)-1;
		r = sys5(NR_prctl, PR_SET_MM_, PR_SET_MM_MAP_, &map, sizeof(map), 0);
	}
	if (is_err(r))
		fail(a, "prctl(PR_SET_MM_MAP)", a->mm[5], r);
	if (a->exe_fd >= 0)
		sys1(NR_close, a->exe_fd);
}

/* Shared pending signals go back on the process queue (every thread blocks them all until its
 * sigreturn, so none is delivered early). */
static void queue_shared(const struct ckr_args *a)
{
	long pid = sys1(NR_getpid, 0);
	for (uint32_t i = 0; i < a->npending_shared; i++) {
		uint8_t *info = a->pending + (uint64_t)i * 128;
		int sig = (int)(info[0] | info[1] << 8 | info[2] << 16 | (uint32_t)info[3] << 24);
		long r = sys3(NR_rt_sigqueueinfo, pid, sig, info);
		if (is_err(r))
			fail(a, "re-queueing a pending signal", (uint64_t)sig, r);
	}
}

__attribute__((noreturn, used)) void ckr_blob_main(struct ckr_args *a);
__attribute__((noreturn, used)) void ckr_blob_main(struct ckr_args *a)
{
	if (a->magic != CKR_ARGS_MAGIC)
		for (;;)
			sys1(NR_exit_group, CKR_BLOB_EXIT_STATUS);
	unmap_all_but(a);
	move_vdso(a);
	map_vmas(a);
	fill_pages(a);
	if (a->check_fd >= 0)
		await_verdict(a);
	protect_vmas(a);
	sys1(NR_close, a->pages_fd);
	for (uint32_t i = 0; i < a->nclose; i++)
		sys1(NR_close, a->close_fds[i]);
	set_mm(a);
	/* Threads only now: they must find the old address space complete. */
	ckr_threads_spawn(a);
	ckr_thread_setup(a, &a->threads[0]);
	queue_shared(a);
	/* Timers as late as can still fail (a failure ends the whole process): every thread
	 * exists and blocks every signal until its sigreturn, so an expiry is only queued. */
	ckr_timers_arm(a);
	ckr_threads_wait(a);
	/* Every thread is set up and parked: process-wide steps that must cover them all go
	 * here, before any of them runs job code. No thread can fail any more. */
	if (a->err_fd >= 0) /* a private copy, see restore_process() */
		sys1(NR_close, a->err_fd);
	/* The closes above dropped the POSIX locks on the files they were on; the restorer held
	 * them until then, so they are free to take again (F_SETLK, 6). */
	for (uint32_t i = 0; i < a->nlocks; i++)
		sys3(NR_fcntl, a->locks[i].fd, 6, &a->locks[i].fl);
	if (a->undumpable)
		sys2(NR_prctl, 4, 0); /* PR_SET_DUMPABLE */
	ckr_threads_release(a);
	ckr_sigreturn(&a->threads[0]);
	__builtin_unreachable();
}

/* Entry at offset 0 of the blob (first in the link, see blob.lds): %rdi = args, %rsp = top of
 * the landing zone's stack. */
__asm__(".section .text.entry,\"ax\",@progbits\n"
	".globl ckr_blob_entry\n"
	"ckr_blob_entry:\n"
	"	and $-16, %rsp\n"
	"	xor %ebp, %ebp\n"
	"	call ckr_blob_main\n"
	"	ud2\n"
	".previous\n");

#pragma GCC visibility pop
