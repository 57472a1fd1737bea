/* The end of every unit suite's main(): run @s (each test in a child process of its own,
 * Check's default; CK_FORK=no runs them in this one), print the report, and give the exit
 * status: 0 when every test passed, else 1. */
#ifndef CK_CHECK_MAIN_H
#define CK_CHECK_MAIN_H

#include <check.h>

static inline int ck_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

#endif
