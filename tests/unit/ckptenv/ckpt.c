/* Unit tests of the checkpoint bookkeeping: durations, the ckpt-policy file, ids and LATEST,
 * and the sweep of what a killed checkpoint leaves (ckptenv/ckpt.c, ckpt-gc.c). */
#include "../check-main.h"
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "ckptenv/ckpt-gc.h"
#include "ckptenv/ckpt.h"
#include "ckptenv/ckptenv.h"
#include "common/ck.h"

static int scratch(char *dir, size_t len)
{
	const char *base = getenv("CK_TEST_TMPDIR");
	if (base)
		ck_mkdir_p(base, 0700);
	snprintf(dir, len, "%s/ck-unit-ckpt-XXXXXX", base ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	return fd;
}

START_TEST(durations)
{
	static const struct {
		const char *s;
		uint64_t ns;
	} good[] = {{"30s", 30000000000ull},   {"10m", 600000000000ull},
		    {"2h", 7200000000000ull},  {"1d", 86400000000000ull},
		    {"45", 45000000000ull},    {"1000ms", 1000000000ull},
		    {"3min", 180000000000ull}, {"30d", 2592000000000000ull}};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint64_t ns = 0;
		ck_assert_msg(ckpt_duration_parse(good[i].s, &ns) == 0, "%s refused", good[i].s);
		ck_assert_uint_eq(ns, good[i].ns);
	}
	static const char *bad[] = {"0",
				    "500ms",
				    "10x",
				    "",
				    "-5s",
				    "31d",
				    "s",
				    "1.5s",
				    " 5s",
				    "5s ",
				    "99999999999999999999s",
				    NULL};
	for (int i = 0; bad[i]; i++) {
		uint64_t ns = 7;
		ck_assert_msg(ckpt_duration_parse(bad[i], &ns) == -EINVAL, "'%s' accepted", bad[i]);
		ck_assert_uint_eq(ns, 7); /* untouched */
	}
}
END_TEST

START_TEST(policy_file)
{
	char dir[512];
	int fd = scratch(dir, sizeof(dir));
	struct ckpt_policy p = {.every_ns = 30000000000ull,
				.keep = 3,
				.flags = CKPT_POLICY_ON_TERM,
				.log_size = 64u << 20},
			   q;
	ck_assert_int_eq(ckpt_policy_read(fd, &q), 0); /* missing: all zero */
	ck_assert_uint_eq(q.every_ns + q.keep + q.flags, 0);
	ck_assert_int_eq(ckpt_policy_write(fd, &p), 0);
	ck_assert_int_eq(ckpt_policy_read(fd, &q), 0);
	ck_assert_uint_eq(q.every_ns, p.every_ns);
	ck_assert_uint_eq(q.keep, 3);
	ck_assert_uint_eq(q.flags, CKPT_POLICY_ON_TERM);
	ck_assert_uint_eq(q.log_size, 64u << 20); /* run --log-size, for a new supervisor */
	/* Every damaged byte is refused; a newer version too, differently. */
	char *buf;
	size_t len;
	ck_assert_int_eq(ck_read_file_at(fd, CKPT_POLICY, 4096, &buf, &len), 0);
	ck_assert_uint_eq(len, 40);
	for (size_t i = 0; i < len; i++) {
		char d[40];
		memcpy(d, buf, len);
		d[i] ^= 0x40;
		ck_assert_int_eq(ck_write_file_atomic(fd, CKPT_POLICY, d, len, 0600), 0);
		int r = ckpt_policy_read(fd, &q);
		ck_assert_msg(r == (i == 4 || i == 5 ? -EPROTONOSUPPORT : -EBADMSG), "byte %zu: %d",
			      i, r);
	}
	ck_assert_int_eq(ck_write_file_atomic(fd, CKPT_POLICY, buf, 20, 0600), 0);
	ck_assert_int_eq(ckpt_policy_read(fd, &q), -EBADMSG);
	free(buf);
	/* A version 1 file (32 bytes, before the log size) still reads, with the default size. */
	uint8_t v1[32] = {0};
	ck_put_le32(v1, CKPT_POLICY_MAGIC);
	ck_put_le16(v1 + 4, 1);
	ck_put_le64(v1 + 8, 60000000000ull);
	ck_put_le32(v1 + 16, 2);
	ck_put_le64(v1 + 24, ck_checksum(v1, 24));
	ck_assert_int_eq(ck_write_file_atomic(fd, CKPT_POLICY, v1, sizeof(v1), 0600), 0);
	ck_assert_int_eq(ckpt_policy_read(fd, &q), 0);
	ck_assert(q.every_ns == 60000000000ull && q.keep == 2 && q.log_size == 0);
	/* Values `run` refuses are refused when read back (a checkpoint every 0 s, keeping all
	 * of them, filled the disk), though the checksum is right. */
	const struct ckpt_policy bad[] = {
		{.every_ns = 0, .keep = 0, .flags = 0x2},
		{.every_ns = 1, .keep = 3},
		{.every_ns = CKPT_EVERY_MIN_NS - 1, .keep = 3},
		{.every_ns = CKPT_EVERY_MAX_NS + 1, .keep = 3},
		{.every_ns = CKPT_EVERY_MIN_NS, .keep = 0},
		{.every_ns = CKPT_EVERY_MIN_NS, .keep = CKPT_KEEP_MAX + 1},
		{.log_size = LOG_SIZE_MIN - 1},
		{.log_size = LOG_SIZE_MAX + 1},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(ckpt_policy_write(fd, &bad[i]), 0);
		ck_assert_msg(ckpt_policy_read(fd, &q) == -EBADMSG, "case %zu accepted", i);
	}
	const struct ckpt_policy good[] = {
		{.every_ns = CKPT_EVERY_MIN_NS, .keep = 1},
		{.every_ns = CKPT_EVERY_MAX_NS, .keep = CKPT_KEEP_MAX},
		{.keep = 2, .flags = CKPT_POLICY_ON_TERM},
		{.flags = CKPT_POLICY_ON_TERM},
		{.log_size = LOG_SIZE_MIN},
		{.log_size = LOG_SIZE_MAX},
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ck_assert_int_eq(ckpt_policy_write(fd, &good[i]), 0);
		ck_assert_msg(ckpt_policy_read(fd, &q) == 0, "case %zu refused", i);
		ck_assert_uint_eq(q.every_ns, good[i].every_ns);
		ck_assert_uint_eq(q.keep, good[i].keep);
	}
	/* An all-zero policy removes the file. */
	ck_assert_int_eq(ckpt_policy_write(fd, &(struct ckpt_policy){0}), 0);
	ck_assert_int_eq(faccessat(fd, CKPT_POLICY, F_OK, 0), -1);
	close(fd);
	ck_rm_rf_at(AT_FDCWD, dir);
}
END_TEST

