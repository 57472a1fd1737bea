/* Freeze and dump of the zdtm-mem helper, checked from the image: every mapping with its kind
 * and protection, page contents equal to the helper's patterns, zero and untouched pages absent,
 * every thread's registers, signal state; the helper keeps running correctly after a resume;
 * multi-process jobs are refused; the real image survives the corruption fuzz. */
#include "../check-main.h"
#include "fuzz.h"

#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/resource.h>

#define PG RESTORE_PAGE_SIZE

static struct zdtm z;

static void teardown(void)
{
	fx_stop(&z);
	fx_dir_teardown();
}

static const struct restore_vma *find_vma(const struct restore_image *img, uint64_t a)
{
	for (size_t i = 0; i < img->nvmas; i++)
		if (img->vmas[i].start <= a && a < img->vmas[i].end)
			return &img->vmas[i];
	return NULL;
}

static const struct restore_thread *find_thread(const struct restore_image *img, pid_t tid)
{
	for (size_t i = 0; i < img->nthreads; i++)
		if (img->threads[i].tid == tid)
			return &img->threads[i];
	return NULL;
}

static bool has_signo(const struct restore_siginfo *v, size_t n, int sig)
{
	for (size_t i = 0; i < n; i++)
		if ((int)ck_get_le32(v[i].raw) == sig)
			return true;
	return false;
}

static void dump_helper(const char *id, struct restore_dump_stats *st)
{
	struct restore_freeze *f = NULL;
	struct restore_err err = {0};
	ck_assert_msg(restore_freeze(z.pid, &f, &err) == 0, "freeze: %s", err.msg);
	ck_assert_uint_eq(restore_freeze_nthreads(f), 1 + ZDTM_THREADS);
	ck_assert_int_eq(restore_freeze_tid(f, 0), z.pid);
	int r = restore_dump(f, fx_dirfd, id, NULL, st, &err);
	ck_assert_int_eq(restore_freeze_resume(f), 0);
	ck_assert_msg(r == 0, "dump: %d %s", r, err.msg);
}

static void check_region_pages(const struct restore_image *img, unsigned r)
{
	uint8_t page[PG];
	for (unsigned p = 0; p < zdtm_region_pages[r]; p++) {
		int got = restore_image_read_page(img, z.region[r] + p * PG, page);
		ck_assert_int_ge(got, 0);
		ck_assert_msg(got == zdtm_expect_stored(r, p), "%s page %u: stored=%d",
			      zdtm_region_names[r], p, got);
		if (!got)
			continue;
		const uint64_t *w = (const uint64_t *)(const void *)page;
		for (unsigned i = 0; i < PG / 8; i++)
			ck_assert_msg(w[i] == zdtm_pattern(r, p, i), "%s page %u word %u",
				      zdtm_region_names[r], p, i);
	}
}

