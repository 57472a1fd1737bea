/* CK_MIN / CK_MAX evaluate each argument once (a second rand() once made a chunk longer than
 * what was left), nest without shadowing, and keep C's usual conversions. */
#include "../check-main.h"
#include "common/ck.h"

#include <check.h>
#include <stdint.h>

START_TEST(test_once)
{
	int calls = 0, i = 5;
	ck_assert_int_eq(CK_MIN(++calls, 10), 1);
	ck_assert_int_eq(CK_MAX(++calls, -1), 2);
	ck_assert_int_eq(calls, 2);
	/* the side effect of the larger argument happens once, and its old value is returned */
	ck_assert_int_eq(CK_MAX(i++, 0), 5);
	ck_assert_int_eq(i, 6);
}
END_TEST

START_TEST(test_nested_and_types)
{
	ck_assert_int_eq(CK_MIN(CK_MAX(3, 7), CK_MIN(9, CK_MAX(8, 4))), 7);
	size_t left = 2;
	ck_assert_uint_eq(CK_MIN(left, (size_t)6), 2);
	uint64_t big = 1ull << 40;
	ck_assert_uint_eq(CK_MAX((uint32_t)1, big), big); /* the wider type wins, as with ?: */
	ck_assert_int_eq(CK_MIN(-1, 0), -1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("minmax");
	TCase *tc = tcase_create("minmax");
	tcase_add_test(tc, test_once);
	tcase_add_test(tc, test_nested_and_types);
	suite_add_tcase(s, tc);
	return ck_run_suite(s);
}
