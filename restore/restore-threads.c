/* The threads' part of the landing zone: for every thread of the image one struct ckr_thread
 * (what rt_sigreturn does not restore), its private pending signals and its own rt_sigframe
 * (registers, mask, alternate stack, xsave area); every thread but the leader also gets a blob
 * stack of RST_THREAD_STACK bytes. The blob (blob/threads.c) clones them once memory is
 * rebuilt. Tids: when the restorer runs at the image's pid (the job's own pid namespace, or
 * root in a test), every thread is cloned at its old tid, since glibc caches it (struct
 * pthread's tid, owner fields of mutexes). Restored at another pid, the threads get new tids
 * like the leader gets a new pid (tests only). */
#include "restore/restore-internal.h"

#include <unistd.h>

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
