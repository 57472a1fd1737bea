/* rseq critical sections across checkpoints. restore_rseq_fixup() on synthetic registers and
 * descriptors (inside, outside, at the edges, and what the kernel refuses); then zdtm-rseq, a
 * thread looping in a hand-written rseq section of 400 instructions, is checkpointed 20 times
 * while it runs: in no image is its rip inside the section, in some the dump moved it to the
 * abort handler (and cleared rseq_cs in the saved memory), and the live helper's own invariant
 * holds. The last image is restored twice (old pid when root, then another), each copy
 * checking its invariant from inside and that the section keeps committing. */
#include "fixture.h"
#include "../check-main.h"

#define SIG 0x53053053u


START_TEST(test_fixup_function)
{
	const struct restore_rseq_cs cs = {
		.start_ip = 0x401000, .post_commit_offset = 0x100, .abort_ip = 0x401200};
	uint64_t rip = 0;
	/* Inside, first and last byte: moved to abort_ip. */
	ck_assert_int_eq(restore_rseq_fixup(0x401000, &cs, SIG, SIG, &rip), 1);
	ck_assert_uint_eq(rip, 0x401200);
	rip = 0;
	ck_assert_int_eq(restore_rseq_fixup(0x4010ff, &cs, SIG, SIG, &rip), 1);
	ck_assert_uint_eq(rip, 0x401200);
	/* Outside: before, at the post-commit address (committed), far away. Untouched. */
	rip = 7;
	ck_assert_int_eq(restore_rseq_fixup(0x400fff, &cs, SIG, SIG, &rip), 0);
	ck_assert_int_eq(restore_rseq_fixup(0x401100, &cs, SIG, SIG, &rip), 0);
	ck_assert_int_eq(restore_rseq_fixup(0x7f0000001000, &cs, SIG, SIG, &rip), 0);
	ck_assert_uint_eq(rip, 7);
	/* What the kernel refuses (and then kills the thread): never moved. */
	ck_assert_int_eq(restore_rseq_fixup(0x401010, &cs, SIG ^ 1, SIG, &rip), -EINVAL);
	struct restore_rseq_cs bad = cs;
	bad.version = 1;
	ck_assert_int_eq(restore_rseq_fixup(0x401010, &bad, SIG, SIG, &rip), -EINVAL);
	bad = cs;
	bad.flags = 1; /* RSEQ_CS_FLAG_NO_RESTART_ON_PREEMPT: deprecated, refused */
	ck_assert_int_eq(restore_rseq_fixup(0x401010, &bad, SIG, SIG, &rip), -EINVAL);
	bad = cs;
	bad.abort_ip = 0x401080; /* inside the section */
	ck_assert_int_eq(restore_rseq_fixup(0x401010, &bad, SIG, SIG, &rip), -EINVAL);
	bad = cs;
	bad.post_commit_offset = ~0ull - 0x10; /* wraps */
	ck_assert_int_eq(restore_rseq_fixup(0x401010, &bad, SIG, SIG, &rip), -EINVAL);
	bad = cs;
	bad.abort_ip = 0x800000000000ull; /* beyond user space */
	ck_assert_int_eq(restore_rseq_fixup(0x401010, &bad, SIG, SIG, &rip), -EINVAL);
	ck_assert_uint_eq(rip, 7);
}
END_TEST

START_TEST(test_rseq_section)
{
	char line[256];
	int out;
	pid_t pid = fx_self_start("zdtm-rseq", NULL, line, sizeof(line), &out);
	int wtid;
	unsigned long long start, len, abort_ip;
	ck_assert_msg(sscanf(line, "ready %d %llx %llx %llx", &wtid, &start, &len, &abort_ip) == 4,
		      "helper said: %s", line);
	int moved = 0;
	char id[16] = "";
	for (int k = 0; k < 20; k++) {
		snprintf(id, sizeof(id), "%d", k);
		struct restore_freeze *f = NULL;
		struct restore_err err = {0};
		ck_assert_msg(restore_freeze(pid, &f, &err) == 0, "freeze: %s", err.msg);
		int r = restore_dump(f, fx_dirfd, id, NULL, NULL, &err);
		restore_freeze_resume(f);
		ck_assert_msg(r == 0, "dump %d: %d %s", k, r, err.msg);
		struct restore_image *img = NULL;
		ck_assert_int_eq(restore_image_load(fx_dirfd, id, &img, &err), 0);
		const struct restore_thread *t = NULL;
		for (size_t i = 0; i < img->nthreads; i++)
			if (img->threads[i].tid == wtid)
				t = &img->threads[i];
		ck_assert_msg(t && (t->flags & RESTORE_THREAD_F_RSEQ) && t->rseq_ptr,
			      "worker %d or its rseq is not in image %d", wtid, k);
		uint64_t rip = t->regs.rip;
		ck_assert_msg(rip - start >= len, "image %d: rip 0x%llx inside the section", k,
			      (unsigned long long)rip);
		if (rip == abort_ip) {
			/* The saved rseq area says no section is running. */
			uint8_t page[RESTORE_PAGE_SIZE];
			uint64_t at = t->rseq_ptr + 8;
			ck_assert_int_eq(restore_image_read_page(img, at & ~4095ull, page), 1);
			ck_assert_uint_eq(ck_get_le64(page + (at & 4095)), 0);
			moved++;
		}
		restore_image_free(img);
		if (k > 0) { /* keep the last two */
			char old[16];
			snprintf(old, sizeof(old), "%d", k - 2);
			ck_rm_rf_at(fx_dirfd, old);
		}
	}
	ck_assert_msg(moved > 0, "no freeze out of 20 landed in the section");
	/* The live helper went on through 20 moves to its abort handler. */
	kill(pid, SIGUSR2);
	struct zdtm z = {.pid = pid, .report = out, .cmd = -1};
	fx_line(&z, line, sizeof(line));
	ck_assert_msg(!strcmp(line, "ok\n"), "live helper said '%s' after %d moves", line, moved);
	int st = 0;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	close(out);

	fx_self_restore(fx_dirfd, id, geteuid() == 0 ? pid : 0, "zdtm-rseq\n");
	fx_self_restore(fx_dirfd, id, 0, "zdtm-rseq\n");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("restore-rseq");
	TCase *tc = tcase_create("rseq");
	tcase_add_checked_fixture(tc, fx_dir_setup, fx_dir_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_fixup_function);
	tcase_add_test(tc, test_rseq_section);
	suite_add_tcase(s, tc);
	return ck_run_suite(s);
}
