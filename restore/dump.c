/* restore_dump(): collects the whole state of a frozen process into the image model, streams
 * its pages into the writer and commits. Order matters: syscalls are injected first (their
 * scratch page is gone again before the maps are read), then threads, process-wide state, maps,
 * fds, pages. Registers are read before any injection and stored raw; the syscall-restart
 * fix-up is the restorer's job (docs/image-format.md). */
#include "restore/dump-internal.h"

#include <cpuid.h>
#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>

static int read_text(pid_t pid, pid_t tid, const char *name, char **ret)
{
	char p[96];
	size_t len;
	if (tid)
		snprintf(p, sizeof(p), "/proc/%d/task/%d/%s", (int)pid, (int)tid, name);
	else
		snprintf(p, sizeof(p), "/proc/%d/%s", (int)pid, name);
	return ck_read_file_at(AT_FDCWD, p, IMG_MAX_TEXT, ret, &len);
}

static void copy_comm(char dst[16], const char *s)
{
	memset(dst, 0, 16);
	size_t n = strcspn(s, "\n");
	memcpy(dst, s, CK_MIN(n, (size_t)15));
}

int dump_peek_siginfo(pid_t tid, bool shared, struct restore_siginfo **ret, size_t *ret_n)
{
	struct restore_siginfo *v = NULL;
	size_t n = 0;
	for (;;) {
		struct restore_siginfo *nv = realloc(v, (n + 32) * sizeof(*nv));
		if (!nv) {
			free(v);
			return -ENOMEM;
		}
		v = nv;
		struct __ptrace_peeksiginfo_args a = {
			.off = n, .flags = shared ? PTRACE_PEEKSIGINFO_SHARED : 0, .nr = 32};
		long got = ptrace(PTRACE_PEEKSIGINFO, tid, &a, v + n);
		if (got < 0) {
			free(v);
			return -errno;
		}
		n += (size_t)got;
		if (got == 0 || n >= IMG_MAX_PENDING)
			break;
	}
	if (n == 0) {
		free(v);
		v = NULL;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

static int dump_thread(pid_t pid, pid_t tid, struct restore_thread *t)
{
	t->tid = tid;
	if (ptrace(PTRACE_GETREGS, tid, 0, &t->regs) < 0)
		return -errno;
	size_t cap = IMG_MAX_XSAVE;
	_cleanup_free_ uint8_t *xs = aligned_alloc(64, cap);
	if (!xs)
		return -ENOMEM;
	struct iovec iov = {xs, cap};
	if (ptrace(PTRACE_GETREGSET, tid, NT_X86_XSTATE, &iov) < 0)
		return -errno;
	if (iov.iov_len < 576)
		return -EIO;
	t->xsave_len = (uint32_t)iov.iov_len;
	/* sw_reserved (bytes 464..) begins with the user xstate mask (XCR0) in ptrace's copy. */
	t->xcr0 = ck_get_le64(xs + 464);
	t->xsave = realloc(TAKE_PTR(xs), iov.iov_len);
	if (!t->xsave)
		return -ENOMEM;
	if (ptrace(PTRACE_GETSIGMASK, tid, sizeof(uint64_t), &t->sigmask) < 0)
		return -errno;
	int r = dump_peek_siginfo(tid, false, &t->pending, &t->npending);
	if (r < 0)
		return r;
	struct __ptrace_rseq_configuration rc = {0};
	if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, tid, sizeof(rc), &rc) >= 0) {
		t->rseq_ptr = rc.rseq_abi_pointer;
		t->rseq_len = rc.rseq_abi_size;
		t->rseq_sig = rc.signature;
		t->rseq_flags = rc.flags;
		t->flags |= RESTORE_THREAD_F_RSEQ;
		/* Before any injection: see dump-rseq.c. */
		r = dump_rseq(tid, t);
		if (r < 0)
			return r;
	}
	void *head = NULL;
	size_t hlen = 0;
	if (syscall(SYS_get_robust_list, tid, &head, &hlen) == 0) {
		t->robust_head = (uint64_t)(uintptr_t)head;
		t->robust_len = hlen;
	}
	_cleanup_free_ char *comm = NULL;
	if (read_text(pid, tid, "comm", &comm) == 0)
		copy_comm(t->comm, comm);
	return 0;
}

static uint64_t status_hex(const char *status, const char *key)
{
	const char *l = strstr(status, key);
	return l ? strtoull(l + strlen(key), NULL, 16) : 0;
}

