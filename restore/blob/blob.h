/* The argument block handed from the restorer's C side (restore/restore-*.c) to the libc-free
 * blob (restore/blob/restorer.c). Both sides are built from this header: fixed-width fields and
 * absolute pointers only, since the block lives in the landing zone, which stays at the same
 * address from its construction to the final rt_sigreturn. The blob is entered at offset 0 of its
 * code with %rdi = struct ckr_args * and %rsp at the top of its own stack. */
#ifndef RESTORE_BLOB_H
#define RESTORE_BLOB_H

#include <stdint.h>

#define CKR_ARGS_MAGIC 0x636b72617267731aull /* "ckrargs\x1a" */

/* ckr_vma.how */
enum ckr_map_how {
	CKR_MAP_ANON = 1, /* MAP_PRIVATE|MAP_ANONYMOUS */
	CKR_MAP_FILE,	  /* mmap of ->fd at ->pgoff with ->mmap_flags (private file, shmem) */
	CKR_MAP_SKIP,	  /* vvar/vdso: moved, not mapped */
};

struct ckr_vma {
	uint64_t start, end, pgoff;
	uint32_t how;	     /* enum ckr_map_how */
	uint32_t mmap_flags; /* MAP_PRIVATE/MAP_SHARED/MAP_GROWSDOWN, MAP_FIXED is added */
	uint32_t prot;	     /* final protection, set after the pages are in */
	uint32_t fill_prot;  /* protection while mapping and filling (prot | PROT_WRITE) */
	int32_t fd;	     /* CKR_MAP_FILE: an fd of the restorer, closed by the blob */
	uint32_t pad;
};

/* @len bytes of pages.img at @off go to @addr. */
struct ckr_run {
	uint64_t addr, off, len;
};

/* A special mapping of the restorer ([vvar], [vvar_vclock], [vdso]) moved to the image's
 * address through a parking slot inside the landing zone (so that a target overlapping the
 * current place is no problem). */
struct ckr_remap {
	uint64_t cur, park, target, len;
};

#define CKR_NREMAP 3

/* A timer to arm once every thread exists, before any is released (restore-timers.c plans
 * them). POSIX timers aimed at the process or the leader already exist at their old ids
 * (created before the point of no return, disarmed); one aimed at another thread
 * (CKR_TIMER_CREATE) is created here first, once its thread exists, at its old id
 * (PR_TIMER_CREATE_RESTORE_IDS), as SIGEV_THREAD_ID to threads[@thread]; itimers are set here.
 * With CKR_TIMER_ABS, @value_ns is a deadline on clock @clock: POSIX timers are armed with
 * TIMER_ABSTIME, itimers (relative only) with what is left of it. @value_ns 0: left disarmed. */
#define CKR_TIMER_ITIMER 0x1u /* @id is ITIMER_REAL/_VIRTUAL/_PROF, not a POSIX timer id */
#define CKR_TIMER_ABS	 0x2u
#define CKR_TIMER_CREATE 0x4u /* created by the blob: @signo, @value, @thread are valid */
struct ckr_timer {
	int32_t id;
	int32_t clock;
	uint32_t flags;
	int32_t signo;
	uint64_t value_ns, interval_ns;
	uint64_t value;	 /* sigev_value */
	uint32_t thread; /* index in ckr_args.threads of the target thread */
	uint32_t pad;
};

/* A POSIX record lock the blob takes again once it closed its own fds: a close of any fd on
 * a file drops the process's POSIX locks on it (a mapped and locked file: SQLite's -shm).
 * @fl is struct flock as the x86-64 kernel reads it. */
struct ckr_lock {
	int32_t fd;
	uint32_t pad;
	struct {
		int16_t type, whence;
		uint32_t pad;
		int64_t start, len;
		int32_t pid, pad2;
	} fl;
};

struct ckr_args {
	uint64_t magic;
	uint64_t zone_lo, zone_hi; /* the landing zone: everything else is unmapped */
	uint64_t task_size;	   /* unmap up to here */
	uint32_t nremap;
	uint32_t nvmas;
	struct ckr_remap remap[CKR_NREMAP];
	struct ckr_vma *vmas;
	uint64_t nruns;
	struct ckr_run *runs;
	int32_t pages_fd;
	uint32_t nclose;
	int32_t *close_fds; /* every other fd of the restorer to close once mapped (map fds) */

