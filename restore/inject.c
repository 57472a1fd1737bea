/* Syscall injection into a ptrace-stopped thread, for the state the kernel only tells the
 * process itself (sigaction handlers, sigaltstack, clear_child_tid, brk).
 *
 * A `syscall` instruction is taken from the target's [vdso] (its clock_gettime fallback), so no
 * byte of the target is modified. Per call: registers set to the syscall (orig_rax = -1 so the
 * kernel does not apply syscall restart to the register set we planted), PTRACE_SINGLESTEP,
 * the step trap right after the instruction, rax read back. All signals stay blocked meanwhile
 * so nothing is delivered into the planted frame. inject_end() puts the registers and mask back
 * exactly; the thread then sits in a SIGTRAP stop that PTRACE_DETACH(sig 0) discards, and a
 * syscall it was interrupted in restarts as it would have.
 * Results are written to one scratch page mmap'ed in the target and unmapped before the memory
 * maps are read, so the dump does not see it. */
#include "restore/dump-internal.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

int inject_find_syscall(pid_t pid, uint64_t *ret_ip)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	_cleanup_free_ char *maps = NULL;
	size_t len;
	int r = ck_read_file_at(AT_FDCWD, path, 64 << 20, &maps, &len);
	if (r < 0)
		return r;
	char *line = strstr(maps, "[vdso]");
	if (!line)
		return -ENOENT;
	while (line > maps && line[-1] != '\n')
		line--;
	unsigned long lo, hi;
	if (sscanf(line, "%lx-%lx", &lo, &hi) != 2 || hi <= lo || hi - lo > (1 << 20))
		return -ENOENT;
	_cleanup_free_ uint8_t *buf = malloc(hi - lo);
	if (!buf)
		return -ENOMEM;
	struct iovec l = {buf, hi - lo}, rm = {(void *)lo, hi - lo};
	if (process_vm_readv(pid, &l, 1, &rm, 1, 0) != (ssize_t)(hi - lo))
		return -EIO;
	for (size_t i = 0; i + 1 < hi - lo; i++)
		if (buf[i] == 0x0f && buf[i + 1] == 0x05) {
			*ret_ip = lo + i;
			return 0;
		}
	return -ENOENT;
}

int inject_begin(struct inject *ij, pid_t tid, uint64_t syscall_ip)
{
	*ij = (struct inject){.tid = tid, .syscall_ip = syscall_ip};
	if (ptrace(PTRACE_GETREGS, tid, 0, &ij->saved) < 0)
		return -errno;
	if (ptrace(PTRACE_GETSIGMASK, tid, sizeof(uint64_t), &ij->saved_mask) < 0)
		return -errno;
	uint64_t all = ~0ull;
	if (ptrace(PTRACE_SETSIGMASK, tid, sizeof(uint64_t), &all) < 0)
		return -errno;
	return 0;
}

int inject_syscall(struct inject *ij, long nr, const uint64_t a[6], int64_t *ret)
{
	struct user_regs_struct regs = ij->saved;
	regs.rax = (unsigned long long)nr;
	regs.orig_rax = (unsigned long long)-1;
	regs.rdi = a[0];
	regs.rsi = a[1];
	regs.rdx = a[2];
	regs.r10 = a[3];
	regs.r8 = a[4];
	regs.r9 = a[5];
	regs.rip = ij->syscall_ip;
	if (ptrace(PTRACE_SETREGS, ij->tid, 0, &regs) < 0)
		return -errno;
	if (ptrace(PTRACE_SINGLESTEP, ij->tid, 0, 0) < 0)
		return -errno;
	int st;
	for (;;) {
		if (waitpid(ij->tid, &st, __WALL) < 0) {
			if (errno != EINTR)
				return -errno;
			continue;
		}
		/* SIGSTOP is not blocked by the mask: its delivery stop (or, once dequeued, the
		 * group-stop it starts: PTRACE_EVENT_STOP) comes before the step. Stepped past and
		 * kept for the resume (it was lost, and the injection failed with it). */
		if (WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP &&
		    ((st >> 16) == 0 || (st >> 16) == PTRACE_EVENT_STOP)) {
			ij->stop_seen = true;
			if (ptrace(PTRACE_SINGLESTEP, ij->tid, 0, 0) < 0)
				return -errno;
			continue;
		}
		break;
	}
	if (!WIFSTOPPED(st) || WSTOPSIG(st) != SIGTRAP) {
		ck_debug("restore: inject into %d: step ended in status %#x", (int)ij->tid, st);
		return -EIO;
	}
	if (ptrace(PTRACE_GETREGS, ij->tid, 0, &regs) < 0)
		return -errno;
	if (regs.rip != ij->syscall_ip + 2)
		return -EIO;
	*ret = (int64_t)regs.rax;
	return 0;
}

int inject_end(struct inject *ij)
{
	int r = 0;
	if (ptrace(PTRACE_SETREGS, ij->tid, 0, &ij->saved) < 0)
		r = -errno;
	if (ptrace(PTRACE_SETSIGMASK, ij->tid, sizeof(uint64_t), &ij->saved_mask) < 0 && r == 0)
		r = -errno;
	/* The SIGSTOP inject_syscall kept back, pending again: the thread is held, so it takes
	 * effect when the freeze lets go, as it would have (or is kept back again by the next
	 * injection). */
	if (ij->stop_seen)
		(void)syscall(SYS_tkill, ij->tid, SIGSTOP);
	return r;
}

