/* rseq critical sections of a frozen thread.
 *
 * A thread stopped by the freezer may sit inside a registered rseq critical section: the kernel
 * moves it to the section's abort handler only when it returns to user space after being
 * preempted, and a ptrace stop comes before that fix-up (signal work runs before the
 * notify-resume work that does it). Dumped as it is, the thread would come back in the middle
 * of a section it already lost (other CPU, other threads since), and an injected syscall in
 * between lets the kernel clear rseq_cs lazily without moving it, so neither the restored nor
 * the resumed thread would abort. So the dump does what the kernel would: rip = abort_ip, after
 * the same checks (kernel/rseq.c: rseq_get_rseq_cs, rseq_ip_fixup), and rseq_cs = 0, in the
 * live thread (registers and memory) before anything else touches it; the image then holds the
 * moved rip and the cleared word. A descriptor the kernel refuses is left alone: the kernel
 * kills that thread with SIGSEGV, here and after a restore alike. */
#include "restore/dump-internal.h"

#include <sys/ptrace.h>

#define USER_TOP	 0x7ffffffff000ull /* TASK_SIZE with 4-level page tables */
#define RSEQ_CS_OFFSET	 8		   /* struct rseq: cpu_id_start, cpu_id, rseq_cs */
#define RSEQ_CS_DESC_LEN 32

int restore_rseq_fixup(uint64_t rip, const struct restore_rseq_cs *cs, uint32_t sig_at_abort,
		       uint32_t thread_sig, uint64_t *ret_rip)
{
	uint64_t end = cs->start_ip + cs->post_commit_offset;
	if (cs->version || cs->flags || cs->start_ip >= USER_TOP || end >= USER_TOP ||
	    end < cs->start_ip || cs->abort_ip >= USER_TOP || cs->abort_ip < 4 ||
	    cs->abort_ip - cs->start_ip < cs->post_commit_offset || sig_at_abort != thread_sig)
		return -EINVAL;
	if (rip - cs->start_ip >= cs->post_commit_offset)
		return 0;
	*ret_rip = cs->abort_ip;
	return 1;
}

int dump_rseq(pid_t tid, struct restore_thread *t)
{
	if (!(t->flags & RESTORE_THREAD_F_RSEQ) || !t->rseq_ptr)
		return 0;
	/* An area or descriptor that cannot be read is the kernel's -EFAULT: it kills the
	 * thread on its way back to user space; we leave it as it is. */
	uint8_t raw[RSEQ_CS_DESC_LEN];
	if (inject_peek(tid, t->rseq_ptr + RSEQ_CS_OFFSET, raw, 8) < 0)
		return 0;
	uint64_t desc = ck_get_le64(raw);
	if (!desc || desc >= USER_TOP || inject_peek(tid, desc, raw, sizeof(raw)) < 0)
		return 0;
	struct restore_rseq_cs cs = {
		.version = ck_get_le32(raw),
		.flags = ck_get_le32(raw + 4),
		.start_ip = ck_get_le64(raw + 8),
		.post_commit_offset = ck_get_le64(raw + 16),
		.abort_ip = ck_get_le64(raw + 24),
	};
	uint8_t sig[4] = {0};
	if (cs.abort_ip >= 4 && cs.abort_ip < USER_TOP)
		inject_peek(tid, cs.abort_ip - 4, sig, sizeof(sig));
	uint64_t rip;
	if (restore_rseq_fixup(t->regs.rip, &cs, ck_get_le32(sig), t->rseq_sig, &rip) != 1)
		return 0;
	struct user_regs_struct regs = t->regs;
	regs.rip = rip;
	if (ptrace(PTRACE_POKEDATA, tid, (void *)(uintptr_t)(t->rseq_ptr + RSEQ_CS_OFFSET), 0) <
		    0 ||
	    ptrace(PTRACE_SETREGS, tid, 0, &regs) < 0)
		return -errno;
	t->regs = regs;
	return 1;
}
