/* restore_process(): everything the restorer does with libc before it jumps into the blob.
 *
 *   load + verify the image; refuse what cannot run here (xsave features, vDSO)
 *   plan mappings (files reopened and checked, memfds for shared memory), page runs, fds
 *   map the landing zone, copy the blob, build its argument block and one rt_sigframe per
 *   thread (restore-threads.c)
 *   ---- point of no return ----
 *   block every signal, install the fds, signal actions, rlimits, cwd, umask, name,
 *   unregister our own rseq (the kernel would write into memory that is about to vanish),
 *   switch to the zone's stack and jump. The blob (blob/restorer.c) does the rest.
 *
 * Landing zone layout: [blob code, r-x][argument block, rw-][vDSO parking slots]
 * [16 KiB stack per thread but the leader][leader's stack, rw-]. It stays mapped in the
 * restored process (the blob cannot unmap the code it runs from); its size is a few pages plus
 * 64 KiB of stack plus 16 KiB per further thread. */
#include "restore/restore-internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define ARCH_GET_FS_ 0x1003

static int count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return -errno;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static int check_cpu(struct rst_ctx *c)
{
	char msg[sizeof(((struct restore_err *)0)->msg)];
	int r = rst_cpu_check(c->img, &c->cur_xcr0, &c->cur_xsave_size, msg, sizeof(msg));
	if (r < 0)
		return rst_fail(c, r, "%s", msg);
	for (size_t i = 0; i < c->img->nthreads; i++) {
		const struct restore_thread *t = &c->img->threads[i];
		/* The permission is process-wide and only grows: the last answer covers all. */
		r = rst_xstate_permit(c->cur_xcr0, t, &c->xperm);
		if (r < 0)
			return rst_fail(c, r, "cannot get the xstate permission of thread %d: %s",
					(int)t->tid, strerror(-r));
	}
	return 0;
}

static int check_image(struct rst_ctx *c)
{
	const struct restore_image *img = c->img;
	if (img->nthreads < 1)
		return rst_fail(c, -EOPNOTSUPP, "process %d has no thread in the image",
				(int)img->proc.pid);
	if (!(img->proc.flags & RESTORE_PROC_F_SIGACT) && img->proc.sig_cgt)
		return rst_fail(c, -EOPNOTSUPP,
				"the image has signal handlers but not their addresses (dumped "
				"without syscall injection)");
	if (!(img->proc.flags & RESTORE_PROC_F_BRK))
		return rst_fail(c, -EOPNOTSUPP, "the image lacks the program break");
	int n = count_threads();
	if (n != 1)
		return rst_fail(c, n < 0 ? n : -EBUSY,
				"the restorer must be single-threaded (it has %d threads)", n);
	int r = rst_threads_check(c);
	return r < 0 ? r : check_cpu(c);
}