	/* PR_SET_MM_MAP: the kernel's struct prctl_mm_map, field by field. */
	uint64_t mm[11];
	uint64_t auxv;
	uint32_t auxv_size;
	int32_t exe_fd; /* -1: leave /proc/PID/exe alone */

	/* Every thread of the process, leader first (blob/threads.c). */
	uint32_t nthreads;
	uint32_t set_tids; /* 1: threads get their old tids (clone3 set_tid), 0: any tid */
	struct ckr_thread *threads;
	uint32_t arrived; /* futex word: threads other than the leader done with their setup */
	uint32_t go;	  /* futex word: set to 1 by the leader, which releases them all */

	/* Shared pending signals to queue again (128-byte siginfo each), by the leader. */
	uint32_t npending_shared;
	uint32_t pad1;
	uint8_t *pending;

	int32_t err_fd; /* where the blob writes its one-line failure message (-1: none) */
	uint32_t ntimers;
	struct ckr_timer *timers; /* armed by the leader, last (blob/timers.c) */

	/* The page check (restore_pages_check, in the parent): -1 none. Else the blob writes the
	 * bytes of pages filled so far (uint64_t, runs in order) after every CKR_CHECK_STEP bytes
	 * at most and CKR_CHECK_END after the last, then waits for the verdict: CKR_CHECK_GO, or a one-line
	 * refusal it copies to err_fd before it exits. */
	int32_t check_fd;
	uint32_t nlocks;
	uint32_t undumpable; /* 1: PR_SET_DUMPABLE 0, last (the restorer needed its /proc files) */
	struct ckr_lock *locks; /* POSIX locks, taken again last (restore-fds.c took them first) */
};

#define CKR_CHECK_STEP (8ull << 20)
#define CKR_CHECK_END  (~0ull)
#define CKR_CHECK_GO   'y'

/* One thread: the state rt_sigreturn does not carry, and the frame it returns through. The
 * leader runs on the landing zone's main stack; every other thread gets its own small stack
 * [stack, stack + stack_size) in the zone for its time in the blob. */
struct ckr_thread {
	int32_t tid;
	uint32_t has_rseq;
	uint64_t fs_base, gs_base;
	uint64_t clear_child_tid;
	uint64_t robust_head, robust_len;
	uint64_t rseq_ptr;
	uint32_t rseq_len, rseq_sig;
	char comm[16];		/* PR_SET_NAME; "" leaves it */
	uint32_t npending;	/* thread-private pending signals at @pending */
	uint32_t pad;
	uint8_t *pending;
	uint64_t frame;		/* struct ckr_rt_sigframe: rt_sigreturn with %rsp = frame + 8 */
	uint64_t stack, stack_size;
	int32_t cur_tid; /* the tid clone3 gave it (== tid when set_tids), set by the leader */
	uint32_t pad2;
};

/* Exit status of a restore that failed inside the blob (the old address space is gone, nothing
 * can be returned): the message went to err_fd. */
#define CKR_BLOB_EXIT_STATUS 113

/* ---- the x86-64 signal frame, as arch/x86/include/uapi/asm/sigcontext.h lays it out ------- */

struct ckr_sigcontext {
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;
	uint16_t cs, gs, fs, ss;
	uint64_t err, trapno, oldmask, cr2;
	uint64_t fpstate; /* 64-byte aligned xsave area, or 0 */
	uint64_t reserved1[8];
};

struct ckr_ucontext {
	uint64_t uc_flags;
	uint64_t uc_link;
	uint64_t ss_sp; /* uc_stack: the alternate signal stack rt_sigreturn installs */
	int32_t ss_flags;
	int32_t ss_pad;
	uint64_t ss_size;
	struct ckr_sigcontext mc;
	uint64_t sigmask;
};

struct ckr_rt_sigframe {
	uint64_t pretcode; /* popped by the handler's ret: rt_sigreturn reads from %rsp - 8 */
	struct ckr_ucontext uc;
	uint8_t info[128];
};

#define CKR_UC_FP_XSTATE	 0x1
#define CKR_UC_SIGCONTEXT_SS	 0x2
#define CKR_UC_STRICT_RESTORE_SS 0x4

#define CKR_FP_XSTATE_MAGIC1 0x46505853u
#define CKR_FP_XSTATE_MAGIC2 0x46505845u

_Static_assert(sizeof(struct ckr_sigcontext) == 256, "sigcontext layout");
_Static_assert(sizeof(struct ckr_ucontext) == 304, "ucontext layout");
_Static_assert(sizeof(struct ckr_rt_sigframe) == 440, "rt_sigframe layout");

#endif
