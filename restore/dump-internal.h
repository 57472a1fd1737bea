/* Private to restore/: the parts of a dump (dump.c orchestrates). */
#ifndef RESTORE_DUMP_INTERNAL_H
#define RESTORE_DUMP_INTERNAL_H

#include "restore/freeze-internal.h"
#include "restore/image-internal.h"

#include <sys/user.h>

/* inject.c: run syscalls inside a stopped thread (see the design note there). */
struct inject {
	pid_t tid;
	uint64_t syscall_ip; /* address of a `syscall` instruction in the target */
	struct user_regs_struct saved;
	uint64_t saved_mask;
	bool stop_seen; /* a SIGSTOP (which no mask blocks) came meanwhile: send it again */
};
/** Find a `syscall` instruction in the target's [vdso]. -ENOENT if none. */
int inject_find_syscall(pid_t pid, uint64_t *ret_ip);
int inject_begin(struct inject *ij, pid_t tid, uint64_t syscall_ip);
int inject_syscall(struct inject *ij, long nr, const uint64_t args[6], int64_t *ret);
int inject_end(struct inject *ij);
/** inject_syscall with 4 arguments; a syscall's own error (-4095..-1 in *ret) is returned too. */
int inject_call(struct inject *ij, long nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
		int64_t *ret);
/** Read @len bytes at @addr of process @pid (a scratch page after injected syscalls); -EIO. */
int inject_peek(pid_t pid, uint64_t addr, void *buf, size_t len);
/** Read what only the target itself can tell: sigactions and brk (leader), alt stacks and
 *  clear_child_tid (every thread). Sets RESTORE_PROC_F_* / RESTORE_THREAD_F_INJECTED. */
int inject_collect(struct restore_freeze *f, struct restore_image *img);

/* dump.c */
/** The queued signals of thread @tid (@shared: of the process), up to IMG_MAX_PENDING, in a
 *  new array (NULL when none). */
int dump_peek_siginfo(pid_t tid, bool shared, struct restore_siginfo **ret, size_t *ret_n);

/* dump-rseq.c */
/** Thread @tid (frozen, registers and rseq registration in @t) inside an rseq critical
 *  section: moved to the abort handler as the kernel would (restore_rseq_fixup), rseq_cs
 *  cleared, in the live thread and in @t. 1 when moved, 0 when nothing to do, -errno. */
int dump_rseq(pid_t tid, struct restore_thread *t);

/* dump-timers.c */
/** Parse /proc/PID/timers text into @t->posix (sorted by id). -EOPNOTSUPP for a notify kind
 *  the kernel does not implement itself, -E2BIG, -ENOMEM. */
int dump_timers_parse(const char *text, struct restore_timers *t);
/** Refuse what the restorer cannot rebuild: a POSIX timer aimed (SIGEV_THREAD_ID) at a tid
 *  that is not one of the frozen threads (-EOPNOTSUPP, err->msg names it). Needs
 *  img->proc.timers and img->threads. */
int dump_timers_check(pid_t pid, const struct restore_image *img, struct restore_err *err);
/** Read the clocks, itimers and POSIX timers of the frozen process from inside it into
 *  img->timers (sets RESTORE_TIMERS_F_VALID). Needs img->proc.timers. */
int dump_timers(struct restore_freeze *f, struct restore_image *img);

/* dump-mem.c */
int dump_vmas(pid_t pid, struct restore_image *img, struct restore_err *err);
int dump_pages(pid_t pid, const struct restore_image *img, struct restore_image_writer *w,
	       const struct restore_dump_opts *opts, struct restore_dump_stats *st,
	       struct restore_err *err);

/* dump-fds.c */
/** The fd table and each fd's state (dump-fds-kinds.c); @inject: syscalls may be injected. */
int dump_fds(pid_t pid, struct restore_image *img, bool inject, struct restore_err *err);
/** Mark every ident (exe, file mappings, fds) whose st_dev is a mount of the job's vfs
 *  (fstype fuse.ckptenv in /proc/PID/mountinfo) with RESTORE_IDENT_F_JOB_VFS. */
int dump_mark_job_vfs(pid_t pid, struct restore_image *img);
/** Mark the pipes at fds > 2 that are the caller's given stdio (restore_dump_opts.given);
 *  with opts->strict, refuse (-EOPNOTSUPP, @err) what a restore could not rebuild. After
 *  dump_mark_job_vfs. */
int dump_check_restorable(struct restore_image *img, const struct restore_dump_opts *opts,
			  struct restore_err *err);

#endif
