/* The rt_sigframe the blob returns through: rt_sigreturn loads every general register, eflags,
 * cs/ss, the blocked mask and the alternate stack from it, and the whole xsave state from the
 * area uc_mcontext.fpstate points to. That area is the thread's NT_X86_XSTATE copy (standard,
 * non-compacted format of this CPU: component offsets are CPUID leaf 0xD's, which is why an
 * image from a CPU with another layout is refused upstream), 64-byte aligned as XRSTOR needs,
 * with the software-reserved bytes the kernel checks (check_xstate_in_sigframe: magic1,
 * xstate_size, extended_size, xfeatures) and FP_XSTATE_MAGIC2 right after it. Without them the
 * kernel silently restores only the legacy FXSAVE part. fs/gs base are not in the frame: the
 * blob sets them with arch_prctl. */
#include "restore/restore-internal.h"

#include <stddef.h>

#define ERESTARTSYS	      512
#define ERESTARTNOINTR	      513
#define ERESTARTNOHAND	      514
#define ERESTART_RESTARTBLOCK 516
#define SS_DISABLE_	      2

#define XSAVE_SW_OFF	  464 /* fxregs_state.sw_reserved */
#define XSAVE_HDR_OFF	  512
#define XSAVE_LEGACY_SIZE 576 /* legacy area + header */

void rst_regs_fixup(struct user_regs_struct *regs)
{
	if ((long long)regs->orig_rax < 0)
		return; /* not stopped in a syscall */
	switch ((long long)regs->rax) {
	case -ERESTARTSYS:
	case -ERESTARTNOINTR:
	case -ERESTARTNOHAND:
		regs->rax = regs->orig_rax;
		regs->rip -= 2; /* back onto the syscall instruction */
		break;
	case -ERESTART_RESTARTBLOCK:
		regs->rax = (unsigned long long)-EINTR; /* its restart block died with the kernel */
		break;
	default:
		break;
	}
}

int rst_sigframe_build(const struct restore_thread *t, uint64_t cur_xcr0, uint32_t cur_xsave_size,
		       uint8_t *mem, uint64_t *ret_frame)
{
	struct user_regs_struct g = t->regs;
	rst_regs_fixup(&g);
	struct ckr_rt_sigframe *f = (struct ckr_rt_sigframe *)(void *)mem;
	memset(f, 0, sizeof(*f));
	struct ckr_sigcontext *m = &f->uc.mc;
	m->r8 = g.r8, m->r9 = g.r9, m->r10 = g.r10, m->r11 = g.r11;
	m->r12 = g.r12, m->r13 = g.r13, m->r14 = g.r14, m->r15 = g.r15;
	m->rdi = g.rdi, m->rsi = g.rsi, m->rbp = g.rbp, m->rbx = g.rbx;
	m->rdx = g.rdx, m->rax = g.rax, m->rcx = g.rcx, m->rsp = g.rsp;
	m->rip = g.rip, m->eflags = g.eflags;
	m->cs = (uint16_t)g.cs;
	m->ss = (uint16_t)g.ss;
	f->uc.uc_flags = CKR_UC_SIGCONTEXT_SS | CKR_UC_STRICT_RESTORE_SS;
	f->uc.sigmask = t->sigmask;
	if (t->flags & RESTORE_THREAD_F_INJECTED) {
		f->uc.ss_sp = t->altstack_sp;
		f->uc.ss_flags = (int32_t)t->altstack_flags;
		f->uc.ss_size = t->altstack_size;
	} else {
		f->uc.ss_flags = SS_DISABLE_;
	}
	if (t->xsave_len) {
		if (t->xsave_len < XSAVE_LEGACY_SIZE || t->xsave_len > cur_xsave_size ||
		    (t->xcr0 & ~cur_xcr0))
			return -EINVAL;
		uint8_t *fp = mem + ((sizeof(*f) + 63) & ~(size_t)63);
		memcpy(fp, t->xsave, t->xsave_len);
		uint8_t *sw = fp + XSAVE_SW_OFF;
		memset(sw, 0, 48);
		ck_put_le32(sw, CKR_FP_XSTATE_MAGIC1);
		ck_put_le32(sw + 4, t->xsave_len + 4); /* extended_size: with magic2 */
		ck_put_le64(sw + 8, t->xcr0 & cur_xcr0);
		ck_put_le32(sw + 16, t->xsave_len);
		memset(fp + XSAVE_HDR_OFF + 8, 0, 56); /* xcomp_bv = 0: standard format */
		ck_put_le32(fp + t->xsave_len, CKR_FP_XSTATE_MAGIC2);
		m->fpstate = (uint64_t)(uintptr_t)fp;
		f->uc.uc_flags |= CKR_UC_FP_XSTATE;
	}
	*ret_frame = (uint64_t)(uintptr_t)f;
	return 0;
}
