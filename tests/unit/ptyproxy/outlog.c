/* The output log: appends go to a ring and a flush writes only what survives the rotations;
 * the files must come out exactly as writing every byte at once would leave them, for any
 * limit, chunk sizes and flush points (also a limit above the ring, where nothing is skipped),
 * and reopening continues the current file. */
#include "../check-main.h"
#include "fixture.h"

/* Reference: NAME and NAME.1 after writing every byte, rotating when NAME reaches limit/2. */
struct ref {
	uint8_t *cur, *old;
	size_t ncur, nold, half;
};

static void ref_write(struct ref *r, const uint8_t *p, size_t n)
{
	while (n) {
		if (r->ncur == r->half) {
			uint8_t *t = r->old;
			r->old = r->cur, r->nold = r->ncur;
			r->cur = t, r->ncur = 0;
			continue;
		}
		size_t k = CK_MIN(n, r->half - r->ncur);
		memcpy(r->cur + r->ncur, p, k);
		r->ncur += k, p += k, n -= k;
	}
}

static void check_file(int dir, const char *name, const uint8_t *want, size_t n)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r = ck_read_file_at(dir, name, 64u << 20, &buf, &len);
	if (r == -ENOENT)
		len = 0;
	else
		CHECK(r == 0);
	ck_assert_msg(len == n, "%s: %zu bytes, want %zu", name, len, n);
	CHECK(!n || !memcmp(buf, want, n));
}

static void run_case(uint64_t limit, size_t total, size_t max_chunk, unsigned seed)
{
	char path[] = "/tmp/ptyoutlog.XXXXXX";
	CHECK(mkdtemp(path));
	int dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(dir >= 0);
	struct ref r = {.half = limit / 2};
	r.cur = malloc(r.half), r.old = malloc(r.half);
	uint8_t *data = malloc(max_chunk);
	srand(seed);
	struct pp_outlog l;
	CHECK(pp_outlog_open(&l, dir, "out", limit) == 0);
	for (size_t done = 0; done < total;) {
		size_t n = CK_MIN((size_t)rand() % max_chunk + 1, total - done);
		for (size_t i = 0; i < n; i++)
			data[i] = (uint8_t)(done + i) ^ (uint8_t)((done + i) >> 8);
		pp_outlog_append(&l, data, n);
		ref_write(&r, data, n);
		done += n;
		if (rand() % 8 == 0)
			pp_outlog_flush(&l);
		if (rand() % 64 == 0) { /* a new supervisor goes on with the files */
			pp_outlog_close(&l);
			CHECK(pp_outlog_open(&l, dir, "out", limit) == 0);
		}
	}
	pp_outlog_close(&l);
	check_file(dir, "out", r.cur, r.ncur);
	check_file(dir, "out.1", r.old, r.nold);
	/* out.cut exactly when bytes were dropped from the front */
	bool cut = faccessat(dir, "out.cut", F_OK, 0) == 0;
	ck_assert_msg(cut == (total > r.ncur + r.nold), "limit %llu total %zu: out.cut %d",
		      (unsigned long long)limit, total, cut);
	unlinkat(dir, "out", 0), unlinkat(dir, "out.1", 0), unlinkat(dir, "out.cut", 0);
	close(dir);
	rmdir(path);
	free(r.cur), free(r.old), free(data);
}

START_TEST(test_outlog_same_as_writing_all)
{
	run_case(2, 1000, 5, 1);
	run_case(7, 5000, 40, 2);
	run_case(64, 100000, 300, 3);
	run_case(4096, 1u << 20, 20000, 4);
	run_case(65536, 3u << 20, 140000, 5);
	run_case(5u << 20, 23u << 20, 300000, 6); /* above the ring: flushed when full */
}
END_TEST

/* A log that dropped its oldest bytes is printed from a line's start, not the middle of one
 * ("18", the tail of "4318"; found by a testing helper); one that dropped nothing, whole. */
START_TEST(test_dump_starts_at_a_line)
{
	for (int lines = 3; lines <= 500; lines += 497) {
		char path[] = "/tmp/ptyoutlog.XXXXXX";
		CHECK(mkdtemp(path));
		int dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		CHECK(dir >= 0);
		struct pp_outlog l;
		CHECK(pp_outlog_open(&l, dir, "out", 256) == 0);
		for (int i = 1; i <= lines; i++) {
			char b[32];
			int n = snprintf(b, sizeof(b), "line %d\n", i);
			pp_outlog_append(&l, (const uint8_t *)b, (size_t)n);
			pp_outlog_flush(&l);
		}
		pp_outlog_close(&l);
		int fd = openat(dir, "dump", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		CHECK(fd >= 0);
		CHECK(ptyproxy_log_dump(dir, "out", fd) == 0);
		char buf[512] = "";
		CHECK(pread(fd, buf, sizeof(buf) - 1, 0) > 0);
		close(fd);
		if (lines == 3)
			ck_assert_str_eq(buf, "line 1\nline 2\nline 3\n");
		else
			ck_assert_msg(!strncmp(buf, "line ", 5) && strstr(buf, "line 500\n"),
				      "dump: %s", buf);
		unlinkat(dir, "out", 0), unlinkat(dir, "out.1", 0), unlinkat(dir, "out.cut", 0);
		unlinkat(dir, "dump", 0);
		close(dir);
		CHECK(rmdir(path) == 0);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ptyproxy-outlog");
	TCase *tc = tcase_create("outlog");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_outlog_same_as_writing_all);
	tcase_add_test(tc, test_dump_starts_at_a_line);
	suite_add_tcase(s, tc);
	return ck_run_suite(s);
}
