/* The threads' part of the landing zone: for every thread of the image one struct ckr_thread
 * (what rt_sigreturn does not restore), its private pending signals and its own rt_sigframe
 * (registers, mask, alternate stack, xsave area); every thread but the leader also gets a blob
 * stack of RST_THREAD_STACK bytes. The blob (blob/threads.c) clones them once memory is
 * rebuilt. Tids: when the restorer runs at the image's pid (the job's own pid namespace, or
 * root in a test), every thread is cloned at its old tid, since glibc caches it (struct
 * pthread's tid, owner fields of mutexes). Restored at another pid, the threads get new tids
 * like the leader gets a new pid (tests only). */
#include "restore/restore-internal.h"

#include <linux/sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Whether clone3 may choose tids here: asking for our own pid fails with EEXIST when we may
 * (the tid is taken), EPERM when we may not, and never creates anything. */
static int probe_set_tid(void)
{
	pid_t self = getpid();
	struct clone_args ca = {
		.exit_signal = SIGCHLD, .set_tid = (uint64_t)(uintptr_t)&self, .set_tid_size = 1};
	long r = syscall(SYS_clone3, &ca, sizeof(ca));
	if (r == 0)
		_exit(0); /* cannot happen: our pid is ours */
	if (r > 0) {
		waitpid((pid_t)r, NULL, 0);
		return 0;
	}
	return errno == EEXIST ? 0 : -errno;
}

int rst_threads_check(struct rst_ctx *c)
{
	const struct restore_image *img = c->img;
	if (img->nthreads < 2 || getpid() != img->proc.pid)
		return 0; /* no other thread, or new tids anyway (see above) */
	int r = probe_set_tid();
	if (r < 0)
		return rst_fail(c, r,
				"cannot recreate %zu threads at their old tids: clone3 set_tid is "
				"not allowed here (%s; it needs CAP_CHECKPOINT_RESTORE or "
				"CAP_SYS_ADMIN over the pid namespace)",
				img->nthreads - 1, strerror(-r));
	for (size_t i = 1; i < img->nthreads; i++) {
		pid_t tid = img->threads[i].tid;
		if (kill(tid, 0) == 0 || errno != ESRCH)
			return rst_fail(c, -EBUSY,
					"tid %d of thread %zu is taken by another process; restore "
					"into the job's own pid namespace (ckptenv restore)",
					(int)tid, i);
	}
	return 0;
}

size_t rst_threads_args_size(const struct rst_ctx *c)
{
	const struct restore_image *img = c->img;
	size_t n = 64 + img->nthreads * sizeof(struct ckr_thread);
	for (size_t i = 0; i < img->nthreads; i++) {
		const struct restore_thread *t = &img->threads[i];
		n += 64 + t->npending * RESTORE_SIGINFO_SIZE;
		n += 64 + RST_FRAME_EXTRA + t->xsave_len;
	}
	return n;
}

int rst_threads_build(struct rst_ctx *c, struct rst_bump *b, struct ckr_args *a, uint64_t stacks)
{
	const struct restore_image *img = c->img;
	struct ckr_thread *th = rst_bump(b, img->nthreads * sizeof(*th));
	if (!th)
		return -ENOBUFS;
	a->threads = th;
	a->nthreads = (uint32_t)img->nthreads;
	a->set_tids = getpid() == img->proc.pid;
	for (size_t i = 0; i < img->nthreads; i++) {
		const struct restore_thread *t = &img->threads[i];
		uint8_t *pend = rst_bump(b, t->npending * RESTORE_SIGINFO_SIZE);
		uint8_t *frame = rst_bump(b, RST_FRAME_EXTRA + t->xsave_len);
		if (!pend || !frame)
			return -ENOBUFS;
		th[i] = (struct ckr_thread){
			.tid = t->tid,
			.has_rseq = (t->flags & RESTORE_THREAD_F_RSEQ) && t->rseq_ptr,
			.fs_base = t->regs.fs_base,
			.gs_base = t->regs.gs_base,
			.clear_child_tid = t->clear_child_tid,
			.robust_head = t->robust_head,
			.robust_len = t->robust_len,
			.rseq_ptr = t->rseq_ptr,
			.rseq_len = t->rseq_len,
			.rseq_sig = t->rseq_sig,
			.npending = (uint32_t)t->npending,
			.pending = pend,
		};
		memcpy(th[i].comm, t->comm, sizeof(th[i].comm));
		th[i].comm[15] = 0;
		if (t->npending)
			memcpy(pend, t->pending, t->npending * RESTORE_SIGINFO_SIZE);
		if (i > 0) {
			if ((uint64_t)i * RST_THREAD_STACK > c->stacks_len)
				return -ENOBUFS;
			th[i].stack = stacks + (i - 1) * RST_THREAD_STACK;
			th[i].stack_size = RST_THREAD_STACK;
		}
		int r = rst_sigframe_build(t, c->xperm, c->cur_xsave_size, frame, &th[i].frame);
		if (r < 0)
			return rst_fail(c, r, "the xsave area of thread %d does not fit this CPU",
					(int)t->tid);
	}
	return 0;
}