/* /proc/PID/stat fields (1-based, as in proc(5)) after the comm in parentheses. */
static int parse_stat(const char *stat, struct restore_proc *p)
{
	const char *s = strrchr(stat, ')');
	if (!s)
		return -EIO;
	unsigned long long f[53] = {0};
	int field = 3;
	for (s += 2; *s && field <= 52; field++) {
		f[field] = strtoull(s, NULL, 10);
		s = strchr(s, ' ');
		if (!s)
			break;
		s++;
	}
	if (field < 51)
		return -EIO;
	p->mm[RESTORE_MM_START_CODE] = f[26];
	p->mm[RESTORE_MM_END_CODE] = f[27];
	p->mm[RESTORE_MM_START_STACK] = f[28];
	p->mm[RESTORE_MM_START_DATA] = f[45];
	p->mm[RESTORE_MM_END_DATA] = f[46];
	p->mm[RESTORE_MM_START_BRK] = f[47];
	p->mm[RESTORE_MM_ARG_START] = f[48];
	p->mm[RESTORE_MM_ARG_END] = f[49];
	p->mm[RESTORE_MM_ENV_START] = f[50];
	p->mm[RESTORE_MM_ENV_END] = f[51];
	p->nice = (int32_t)(long long)f[19];
	return 0;
}

static int read_link(pid_t pid, const char *name, char **ret)
{
	char p[64], t[IMG_MAX_PATH];
	snprintf(p, sizeof(p), "/proc/%d/%s", (int)pid, name);
	ssize_t n = readlink(p, t, sizeof(t) - 1);
	if (n < 0)
		return -errno;
	t[n] = 0;
	*ret = strdup(t);
	return *ret ? 0 : -ENOMEM;
}

static int dump_proc(pid_t pid, struct restore_proc *p)
{
	p->pid = pid;
	_cleanup_free_ char *statf = NULL, *status = NULL, *comm = NULL, *pers = NULL;
	int r = read_text(pid, 0, "stat", &statf);
	if (r == 0)
		r = parse_stat(statf, p);
	if (r == 0)
		r = read_text(pid, 0, "status", &status);
	if (r < 0)
		return r;
	const char *um = strstr(status, "\nUmask:");
	p->umask = um ? (uint32_t)strtoul(um + 7, NULL, 8) : 022;
	p->sig_ign = status_hex(status, "\nSigIgn:");
	p->sig_cgt = status_hex(status, "\nSigCgt:");
	if (read_text(pid, 0, "comm", &comm) == 0)
		copy_comm(p->comm, comm);
	if (read_text(pid, 0, "personality", &pers) == 0)
		p->personality = (uint32_t)strtoul(pers, NULL, 16);
	for (int i = 0; i < RESTORE_NRLIMIT; i++) {
		struct rlimit rl;
		if (prlimit(pid, (__rlimit_resource_t)i, NULL, &rl) < 0)
			return -errno;
		p->rlim_cur[i] = rl.rlim_cur;
		p->rlim_max[i] = rl.rlim_max;
	}
	/* The main thread's CPU affinity (nice came with stat): a pinned job stays pinned. */
	uint8_t mask[RESTORE_CPUS_MAX];
	long got = syscall(SYS_sched_getaffinity, pid, sizeof(mask), mask);
	if (got > 0) {
		p->cpus_len = (uint32_t)got;
		memcpy(p->cpus, mask, (size_t)got);
		p->flags |= RESTORE_PROC_F_SCHED;
	}
	char path[64];
	size_t len;
	snprintf(path, sizeof(path), "/proc/%d/auxv", (int)pid);
	r = ck_read_file_at(AT_FDCWD, path, IMG_MAX_AUXV, (char **)&p->auxv, &len);
	if (r < 0)
		return r;
	p->auxv_len = len & ~(size_t)15;
	r = read_link(pid, "exe", &p->exe);
	if (r == 0)
		r = read_link(pid, "cwd", &p->cwd);
	if (r < 0)
		return r;
	struct stat st;
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if (stat(path, &st) == 0)
		p->exe_ident = (struct restore_ident){
			.dev = st.st_dev,
			.ino = st.st_ino,
			.size = (uint64_t)st.st_size,
			.mtime_sec = st.st_mtim.tv_sec,
			.mtime_nsec = (uint32_t)st.st_mtim.tv_nsec,
			.mode = st.st_mode,
		};
	if (read_text(pid, 0, "timers", &p->timers) < 0 && !(p->timers = strdup("")))
		return -ENOMEM;
	r = dump_peek_siginfo(pid, true, &p->pending, &p->npending);
	if (r < 0)
		return r;
	unsigned a, b, c, d;
	__cpuid_count(0xd, 0, a, b, c, d);
	p->xsave_size = b;
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	p->xcr0 = ((uint64_t)hi << 32) | lo;
	(void)a, (void)c, (void)d;
	return 0;
}

