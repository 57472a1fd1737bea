/* The rt_sigframe the blob returns through: rt_sigreturn loads every general register, eflags,
 * cs/ss, the blocked mask and the alternate stack from it, and the whole xsave state from the
 * area uc_mcontext.fpstate points to. That area is the thread's NT_X86_XSTATE copy (standard,
 * non-compacted format of this CPU: component offsets are CPUID leaf 0xD's, which is why an
 * image from a CPU with another layout is refused upstream), 64-byte aligned as XRSTOR needs,
 * with the software-reserved bytes the kernel checks (check_xstate_in_sigframe: magic1,
 * xstate_size, extended_size, xfeatures) and FP_XSTATE_MAGIC2 right after it. Without them the
 * kernel silently restores only the legacy FXSAVE part. The ptrace copy is as long as every
 * feature of XCR0 (11008 bytes with AMX), but the kernel takes a frame's xstate only when it is
 * no longer than the process's permitted features (AMX tile data needs ARCH_REQ_XCOMP_PERM
 * first), so the frame is cut to those features. fs/gs base are not in the frame: the blob sets
 * them with arch_prctl. */
#include "restore/restore-internal.h"

#include <cpuid.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ERESTARTSYS	      512
#define ERESTARTNOINTR	      513
#define ERESTARTNOHAND	      514
#define ERESTART_RESTARTBLOCK 516
#define SS_DISABLE_	      2

#define XSAVE_SW_OFF	  464 /* fxregs_state.sw_reserved */
#define XSAVE_HDR_OFF	  512
#define XSAVE_LEGACY_SIZE 576 /* legacy area + header */
#define XFEATURE_TILEDATA 18  /* the one dynamically enabled feature (AMX) */
#define ARCH_GET_XCOMP_PERM_ 0x1022
#define ARCH_REQ_XCOMP_PERM_ 0x1023

/* Size of the standard-format area holding features @mask: the end of the last component. */
static uint32_t xstate_size_of(uint64_t mask)
{
	uint32_t end = XSAVE_LEGACY_SIZE;
	for (unsigned i = 2; i < 64; i++) {
		if (!(mask & (1ull << i)))
			continue;
		unsigned size, off, c, d;
		__cpuid_count(0xd, i, size, off, c, d);
		(void)c, (void)d;
		end = CK_MAX(end, off + size);
	}
	return end;
}

static int xcomp_perm(uint64_t *ret)
{
	uint64_t perm = 0;
	if (syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM_, &perm) < 0)
		return -errno;
	*ret = perm;
	return 0;
}

int rst_xstate_permit(uint64_t cur_xcr0, const struct restore_thread *t, uint64_t *ret_perm)
{
	uint64_t perm = 0;
	if (xcomp_perm(&perm) < 0) {
		*ret_perm = cur_xcr0; /* a kernel before 5.16: no dynamic features */
		return 0;
	}
	uint64_t in_use = t->xsave_len >= XSAVE_LEGACY_SIZE ? ck_get_le64(t->xsave + XSAVE_HDR_OFF) : 0;
	uint64_t tile = 1ull << XFEATURE_TILEDATA;
	if ((in_use & cur_xcr0 & tile) && !(perm & tile)) {
		if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM_, XFEATURE_TILEDATA) < 0)
			return -errno;
		int r = xcomp_perm(&perm);
		if (r < 0)
			return r;
	}
	*ret_perm = perm & cur_xcr0;
	return 0;
}

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

int rst_sigframe_build(const struct restore_thread *t, uint64_t xperm, uint32_t cur_xsave_size,
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
		uint64_t feat = t->xcr0 & xperm;
		uint32_t len = xstate_size_of(feat);
		if (t->xsave_len < XSAVE_LEGACY_SIZE || t->xsave_len > cur_xsave_size ||
		    len > t->xsave_len)
			return -EINVAL;
		uint8_t *fp = mem + ((sizeof(*f) + 63) & ~(size_t)63);
		memcpy(fp, t->xsave, len);
		uint8_t *sw = fp + XSAVE_SW_OFF;
		memset(sw, 0, 48);
		ck_put_le32(sw, CKR_FP_XSTATE_MAGIC1);
		ck_put_le32(sw + 4, len + 4); /* extended_size: with magic2 */
		ck_put_le64(sw + 8, feat);
		ck_put_le32(sw + 16, len);
		/* xstate_bv: components outside the frame are in their init state. */
		ck_put_le64(fp + XSAVE_HDR_OFF, ck_get_le64(fp + XSAVE_HDR_OFF) & feat);
		memset(fp + XSAVE_HDR_OFF + 8, 0, 56); /* xcomp_bv = 0: standard format */
		ck_put_le32(fp + len, CKR_FP_XSTATE_MAGIC2);
		m->fpstate = (uint64_t)(uintptr_t)fp;
		f->uc.uc_flags |= CKR_UC_FP_XSTATE;
	}
	*ret_frame = (uint64_t)(uintptr_t)f;
	return 0;
}
