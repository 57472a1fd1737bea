/* ck_grow: capacity doubles, contents survive, overflow is refused without losing the array. */
#include "../check-main.h"
#include "common/grow.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

START_TEST(test_grow_keeps_contents)
{
	int *v = NULL;
	size_t cap = 0;
	for (int i = 0; i < 1000; i++) {
		ck_assert_int_eq(CK_GROW(v, cap, (size_t)i + 1), 0);
		ck_assert_uint_ge(cap, (size_t)i + 1);
		v[i] = i;
	}
	for (int i = 0; i < 1000; i++)
		ck_assert_int_eq(v[i], i);
	ck_assert_uint_eq(cap, 1024);
	size_t before = cap;
	ck_assert_int_eq(CK_GROW(v, cap, 10), 0);
	ck_assert_uint_eq(cap, before);
	free(v);
}
END_TEST

START_TEST(test_grow_overflow)
{
	uint64_t *v = NULL;
	size_t cap = 0;
	ck_assert_int_eq(CK_GROW(v, cap, 4), 0);
	v[3] = 7;
	ck_assert_int_eq(CK_GROW(v, cap, SIZE_MAX / 4), -EOVERFLOW);
	ck_assert_uint_eq(cap, 16);
	ck_assert_uint_eq(v[3], 7);
	free(v);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("grow");
	TCase *tc = tcase_create("grow");
	tcase_add_test(tc, test_grow_keeps_contents);
	tcase_add_test(tc, test_grow_overflow);
	suite_add_tcase(s, tc);
	return ck_run_suite(s);
}