int inject_call(struct inject *ij, long nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
		int64_t *ret)
{
	const uint64_t a[6] = {a0, a1, a2, a3, 0, 0};
	int r = inject_syscall(ij, nr, a, ret);
	if (r == 0 && *ret < 0 && *ret > -4096)
		return (int)*ret;
	return r;
}

int inject_peek(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec l = {buf, len}, rm = {(void *)addr, len};
	return process_vm_readv(pid, &l, 1, &rm, 1, 0) == (ssize_t)len ? 0 : -EIO;
}

/* Layout of the scratch page. */
#define SCR_SIGACT   0	  /* 64 x 32 bytes */
#define SCR_ALTSTACK 2048 /* stack_t, 24 bytes */
#define SCR_TIDADDR  2080 /* 8 bytes */
#define SCR_PDEATH   2096 /* int */

static int collect_leader(struct inject *ij, uint64_t scr, struct restore_image *img)
{
	pid_t pid = ij->tid;
	int64_t ret;
	for (int sig = 1; sig <= RESTORE_NSIG; sig++) {
		int r = inject_call(ij, SYS_rt_sigaction, (uint64_t)sig, 0,
				    scr + SCR_SIGACT + (uint64_t)(sig - 1) * 32, 8, &ret);
		if (r < 0)
			return r;
	}
	uint8_t raw[RESTORE_NSIG * 32];
	int r = inject_peek(pid, scr + SCR_SIGACT, raw, sizeof(raw));
	if (r < 0)
		return r;
	for (int i = 0; i < RESTORE_NSIG; i++) {
		struct restore_sigaction *sa = &img->proc.sigact[i];
		sa->handler = ck_get_le64(raw + i * 32);
		sa->flags = ck_get_le64(raw + i * 32 + 8);
		sa->restorer = ck_get_le64(raw + i * 32 + 16);
		sa->mask = ck_get_le64(raw + i * 32 + 24);
	}
	img->proc.flags |= RESTORE_PROC_F_SIGACT;
	r = inject_call(ij, SYS_brk, 0, 0, 0, 0, &ret);
	if (r < 0)
		return r;
	img->proc.mm[RESTORE_MM_BRK] = (uint64_t)ret;
	img->proc.flags |= RESTORE_PROC_F_BRK;
	uint8_t sig[4];
	r = inject_call(ij, SYS_prctl, PR_GET_PDEATHSIG, scr + SCR_PDEATH, 0, 0, &ret);
	if (r == 0 && ret == 0 && inject_peek(pid, scr + SCR_PDEATH, sig, sizeof(sig)) == 0) {
		img->proc.pdeathsig = ck_get_le32(sig);
		img->proc.flags |= RESTORE_PROC_F_PDEATH;
	}
	/* ssh-agent, gpg-agent and the like make themselves undumpable (no ptrace by the user's
	 * other processes, no core with their keys): the restore must not undo it. */
	r = inject_call(ij, SYS_prctl, PR_GET_DUMPABLE, 0, 0, 0, &ret);
	if (r == 0 && ret == 0)
		img->proc.flags |= RESTORE_PROC_F_UNDUMPABLE;
	return 0; /* without them, pdeathsig is not restored: nothing else depends on it */
}

static int collect_thread(struct inject *ij, uint64_t scr, struct restore_thread *t)
{
	int64_t ret;
	int r = inject_call(ij, SYS_sigaltstack, 0, scr + SCR_ALTSTACK, 0, 0, &ret);
	if (r == 0)
		r = inject_call(ij, SYS_prctl, PR_GET_TID_ADDRESS, scr + SCR_TIDADDR, 0, 0, &ret);
	uint8_t raw[SCR_TIDADDR + 8 - SCR_ALTSTACK];
	if (r == 0)
		r = inject_peek(ij->tid, scr + SCR_ALTSTACK, raw, sizeof(raw));
	if (r < 0)
		return r;
	t->altstack_sp = ck_get_le64(raw);
	t->altstack_flags = ck_get_le32(raw + 8);
	t->altstack_size = ck_get_le64(raw + 16);
	t->clear_child_tid = ck_get_le64(raw + SCR_TIDADDR - SCR_ALTSTACK);
	t->flags |= RESTORE_THREAD_F_INJECTED;
	return 0;
}

int inject_collect(struct restore_freeze *f, struct restore_image *img)
{
	uint64_t ip;
	int r = inject_find_syscall(f->pid, &ip);
	if (r < 0)
		return r;
	struct inject lead;
	r = inject_begin(&lead, f->pid, ip);
	if (r < 0)
		return r;
	int64_t scr;
	r = inject_call(&lead, SYS_mmap, 0, RESTORE_PAGE_SIZE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, &scr);
	/* mmap's fd argument is a4 = r8: 0 is fine for MAP_ANONYMOUS (ignored). */
	if (r < 0)
		goto end_leader;
	r = collect_leader(&lead, (uint64_t)scr, img);
	for (size_t i = 0; r == 0 && i < img->nthreads; i++) {
		struct restore_thread *t = &img->threads[i];
		if (t->tid == f->pid) {
			r = collect_thread(&lead, (uint64_t)scr, t);
			continue;
		}
		struct inject ij;
		r = inject_begin(&ij, t->tid, ip);
		if (r < 0)
			break;
		r = collect_thread(&ij, (uint64_t)scr, t);
		int q = inject_end(&ij);
		if (r == 0)
			r = q;
	}
	int64_t ignored;
	int q = inject_call(&lead, SYS_munmap, (uint64_t)scr, RESTORE_PAGE_SIZE, 0, 0, &ignored);
	if (r == 0)
		r = q;
end_leader:;
	int e = inject_end(&lead);
	return r < 0 ? r : e;
}
