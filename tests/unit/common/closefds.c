/* ck_close_all_but: every fd from @from up is closed but the kept ones, in any order. */
#include "../check-main.h"
#include "common/ck.h"

#include <check.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* In a child: fds 3..20 open; keep @keep (n of them) from @from; exit 0 iff exactly the
 * expected set is open. */
static int run(int from, const int *keep, size_t n)
{
	pid_t c = fork();
	ck_assert_int_ge(c, 0);
	if (c == 0) {
		for (int fd = 3; fd <= 20; fd++)
			if (dup2(0, fd) < 0)
				_exit(100);
		ck_close_all_but(from, keep, n);
		for (int fd = 0; fd <= 25; fd++) {
			bool kept = fd < from;
			for (size_t i = 0; i < n; i++)
				kept |= keep[i] == fd;
			bool open = fcntl(fd, F_GETFD) >= 0;
			if (open != (kept && fd <= 20))
				_exit(fd + 1);
		}
		_exit(0);
	}
	int st;
	ck_assert_int_eq(waitpid(c, &st, 0), c);
	ck_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

START_TEST(test_keep_sets)
{
	ck_assert_int_eq(run(3, NULL, 0), 0);
	ck_assert_int_eq(run(3, (const int[]){3}, 1), 0);
	ck_assert_int_eq(run(3, (const int[]){20}, 1), 0);
	ck_assert_int_eq(run(3, (const int[]){17, 5, 9, 5}, 4), 0);
	ck_assert_int_eq(run(0, (const int[]){12, 4}, 2), 0);
	ck_assert_int_eq(run(5, (const int[]){4, 6, -1}, 3), 0); /* below @from: open anyway */
}
END_TEST

int main(void)
{
	Suite *s = suite_create("closefds");
	TCase *tc = tcase_create("closefds");
	tcase_add_test(tc, test_keep_sets);
	suite_add_tcase(s, tc);
	return ck_run_suite(s);
}