static void make_ckpt(int ckdir, uint64_t id)
{
	char n[24];
	snprintf(n, sizeof(n), "%llu", (unsigned long long)id);
	ck_assert_int_eq(mkdirat(ckdir, n, 0700), 0);
	int fd = openat(ckdir, n, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct ckpt_manifest m = {.id = id, .epoch = 10 + id};
	ck_assert_int_eq(ckpt_manifest_write(fd, &m), 0);
	close(fd);
}

START_TEST(ids_latest_sweep)
{
	char dir[512];
	int job = scratch(dir, sizeof(dir));
	int ck;
	ck_assert_int_eq(ckpt_dir_open(job, true, &ck), 0);
	ck_assert_uint_eq(ckpt_next_id(ck), 1);
	uint64_t id;
	ck_assert_int_eq(ckpt_latest(ck, &id), -ENOENT);
	make_ckpt(ck, 1);
	make_ckpt(ck, 3);
	ck_assert_int_eq(mkdirat(ck, ".5.tmp", 0700), 0); /* a killed checkpoint */
	ck_assert_int_eq(mkdirat(ck, ".2.del", 0700), 0); /* a killed drop */
	ck_assert_int_eq(mkdirat(ck, "4", 0700), 0);	  /* no manifest: not a checkpoint */
	ck_assert_int_eq(mkdirat(ck, ".x.tmp", 0700), 0); /* not ours: left alone */
	ck_assert_int_eq(ck_write_file_atomic(ck, "LATEST.tmp.1234", "9\n", 2, 0600), 0);
	ck_assert_uint_eq(ckpt_next_id(ck), 6); /* temporary ones count */
	uint64_t *ids;
	size_t n;
	ck_assert_int_eq(ckpt_list(ck, &ids, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(ids[0], 1);
	ck_assert_uint_eq(ids[1], 3);
	free(ids);
	/* LATEST naming a checkpoint that is gone (dropped): the highest complete one is used,
	 * and its id is never given again. */
	ck_assert_int_eq(ckpt_latest_write(ck, 9), 0);
	ck_assert_int_eq(ckpt_latest(ck, &id), 0);
	ck_assert_uint_eq(id, 3);
	ck_assert_uint_eq(ckpt_next_id(ck), 10);
	/* The sweep (no store here: only the directories) removes what a kill left. */
	struct ckpt_sweep_stats st;
	char store[600];
	snprintf(store, sizeof(store), "%s/no-store", dir);
	ck_assert_int_eq(ckpt_sweep(ck, NULL, store, &st), 0);
	ck_assert_uint_eq(st.dirs, 3);
	ck_assert_int_eq(faccessat(ck, ".5.tmp", F_OK, 0), -1);
	ck_assert_int_eq(faccessat(ck, ".2.del", F_OK, 0), -1);
	ck_assert_int_eq(faccessat(ck, "LATEST.tmp.1234", F_OK, 0), -1);
	ck_assert_int_eq(faccessat(ck, ".x.tmp", F_OK, 0), 0);
	ck_assert_int_eq(faccessat(ck, "1", F_OK, 0), 0);
	ck_assert_int_eq(faccessat(ck, "3", F_OK, 0), 0);
	/* A second listing of the same fd still sees everything (scans rewind the shared
	 * offset of dup'd directory fds). */
	ck_assert_int_eq(ckpt_list(ck, &ids, &n), 0);
	ck_assert_uint_eq(n, 2);
	free(ids);
	close(ck);
	close(job);
	ck_rm_rf_at(AT_FDCWD, dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ckptenv-ckpt");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, durations);
	tcase_add_test(tc, policy_file);
	tcase_add_test(tc, ids_latest_sweep);
	suite_add_tcase(s, tc);
	return ck_run_suite(s);
}
