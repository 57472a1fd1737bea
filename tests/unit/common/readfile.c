/* ck_read_file_at: whole regular files, /proc files (st_size 0), and the @max bound. */
#include "../check-main.h"
#include "common/ck.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

static char dir[256];

static void write_n(const char *name, size_t n)
{
	char *b = malloc(n ? n : 1);
	ck_assert_ptr_nonnull(b);
	for (size_t i = 0; i < n; i++)
		b[i] = (char)('a' + i % 26);
	ck_assert_int_eq(ck_write_file_atomic(AT_FDCWD, name, b, n, 0600), 0);
	free(b);
}

START_TEST(test_regular_sizes)
{
	static const size_t sizes[] = {0, 1, 4095, 4096, 4097, 100000};
	char path[300];
	snprintf(path, sizeof(path), "%s/f", dir);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		write_n(path, sizes[k]);
		char *buf;
		size_t len;
		ck_assert_int_eq(ck_read_file_at(AT_FDCWD, path, sizes[k], &buf, &len), 0);
		ck_assert_uint_eq(len, sizes[k]);
		ck_assert_int_eq(buf[len], 0);
		for (size_t i = 0; i < len; i++)
			ck_assert_int_eq(buf[i], 'a' + (int)(i % 26));
		free(buf);
		if (sizes[k] > 0)
			ck_assert_int_eq(ck_read_file_at(AT_FDCWD, path, sizes[k] - 1, &buf, &len),
					 -EFBIG);
	}
}
END_TEST

START_TEST(test_proc_file)
{
	char *buf;
	size_t len;
	/* st_size of /proc files is 0: the content must still come back whole. */
	ck_assert_int_eq(ck_read_file_at(AT_FDCWD, "/proc/self/maps", 1 << 20, &buf, &len), 0);
	ck_assert_uint_gt(len, 0);
	ck_assert_ptr_nonnull(strstr(buf, "[stack]"));
	free(buf);
	ck_assert_int_eq(ck_read_file_at(AT_FDCWD, "/proc/self/maps", 16, &buf, &len), -EFBIG);
}
END_TEST

int main(void)
{
	const char *base = getenv("CK_TEST_TMPDIR");
	snprintf(dir, sizeof(dir), "%s/readfile.XXXXXX", base ? base : "/var/tmp");
	ck_mkdir_p(base ? base : "/var/tmp", 0755);
	if (!mkdtemp(dir))
		return EXIT_FAILURE;
	Suite *s = suite_create("readfile");
	TCase *tc = tcase_create("readfile");
	tcase_add_test(tc, test_regular_sizes);
	tcase_add_test(tc, test_proc_file);
	suite_add_tcase(s, tc);
	int failed = ck_run_suite(s);
	ck_rm_rf_at(AT_FDCWD, dir);
	return failed;
}