int restore_dump(struct restore_freeze *f, int dirfd, const char *id,
		 const struct restore_dump_opts *opts, struct restore_dump_stats *ret_stats,
		 struct restore_err *err)
{
	uint64_t t0 = ck_now_ns();
	pid_t pid = f->pid; /* @f may be gone once opts->copied ran */
	struct restore_dump_stats st = {0};
	struct restore_image_writer *w = NULL;
	struct restore_image *img = calloc(1, sizeof(*img));
	if (!img)
		return -ENOMEM;
	img->pages_fd = -1;
	int r = -ENOMEM;
	img->threads = calloc(f->n, sizeof(*img->threads));
	if (!img->threads)
		goto out;
	img->nthreads = f->n;
	for (size_t i = 0; i < f->n; i++) {
		r = dump_thread(f->pid, f->tids[i], &img->threads[i]);
		if (r < 0) {
			if (err)
				snprintf(err->msg, sizeof(err->msg),
					 "cannot read thread %d of pid %d: %s", (int)f->tids[i],
					 (int)f->pid, strerror(-r));
			goto out;
		}
	}
	r = dump_proc(f->pid, &img->proc);
	if (r < 0) {
		if (err)
			snprintf(err->msg, sizeof(err->msg), "cannot read /proc/%d: %s",
				 (int)f->pid, strerror(-r));
		goto out;
	}
	if (!(opts && opts->no_inject)) {
		/* Best effort: without it the image still has /proc's SigIgn/SigCgt and no
		 * altstack; the flags tell the restorer what it got. */
		r = inject_collect(f, img);
		uint32_t fl = img->proc.flags;
		if (r < 0 && (!(fl & RESTORE_PROC_F_BRK) ||
			      (img->proc.sig_cgt && !(fl & RESTORE_PROC_F_SIGACT)))) {
			/* The restorer refuses an image without the program break, or with
			 * handlers but not their addresses: better no checkpoint than one that
			 * never restores. */
			if (err)
				snprintf(err->msg, sizeof(err->msg),
					 "cannot read the signal handlers and program break of "
					 "pid %d (syscall injection: %s)",
					 (int)f->pid, strerror(-r));
			goto out;
		}
		if (r < 0)
			ck_debug("restore: syscall injection into %d failed: %s", (int)f->pid,
				 strerror(-r));
		/* Also best effort: an image without timers is refused by the restorer when
		 * /proc showed POSIX timers. */
		r = dump_timers(f, img);
		if (r < 0)
			ck_debug("restore: timers of %d not read: %s", (int)f->pid, strerror(-r));
	}
	r = dump_timers_check(f->pid, img, err);
	if (r == 0)
		r = dump_vmas(f->pid, img, err);
	if (r == 0)
		r = dump_fds(f->pid, img, !(opts && opts->no_inject), err);
	if (r == 0 && (r = dump_mark_job_vfs(f->pid, img)) < 0 && err)
		snprintf(err->msg, sizeof(err->msg), "cannot read /proc/%d/mountinfo: %s",
			 (int)f->pid, strerror(-r));
	/* A shared mapping of a deleted file outside the job's vfs: nothing can open it again
	 * (the restorer refuses it), so no checkpoint rather than one that never restores. */
	for (size_t i = 0; r == 0 && i < img->nvmas; i++) {
		const struct restore_vma *v = &img->vmas[i];
		if (v->kind == RESTORE_VMA_FILE_SHARED && (v->flags & RESTORE_VMA_F_DELETED) &&
		    !img_vma_job_vfs(v)) {
			r = -EOPNOTSUPP;
			if (err)
				snprintf(err->msg, sizeof(err->msg),
					 "pid %d maps the deleted file %s shared (at 0x%llx): a "
					 "restore could not map it again, so it cannot be "
					 "checkpointed yet",
					 (int)f->pid, v->path, (unsigned long long)v->start);
		}
	}
	if (r == 0)
		r = dump_check_restorable(img, opts, err);
	if (r == 0)
		r = restore_image_writer_new(dirfd, id, &w);
	uint64_t t1 = ck_now_ns();
	if (r == 0)
		r = dump_pages(f->pid, img, w, opts, &st, err);
	uint64_t t2 = ck_now_ns();
	if (r == 0 && opts && opts->copied)
		opts->copied(opts->userdata); /* @f is the caller's again (maybe resumed) */
	if (r == 0)
		r = restore_image_writer_commit(w, img);
	ck_debug("restore: dump of %d: state %.3f s, pages %.3f s, commit %.3f s", (int)pid,
		 (double)(t1 - t0) / 1e9, (double)(t2 - t1) / 1e9,
		 (double)(ck_now_ns() - t2) / 1e9);
	if (r < 0) {
		if (err && !err->msg[0])
			snprintf(err->msg, sizeof(err->msg), "cannot write checkpoint %s: %s", id,
				 strerror(-r));
		goto out;
	}
	st.bytes_written = restore_image_writer_bytes(w);
	st.pages_stored = st.bytes_written / RESTORE_PAGE_SIZE;
	st.pages_zero = st.pages_scanned - st.pages_stored;
	st.nthreads = (uint32_t)img->nthreads;
	st.nvmas = (uint32_t)img->nvmas;
	st.nfds = (uint32_t)img->nfds;
	st.dump_ns = ck_now_ns() - t0;
	if (ret_stats)
		*ret_stats = st;
out:
	restore_image_writer_free(w);
	restore_image_free(img);
	return r;
}
