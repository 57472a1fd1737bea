/* Raw syscalls and the failure exit shared by the blob's files (restorer.c, threads.c): no libc
 * exists in the blob. Everything here is hidden so that no symbol leaves the blob. */
#ifndef RESTORE_BLOB_SYS_H
#define RESTORE_BLOB_SYS_H

#include "blob.h"

static inline long ckr_sys6(long nr, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

#define sys6(nr, a, b, c, d, e, f) ckr_sys6(nr, a, b, c, d, e, f)
#define sys1(nr, a)		   ckr_sys6(nr, (long)(a), 0, 0, 0, 0, 0)
#define sys2(nr, a, b)		   ckr_sys6(nr, (long)(a), (long)(b), 0, 0, 0, 0)
#define sys3(nr, a, b, c)	   ckr_sys6(nr, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys4(nr, a, b, c, d)	   ckr_sys6(nr, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define sys5(nr, a, b, c, d, e) \
	ckr_sys6(nr, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

static inline int is_err(long r)
{
	return (unsigned long)r >= (unsigned long)-4095;
}

/* restorer.c: "ckptenv restorer: WHAT at 0xADDR: errno N" on err_fd, then exit_group. */
__attribute__((noreturn, visibility("hidden"))) void
ckr_fail(const struct ckr_args *a, const char *what, uint64_t addr, long ret);

/* timers.c */
/** Create the POSIX timers of a->timers aimed at threads other than the leader (every thread
 *  must exist), then arm the itimers and the POSIX timers. Every signal is still blocked in
 *  every thread: an expiry from here on is only queued. */
__attribute__((visibility("hidden"))) void ckr_timers_arm(const struct ckr_args *a);

/* threads.c */
/** Create every thread but the leader (memory must be complete): each sets up its own state
 *  (ckr_thread_setup), arrives at the barrier and sigreturns once all have arrived. */
__attribute__((visibility("hidden"))) void ckr_threads_spawn(struct ckr_args *a);
/** fs/gs base, tid address, robust list, rseq, name and private pending signals of the calling
 *  thread @t (signals all blocked until its sigreturn). */
__attribute__((visibility("hidden"))) void ckr_thread_setup(const struct ckr_args *a,
							    const struct ckr_thread *t);
/** Leader: wait until every other thread has arrived (done with its setup, waiting). */
__attribute__((visibility("hidden"))) void ckr_threads_wait(struct ckr_args *a);
/** Leader: let every waiting thread go on to its sigreturn. */
__attribute__((visibility("hidden"))) void ckr_threads_release(struct ckr_args *a);
/** rt_sigreturn through @t's frame: the thread continues as it was frozen. */
__attribute__((noreturn, visibility("hidden"))) void ckr_sigreturn(const struct ckr_thread *t);

#endif
