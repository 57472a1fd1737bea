/* Threads of the restored process, inside the blob. The leader calls ckr_threads_spawn() once
 * the old address space is complete (mappings, contents, protections, mm fields): a thread
 * created earlier would run on memory that is still being replaced. Each thread is cloned into
 * the same mm, fd table, fs and signal handlers (CLONE_THREAD), at its old tid when the caller
 * is at the process's old pid (clone3 set_tid; the job's pid namespace makes those tids free),
 * on its own small stack in the landing zone. It inherits the leader's mask (every signal
 * blocked), so nothing reaches it before its own sigreturn installs its saved mask.
 *
 * A new thread sets up what rt_sigreturn does not carry (fs/gs base, the clear_child_tid
 * address, the robust list, rseq, its name, its private pending signals), counts itself in
 * args->arrived and parks on the args->go futex. The leader waits until all have arrived, does
 * the process-wide last steps, sets go and wakes them: only then does any thread return to job
 * code, so none can observe another that is not rebuilt yet. Both futex words live in the
 * argument block, which stays mapped. A failure before a thread arrives ends the whole process
 * through ckr_fail() (exit_group), never a half-threaded one. */
#include "sys.h"

#pragma GCC visibility push(hidden)

#define NR_getpid	     39
#define NR_prctl	     157
#define NR_arch_prctl	     158
#define NR_gettid	     186
#define NR_futex	     202
#define NR_set_tid_address   218
#define NR_set_robust_list   273
#define NR_rt_tgsigqueueinfo 297
#define NR_rseq		     334
#define NR_clone3	     435 /* in ckr_clone_thread */

#define ARCH_SET_GS_	   0x1001
#define ARCH_SET_FS_	   0x1002
#define PR_SET_NAME_	   15
#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAKE_PRIVATE 129

#define CLONE_VM_      0x00000100ull
#define CLONE_FS_      0x00000200ull
#define CLONE_FILES_   0x00000400ull
#define CLONE_SIGHAND_ 0x00000800ull
#define CLONE_THREAD_  0x00010000ull
#define CLONE_SYSVSEM_ 0x00040000ull

/* The kernel's struct clone_args (CLONE_ARGS_SIZE_VER2). */
struct clone_args_ {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
	uint64_t set_tid, set_tid_size, cgroup;
};

void ckr_thread_main(struct ckr_args *a, struct ckr_thread *t);
long ckr_clone_thread(struct clone_args_ *ca, unsigned long size, struct ckr_thread *t,
		      struct ckr_args *a);

/* clone3 into a thread that enters ckr_thread_main(a, t) on its new stack. The child gets the
 * parent's registers but rax (0) and rsp (stack + stack_size): t and a travel in r8 and r9,
 * which clone3 does not read. Returns the new tid or -errno in the parent. */
__asm__(".text\n"
	".globl ckr_clone_thread\n"
	".hidden ckr_clone_thread\n"
	"ckr_clone_thread:\n"
	"	mov %rdx, %r8\n"
	"	mov %rcx, %r9\n"
	"	mov $435, %eax\n"
	"	syscall\n"
	"	test %rax, %rax\n"
	"	jnz 1f\n"
	"	mov %r9, %rdi\n"
	"	mov %r8, %rsi\n"
	"	and $-16, %rsp\n"
	"	xor %ebp, %ebp\n"
	"	call ckr_thread_main\n"
	"	ud2\n"
	"1:	ret\n");