START_TEST(test_dump_contents)
{
	fx_start(&z, fx_dir, false);
	struct restore_dump_stats st;
	dump_helper("1", &st);
	ck_assert_uint_eq(st.nthreads, 1 + ZDTM_THREADS);
	ck_assert_uint_gt(st.pages_zero, 0);

	struct restore_err err = {0};
	ck_assert_msg(restore_image_verify(fx_dirfd, "1", &err) == 0, "%s", err.msg);
	struct restore_image *img = NULL;
	ck_assert_int_eq(restore_image_load(fx_dirfd, "1", &img, &err), 0);
	char latest[32];
	ck_assert_int_eq(restore_image_latest(fx_dirfd, latest, sizeof(latest)), 0);
	ck_assert_str_eq(latest, "1");

	/* Mappings: kind and protection of each region. */
	const struct {
		uint32_t kind, prot;
	} want[ZR_N] = {
		[ZR_ANON] = {RESTORE_VMA_ANON_PRIVATE, PROT_READ | PROT_WRITE},
		[ZR_FILEPRIV] = {RESTORE_VMA_FILE_PRIVATE, PROT_READ | PROT_WRITE},
		[ZR_SHARED] = {RESTORE_VMA_ANON_SHARED, PROT_READ | PROT_WRITE},
		[ZR_MEMFD] = {RESTORE_VMA_MEMFD, PROT_READ | PROT_WRITE},
		[ZR_RO] = {RESTORE_VMA_ANON_PRIVATE, PROT_READ},
		[ZR_NONE] = {RESTORE_VMA_ANON_PRIVATE, 0},
		[ZR_FILESHARED] = {RESTORE_VMA_FILE_SHARED, PROT_READ | PROT_WRITE},
	};
	for (unsigned r = 0; r < ZR_N; r++) {
		const struct restore_vma *v = find_vma(img, z.region[r]);
		ck_assert_msg(v != NULL, "region %s missing", zdtm_region_names[r]);
		ck_assert_msg(v->end >= z.region[r] + zdtm_region_pages[r] * PG, "%s cut",
			      zdtm_region_names[r]);
		ck_assert_msg(v->kind == want[r].kind, "%s is %s", zdtm_region_names[r],
			      restore_vma_kind_name(v->kind));
		ck_assert_uint_eq(v->prot, want[r].prot);
		check_region_pages(img, r);
	}
	const struct restore_vma *fs = find_vma(img, z.region[ZR_FILESHARED]);
	ck_assert(fs->flags & RESTORE_VMA_F_HAS_IDENT);
	ck_assert_uint_eq(fs->ident.size, zdtm_region_pages[ZR_FILESHARED] * PG);
	ck_assert_uint_eq(fs->ident.ino, fs->inode);
	bool vdso = false, stack = false;
	for (size_t i = 0; i < img->nvmas; i++) {
		vdso |= img->vmas[i].kind == RESTORE_VMA_VDSO;
		stack |= img->vmas[i].kind == RESTORE_VMA_STACK;
		if (img->vmas[i].kind == RESTORE_VMA_STACK)
			ck_assert(img->vmas[i].flags & RESTORE_VMA_F_GROWSDOWN);
	}
	ck_assert(vdso && stack);

	/* Threads: leader first, every helper thread with its known registers. */
	ck_assert_uint_eq(img->nthreads, 1 + ZDTM_THREADS);
	ck_assert_int_eq(img->threads[0].tid, z.pid);
	bool avx512 = (img->proc.xcr0 & 0xe0) == 0xe0;
	for (int i = 0; i < ZDTM_THREADS; i++) {
		const struct restore_thread *t = find_thread(img, z.tid[i]);
		ck_assert_msg(t != NULL, "thread %d missing", z.tid[i]);
		uint64_t m = ZDTM_REG_MAGIC(i);
		ck_assert_uint_eq(t->regs.r12, m);
		ck_assert_uint_eq(t->regs.r15, m + 3);
		ck_assert_uint_eq(t->regs.orig_rax, 34);
		ck_assert_uint_ne(t->regs.fs_base, 0);
		ck_assert_uint_ge(t->xsave_len, 576);
		ck_assert_uint_eq(ck_get_le64(t->xsave + 160), m); /* xmm0, legacy area */
		ck_assert_uint_eq(t->xcr0, img->proc.xcr0);
		/* The standard-format size CPUID reports for XCR0 (2432 on this AMD EPYC: no
		 * MPX gap, so the AVX-512 offsets are not Intel's): size offsets from CPUID. */
		ck_assert_uint_eq(t->xsave_len, img->proc.xsave_size);
		if (avx512) /* XSTATE_BV of the header: AVX-512 state components present */
			ck_assert_uint_ge(t->xsave_len, 832 + 64 + 512 + 1024);
		ck_assert(t->sigmask & (1ull << (SIGUSR2 - 1)));
		ck_assert(t->flags & RESTORE_THREAD_F_INJECTED);
		ck_assert_uint_ne(t->clear_child_tid, 0);
		ck_assert(t->flags & RESTORE_THREAD_F_RSEQ);
		ck_assert_uint_ne(t->rseq_ptr, 0);
		ck_assert_uint_ne(t->robust_head, 0);
	}
	ck_assert(has_signo(find_thread(img, z.tid[0])->pending,
			    find_thread(img, z.tid[0])->npending, SIGUSR2));

	/* Process-wide signal state, mm, fds. */
	const struct restore_proc *p = &img->proc;
	ck_assert(p->flags & RESTORE_PROC_F_SIGACT);
	ck_assert_uint_eq(p->sigact[SIGUSR1 - 1].handler, z.handler);
	ck_assert(p->sigact[SIGUSR1 - 1].flags & SA_ONSTACK);
	ck_assert(p->sigact[SIGUSR1 - 1].flags & 0x04000000); /* SA_RESTORER */
	ck_assert_uint_ne(p->sigact[SIGUSR1 - 1].restorer, 0);
	ck_assert(p->sig_cgt & (1ull << (SIGUSR1 - 1)));
	ck_assert(has_signo(p->pending, p->npending, SIGUSR2));
	ck_assert_uint_eq(img->threads[0].altstack_sp, z.altstack);
	ck_assert_uint_eq(img->threads[0].altstack_size, z.altstack_size);
	ck_assert(p->flags & RESTORE_PROC_F_BRK);
	ck_assert_uint_ge(p->mm[RESTORE_MM_BRK], p->mm[RESTORE_MM_START_BRK]);
	ck_assert_uint_ne(p->mm[RESTORE_MM_START_CODE], 0);
	ck_assert_uint_ne(p->mm[RESTORE_MM_ENV_END], 0);
	ck_assert_uint_gt(p->auxv_len, 0);
	ck_assert_ptr_nonnull(strstr(p->exe, "zdtm-mem"));
	ck_assert_uint_eq(p->exe_ident.mode & S_IFMT, S_IFREG);
	ck_assert_str_eq(p->comm, "zdtm-mem");
	ck_assert_uint_ne(p->rlim_max[RLIMIT_NOFILE], 0);
	size_t pipes = 0;
	for (size_t i = 0; i < img->nfds; i++)
		pipes += img->fds[i].kind == RESTORE_FD_PIPE;
	ck_assert_uint_ge(pipes, 2);
	restore_image_free(img);

	/* The helper was resumed and is intact: memory, threads, registers. */
	char line[128];
	fx_verify(&z, line, sizeof(line));
	ck_assert_str_eq(line, "ok\n");
}
END_TEST