static int open_exe(struct rst_ctx *c)
{
	const struct restore_proc *p = &c->img->proc;
	if (!p->exe || p->exe[0] != '/' || strstr(p->exe, " (deleted)") || !p->exe_ident.ino)
		return 0;
	int fd = open(p->exe, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* the exe link is optional */
	fd = rst_fd_high(c, fd);
	if (fd < 0)
		return fd;
	c->exe_fd = fd;
	return rst_ident_check(c, fd, &p->exe_ident, p->exe);
}

static size_t args_size(const struct rst_ctx *c)
{
	const struct restore_image *img = c->img;
	return 64 * 8 + sizeof(struct ckr_args) + img->nvmas * sizeof(struct ckr_vma) +
	       c->nruns * sizeof(struct ckr_run) + c->ntmp * sizeof(int32_t) + img->proc.auxv_len +
	       img->proc.npending * RESTORE_SIGINFO_SIZE + rst_threads_args_size(c) + 64 +
	       c->ntimers * sizeof(struct ckr_timer) +
	       rst_fds_locks_posix(c, NULL) * sizeof(struct ckr_lock) + 64;
}

/* Copy the blob, fill the argument block and the frame. Returns the args pointer. */
static int build_zone(struct rst_ctx *c, uint64_t code_len, uint64_t args_len, uint64_t park_len,
		      struct ckr_args **ret)
{
	const struct restore_image *img = c->img;
	uint8_t *z = (uint8_t *)(uintptr_t)c->zone;
	uint64_t stacks = c->zone + c->zone_len - RST_STACK_SIZE - c->stacks_len;
	if (mprotect(z, code_len + args_len, PROT_READ | PROT_WRITE) < 0 ||
	    mprotect((void *)(uintptr_t)stacks, c->stacks_len + RST_STACK_SIZE,
		     PROT_READ | PROT_WRITE) < 0)
		return -errno;
	memcpy(z, ckr_blob_code, (size_t)(ckr_blob_code_end - ckr_blob_code));
	if (mprotect(z, code_len, PROT_READ | PROT_EXEC) < 0)
		return -errno;
	struct rst_bump b = {z + code_len, z + code_len + args_len};
	struct ckr_args *a = rst_bump(&b, sizeof(*a));
	struct ckr_vma *vmas = rst_bump(&b, img->nvmas * sizeof(*vmas));
	struct ckr_run *runs = rst_bump(&b, c->nruns * sizeof(*runs));
	int32_t *cl = rst_bump(&b, c->ntmp * sizeof(*cl));
	uint8_t *auxv = rst_bump(&b, img->proc.auxv_len);
	uint8_t *pend = rst_bump(&b, img->proc.npending * RESTORE_SIGINFO_SIZE);
	struct ckr_timer *timers = rst_bump(&b, c->ntimers * sizeof(*timers));
	size_t nlocks = rst_fds_locks_posix(c, NULL);
	struct ckr_lock *locks = rst_bump(&b, nlocks * sizeof(*locks));
	if (!a || !vmas || !runs || !cl || !auxv || !pend || !timers || !locks)
		return -ENOBUFS;
	rst_fds_locks_posix(c, locks);
	*a = (struct ckr_args){
		.magic = CKR_ARGS_MAGIC,
		.zone_lo = c->zone,
		.zone_hi = c->zone + c->zone_len,
		.task_size = 0x7ffffffff000ull,
		.nremap = c->nremap,
		.nvmas = (uint32_t)img->nvmas,
		.vmas = vmas,
		.nruns = c->nruns,
		.runs = runs,
		.pages_fd = c->pages_fd,
		.nclose = (uint32_t)c->ntmp,
		.close_fds = cl,
		.auxv = (uint64_t)(uintptr_t)auxv,
		.auxv_size = (uint32_t)img->proc.auxv_len,
		.exe_fd = c->exe_fd,
		.npending_shared = (uint32_t)img->proc.npending,
		.pending = pend,
		.err_fd = c->err_fd,
		.ntimers = c->ntimers,
		.timers = timers,
		.check_fd = c->check_fd,
		.nlocks = (uint32_t)nlocks,
		.undumpable = !!(img->proc.flags & RESTORE_PROC_F_UNDUMPABLE),
		.locks = locks,
	};
	if (c->ntimers)
		memcpy(timers, c->timers, c->ntimers * sizeof(*timers));
	uint64_t park = c->zone + code_len + args_len;
	for (unsigned i = 0; i < c->nremap; i++) {
		a->remap[i] = c->remap[i];
		a->remap[i].park = park;
		park += c->remap[i].len;
	}
	(void)park_len;
	memcpy(vmas, c->vmas, img->nvmas * sizeof(*vmas));
	memcpy(runs, c->runs, c->nruns * sizeof(*runs));
	for (size_t i = 0; i < c->ntmp; i++)
		cl[i] = c->tmp_fds[i];
	memcpy(a->mm, img->proc.mm, sizeof(a->mm));
	if (img->proc.auxv_len)
		memcpy(auxv, img->proc.auxv, img->proc.auxv_len);
	if (img->proc.npending)
		memcpy(pend, img->proc.pending, img->proc.npending * RESTORE_SIGINFO_SIZE);
	int r = rst_threads_build(c, &b, a, stacks);
	if (r < 0)
		return r;
	*ret = a;
	return 0;
}

static int prepare(struct rst_ctx *c, struct ckr_args **ret)
{
	const struct restore_image *img = c->img;
	int r = check_image(c);
	if (r < 0)
		return r;
	int maxfd = 2;
	for (size_t i = 0; i < img->nfds; i++)
		maxfd = CK_MAX(maxfd, img->fds[i].fd);
	c->base_fd = maxfd + 1;
	r = rst_fd_high(c, img->pages_fd);
	c->img->pages_fd = -1;
	if (r < 0)
		return r;
	c->pages_fd = r;
	int efd = c->opts ? c->opts->blob_err_fd : 0;
	if (efd >= 0) {
		c->err_fd = fcntl(efd ? efd : 2, F_DUPFD_CLOEXEC, c->base_fd);
		if (c->err_fd < 0)
			c->err_fd = -1;
	}
	if (c->opts && c->opts->check_fd > 0) {
		c->check_fd = fcntl(c->opts->check_fd, F_DUPFD_CLOEXEC, c->base_fd);
		if (c->check_fd < 0)
			return -errno;
	}
	r = rst_self_maps(c);
	if (r == 0)
		r = rst_vdso_plan(c);
	if (r == 0)
		r = rst_vmas_plan(c);
	if (r == 0)
		r = rst_runs_plan(c);
	if (r == 0)
		r = open_exe(c);
	if (r == 0)
		r = rst_fds_plan(c);
	if (r == 0)
		r = rst_fds_locks_plan(c);
	if (r == 0)
		r = rst_timers_plan(c);
	if (r < 0)
		return r;
	uint64_t code_len = RST_PAGE_ROUND((uint64_t)(ckr_blob_code_end - ckr_blob_code));
	uint64_t args_len = RST_PAGE_ROUND(args_size(c));
	uint64_t park_len = 0;
	for (unsigned i = 0; i < c->nremap; i++)
		park_len += c->remap[i].len;
	c->stacks_len = (uint64_t)(img->nthreads - 1) * RST_THREAD_STACK;
	r = rst_zone_map(c, code_len + args_len + park_len + c->stacks_len + RST_STACK_SIZE);
	if (r < 0)
		return r;
	r = build_zone(c, code_len, args_len, park_len, ret);
	if (r < 0) {
		munmap((void *)(uintptr_t)c->zone, c->zone_len);
		if (c->err && c->err->msg[0]) /* rst_threads_build() named the thread */
			return r;
		return rst_fail(c, r, "cannot build the restorer's landing zone: %s", strerror(-r));
	}
	r = rst_timers_create(c); /* last: undone by itself on failure */
	if (r < 0)
		munmap((void *)(uintptr_t)c->zone, c->zone_len);
	return r;
}

static int set_signals(struct rst_ctx *c)
{
	const struct restore_proc *p = &c->img->proc;
	for (int sig = 1; sig <= RESTORE_NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		struct restore_sigaction k = {0};
		if (p->flags & RESTORE_PROC_F_SIGACT)
			k = p->sigact[sig - 1];
		else if (p->sig_ign & (1ull << (sig - 1)))
			k.handler = (uint64_t)(uintptr_t)SIG_IGN;
		if (syscall(SYS_rt_sigaction, sig, &k, NULL, sizeof(uint64_t)) < 0)
			return rst_fail(c, -errno, "cannot restore the action of signal %d: %s",
					sig, strerror(errno));
	}
	return 0;
}

/* Nice, CPU affinity and the parent-death signal, on the main thread before the blob clones
 * the others (they inherit the first two). Best effort: an affinity naming CPUs this machine
 * lacks, or a lower nice than an unprivileged user may set, leaves the default. */
static void set_sched(struct rst_ctx *c)
{
	const struct restore_proc *p = &c->img->proc;
	if (p->flags & RESTORE_PROC_F_SCHED) {
		if (p->nice && setpriority(PRIO_PROCESS, 0, p->nice) < 0)
			ck_debug("restore: nice %d: %m", p->nice);
		if (p->cpus_len && syscall(SYS_sched_setaffinity, 0, p->cpus_len, p->cpus) < 0)
			ck_debug("restore: CPU affinity: %m");
	}
	if ((p->flags & RESTORE_PROC_F_PDEATH) && p->pdeathsig)
		(void)prctl(PR_SET_PDEATHSIG, p->pdeathsig, 0, 0, 0);
}

static int set_rlimits(struct rst_ctx *c)
{
	const struct restore_proc *p = &c->img->proc;
	for (int i = 0; i < RESTORE_NRLIMIT && i < RLIM_NLIMITS; i++) {
		struct rlimit rl = {p->rlim_cur[i], p->rlim_max[i]}, now;
		if (prlimit(0, (__rlimit_resource_t)i, &rl, NULL) == 0)
			continue;
		/* Raising a hard limit needs CAP_SYS_RESOURCE: keep ours, set the soft one. */
		if (errno != EPERM || prlimit(0, (__rlimit_resource_t)i, NULL, &now) < 0)
			return rst_fail(c, -errno, "cannot restore rlimit %d: %s", i,
					strerror(errno));
		rl.rlim_max = now.rlim_max;
		rl.rlim_cur = CK_MIN(rl.rlim_cur, now.rlim_max);
		if (prlimit(0, (__rlimit_resource_t)i, &rl, NULL) < 0)
			return rst_fail(c, -errno, "cannot restore rlimit %d: %s", i,
					strerror(errno));
	}
	return 0;
}

/* glibc registered an rseq area in our TLS; the kernel updates it on every return to user
 * space, and it is about to be unmapped. */
static void rseq_unregister(void)
{
	if (__rseq_size == 0)
		return;
	unsigned long tp = 0;
	if (syscall(SYS_arch_prctl, ARCH_GET_FS_, &tp) < 0)
		return;
	void *area = (char *)tp + __rseq_offset;
	if (syscall(SYS_rseq, area, __rseq_size, RSEQ_FLAG_UNREGISTER, RSEQ_SIG) < 0)
		syscall(SYS_rseq, area, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
}

static __attribute__((noreturn)) void jump(uint64_t entry, uint64_t stack_top, struct ckr_args *a)
{
	__asm__ volatile("mov %0, %%rsp\n\t"
			 "jmp *%1"
			 :
			 : "r"(stack_top), "r"(entry), "D"(a)
			 : "memory");
	__builtin_unreachable();
}

void restore_nofile_raise(void)
{
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 &&
	    setrlimit(RLIMIT_NOFILE, &(struct rlimit){1u << 20, 1u << 20}) < 0)
		(void)setrlimit(RLIMIT_NOFILE, &(struct rlimit){nofile.rlim_max, nofile.rlim_max});
}

static void ctx_free(struct rst_ctx *c)
{
	rst_ctx_close_temps(c);
	free(c->self);
	free(c->vmas);
	free(c->tmp_fds);
	free(c->runs);
	free(c->fds);
	free(c->timers);
	free(c->locks);
	restore_image_free(c->img);
}

int restore_process(int dirfd, const char *id, const struct restore_process_opts *opts,
		    struct restore_err *err)
{
	struct rst_ctx c = {.opts = opts,
			    .err = err,
			    .pages_fd = -1,
			    .exe_fd = -1,
			    .err_fd = -1,
			    .check_fd = -1};
	int r = 0;
	if (!(opts && (opts->no_verify || opts->check_fd > 0)))
		r = restore_image_verify(dirfd, id, err);
	if (r == 0)
		r = restore_image_load(dirfd, id, &c.img, err);
	if (r < 0)
		return r;
	/* Until set_rlimits puts the image's back, the restorer holds every fd of the image plus
	 * a memfd per shared memory object at once: more than the process's own RLIMIT_NOFILE
	 * may allow (1100 shared mappings under `ulimit -n 1024`). Raised for now, as far as
	 * we may. */
	restore_nofile_raise();
	struct ckr_args *a = NULL;
	r = prepare(&c, &a);
	if (r < 0) {
		ctx_free(&c);
		return r;
	}
	/* Point of no return. Signals stay blocked until rt_sigreturn installs the old mask. */
	uint64_t all = ~0ull;
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, NULL, sizeof(all));
	r = rst_fds_install(&c);
	if (r == 0)
		r = set_signals(&c);
	if (r == 0)
		r = set_rlimits(&c);
	if (r == 0)
		set_sched(&c);
	if (r == 0 && c.img->proc.cwd && chdir(c.img->proc.cwd) < 0)
		r = rst_fail(&c, -errno, "cannot change to %s: %s", c.img->proc.cwd,
			     strerror(errno));
	if (r < 0) {
		/* The image's fds are in place: fd 2 may be a file of the job's own. The caller's
		 * message goes where its stderr went (blob_err_fd's copy). */
		if (c.err_fd >= 0)
			dup2(c.err_fd, 2);
		ctx_free(&c);
		return r;
	}
	umask(c.img->proc.umask & 0777);
	prctl(PR_SET_NAME, c.img->proc.comm, 0, 0, 0);
	rseq_unregister();
	jump(c.zone, c.zone + c.zone_len, a);
}