void ckr_thread_setup(const struct ckr_args *a, const struct ckr_thread *t)
{
	long r = sys2(NR_arch_prctl, ARCH_SET_FS_, t->fs_base);
	if (is_err(r))
		ckr_fail(a, "arch_prctl(ARCH_SET_FS)", t->fs_base, r);
	if (t->gs_base) {
		r = sys2(NR_arch_prctl, ARCH_SET_GS_, t->gs_base);
		if (is_err(r))
			ckr_fail(a, "arch_prctl(ARCH_SET_GS)", t->gs_base, r);
	}
	sys1(NR_set_tid_address, t->clear_child_tid);
	if (t->robust_head) {
		r = sys2(NR_set_robust_list, t->robust_head, t->robust_len);
		if (is_err(r))
			ckr_fail(a, "set_robust_list", t->robust_head, r);
	}
	if (t->has_rseq) {
		r = sys4(NR_rseq, t->rseq_ptr, t->rseq_len, 0, t->rseq_sig);
		if (is_err(r))
			ckr_fail(a, "rseq registration", t->rseq_ptr, r);
	}
	if (t->comm[0])
		sys2(NR_prctl, PR_SET_NAME_, t->comm);
	long pid = sys1(NR_getpid, 0), tid = sys1(NR_gettid, 0);
	for (uint32_t i = 0; i < t->npending; i++) {
		uint8_t *info = t->pending + (uint64_t)i * 128;
		int sig = (int)(info[0] | info[1] << 8 | info[2] << 16 | (uint32_t)info[3] << 24);
		r = sys4(NR_rt_tgsigqueueinfo, pid, tid, sig, info);
		if (is_err(r))
			ckr_fail(a, "re-queueing a thread's pending signal", (uint64_t)sig, r);
	}
}

static void futex_wait(uint32_t *word, uint32_t val)
{
	sys6(NR_futex, (long)word, FUTEX_WAIT_PRIVATE, val, 0, 0, 0);
}

static void futex_wake_all(uint32_t *word)
{
	sys6(NR_futex, (long)word, FUTEX_WAKE_PRIVATE, 0x7fffffff, 0, 0, 0);
}

void ckr_thread_main(struct ckr_args *a, struct ckr_thread *t)
{
	ckr_thread_setup(a, t);
	__atomic_add_fetch(&a->arrived, 1, __ATOMIC_SEQ_CST);
	futex_wake_all(&a->arrived);
	while (!__atomic_load_n(&a->go, __ATOMIC_SEQ_CST))
		futex_wait(&a->go, 0); /* EAGAIN once go is set, EINTR: look again */
	ckr_sigreturn(t);
}

void ckr_threads_spawn(struct ckr_args *a)
{
	a->threads[0].cur_tid = (int32_t)sys1(NR_gettid, 0);
	for (uint32_t i = 1; i < a->nthreads; i++) {
		struct ckr_thread *t = &a->threads[i];
		int32_t tid = t->tid;
		struct clone_args_ ca = {
			.flags = CLONE_VM_ | CLONE_FS_ | CLONE_FILES_ | CLONE_SIGHAND_ |
				 CLONE_THREAD_ | CLONE_SYSVSEM_,
			.stack = t->stack,
			.stack_size = t->stack_size,
		};
		if (a->set_tids) {
			ca.set_tid = (uint64_t)(unsigned long)&tid;
			ca.set_tid_size = 1;
		}
		long r = ckr_clone_thread(&ca, sizeof(ca), t, a);
		if (is_err(r))
			ckr_fail(a, "clone3 of a thread at its old tid", (uint64_t)t->tid, r);
		t->cur_tid = (int32_t)r; /* a timer aimed at it is created for this tid */
	}
}

void ckr_threads_wait(struct ckr_args *a)
{
	uint32_t want = a->nthreads - 1, n;
	while ((n = __atomic_load_n(&a->arrived, __ATOMIC_SEQ_CST)) < want)
		futex_wait(&a->arrived, n);
}

void ckr_threads_release(struct ckr_args *a)
{
	__atomic_store_n(&a->go, 1, __ATOMIC_SEQ_CST);
	futex_wake_all(&a->go);
}

void ckr_sigreturn(const struct ckr_thread *t)
{
	uint64_t sp = t->frame + 8;
	__asm__ volatile("mov %0, %%rsp\n\t"
			 "mov $15, %%eax\n\t" /* rt_sigreturn */
			 "syscall\n\t"
			 "ud2"
			 :
			 : "r"(sp)
			 : "memory");
	__builtin_unreachable();
}

#pragma GCC visibility pop