START_TEST(test_freeze_resume)
{
	fx_start(&z, fx_dir, false);
	for (int round = 0; round < 3; round++) {
		struct restore_freeze *f = NULL;
		ck_assert_int_eq(restore_freeze(z.pid, &f, NULL), 0);
		ck_assert_uint_eq(restore_freeze_nthreads(f), 1 + ZDTM_THREADS);
		ck_assert_int_eq(restore_freeze_resume(f), 0);
		char line[128];
		fx_verify(&z, line, sizeof(line));
		ck_assert_str_eq(line, "ok\n");
	}
}
END_TEST

static char proc_state(pid_t pid)
{
	char p[64], buf[512];
	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(p, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
	fclose(f);
	return strrchr(buf, ')')[2];
}

START_TEST(test_leave_stopped)
{
	fx_start(&z, fx_dir, false);
	struct restore_freeze *f = NULL;
	ck_assert_int_eq(restore_freeze(z.pid, &f, NULL), 0);
	ck_assert_int_eq(restore_freeze_leave_stopped(f), 0);
	for (int i = 0; proc_state(z.pid) != 'T'; i++) {
		ck_assert_msg(i < 2000, "helper not stopped");
		usleep(1000);
	}
	kill(z.pid, SIGCONT);
	char line[128];
	fx_verify(&z, line, sizeof(line));
	ck_assert_str_eq(line, "ok\n");
}
END_TEST

START_TEST(test_multiprocess_refused)
{
	fx_start(&z, fx_dir, true);
	struct restore_freeze *f = NULL;
	struct restore_err err = {0};
	ck_assert_int_eq(restore_freeze(z.pid, &f, &err), -EUSERS);
	ck_assert_ptr_null(f);
	ck_assert_int_eq(err.nprocs, 2);
	ck_assert_str_eq(err.msg,
			 "job has 2 processes; only single-process jobs can be checkpointed yet");
	/* Nothing stays attached: the helper still answers. */
	char line[128];
	fx_verify(&z, line, sizeof(line));
	ck_assert_str_eq(line, "ok\n");
}
END_TEST

START_TEST(test_fuzz_real_image)
{
	fx_start(&z, fx_dir, false);
	dump_helper("good", NULL);
	fz_run(fx_dirfd, "good", 150, 0xfeedface);
	fz_structural(fx_dirfd, "good", 300, 0xc0ffee);
}
END_TEST

START_TEST(test_dump_no_inject)
{
	fx_start(&z, fx_dir, false);
	struct restore_freeze *f = NULL;
	struct restore_err err = {0};
	ck_assert_int_eq(restore_freeze(z.pid, &f, &err), 0);
	struct restore_dump_opts o = {.no_inject = true};
	ck_assert_int_eq(restore_dump(f, fx_dirfd, "2", &o, NULL, &err), 0);
	ck_assert_int_eq(restore_dump(f, fx_dirfd, "2", &o, NULL, &err), -EEXIST);
	ck_assert_int_eq(restore_freeze_resume(f), 0);
	struct restore_image *img = NULL;
	ck_assert_int_eq(restore_image_load(fx_dirfd, "2", &img, &err), 0);
	ck_assert(!(img->proc.flags & RESTORE_PROC_F_SIGACT));
	ck_assert(!(img->threads[0].flags & RESTORE_THREAD_F_INJECTED));
	restore_image_free(img);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("restore-dump");
	TCase *tc = tcase_create("dump");
	tcase_add_checked_fixture(tc, fx_dir_setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_dump_contents);
	tcase_add_test(tc, test_freeze_resume);
	tcase_add_test(tc, test_leave_stopped);
	tcase_add_test(tc, test_multiprocess_refused);
	tcase_add_test(tc, test_fuzz_real_image);
	tcase_add_test(tc, test_dump_no_inject);
	suite_add_tcase(s, tc);
	return ck_run_suite(s);
}
