/* Mode scanner: known sequences, splits at every byte boundary, resets, apply/reset strings. */
#include "../check-main.h"
#include "fixture.h"

static const char stream[] =
	"hello\033[?1049h\033[?1;1000;1006h text \033[?2004h\033[?25l\033="
	"\033[1;31mred\033[0m\033[?1002h\033[?1004h\033[?9h\033[?9l"
	"\033]0;title with \033[?1003h inside? no: OSC ends at ESC\007"
	"\033[?1005;1015h\033[?1015l\033[>4;1m\033[?12;25h\033[?25l";

static uint32_t scan_whole(const char *s, size_t n)
{
	struct ptyproxy_modes m;
	ptyproxy_modes_init(&m, 0);
	ptyproxy_modes_scan(&m, (const uint8_t *)s, n);
	return m.modes;
}

START_TEST(test_known)
{
	uint32_t got = scan_whole(stream, sizeof(stream) - 1);
	/* The ESC inside the OSC starts a new sequence (CSI ?1003h), as a terminal would see it. */
	uint32_t want = PTYPROXY_MODE_ALTSCREEN | PTYPROXY_MODE_CURSOR_KEYS |
			PTYPROXY_MODE_MOUSE_VT200 | PTYPROXY_MODE_MOUSE_SGR | PTYPROXY_MODE_PASTE |
			PTYPROXY_MODE_CURSOR_HIDDEN | PTYPROXY_MODE_KEYPAD | PTYPROXY_MODE_MOUSE_BTN |
			PTYPROXY_MODE_FOCUS | PTYPROXY_MODE_MOUSE_ANY | PTYPROXY_MODE_MOUSE_UTF8;
	ck_assert_uint_eq(got, want);
	CHECK(scan_whole("\033[?1049h\033[?1049l", 16) == 0);
	CHECK(scan_whole("\033[?47h", 6) == PTYPROXY_MODE_ALTSCREEN);
	CHECK(scan_whole("\033[?1047h\033>", 10) == PTYPROXY_MODE_ALTSCREEN);
	CHECK(scan_whole("\033[?2004h\033c", 10) == 0);		      /* RIS */
	CHECK(scan_whole("\033[?1h\033=\033[!p", 11) == 0);	      /* DECSTR */
	CHECK(scan_whole("\033[1049h", 7) == 0);		      /* not private */
	CHECK(scan_whole("\033[?20\03004h", 10) == 0);		      /* CAN aborts */
	CHECK(scan_whole("\033[?2004\rh", 9) == PTYPROXY_MODE_PASTE); /* C0 inside CSI */
}
END_TEST

START_TEST(test_splits)
{
	size_t n = sizeof(stream) - 1;
	uint32_t want = scan_whole(stream, n);
	for (size_t i = 0; i <= n; i++)
		for (size_t j = i; j <= n; j++) {
			struct ptyproxy_modes m;
			ptyproxy_modes_init(&m, 0);
			ptyproxy_modes_scan(&m, (const uint8_t *)stream, i);
			ptyproxy_modes_scan(&m, (const uint8_t *)stream + i, j - i);
			ptyproxy_modes_scan(&m, (const uint8_t *)stream + j, n - j);
			ck_assert_uint_eq(m.modes, want);
		}
	/* Byte by byte. */
	struct ptyproxy_modes m;
	ptyproxy_modes_init(&m, 0);
	for (size_t i = 0; i < n; i++)
		ptyproxy_modes_scan(&m, (const uint8_t *)stream + i, 1);
	ck_assert_uint_eq(m.modes, want);
}
END_TEST

/* The alternate screen switch log: positions right after each switching sequence, the same
 * however the stream is split; a repeated set is no switch; the log keeps the newest 8. */
START_TEST(test_alt_log)
{
	static const char s[] = "ab\033[?1049hXY\033[?1049h\033[?47lZ\033c";
	/* switches end at 10 (on) and 26 (off); the repeated set ending at 20 is none, and so is
	 * the RIS at the end (already off) */
	for (size_t cut = 0; cut <= sizeof(s) - 1; cut++) {
		struct ptyproxy_modes m;
		ptyproxy_modes_init(&m, 0);
		ptyproxy_modes_scan(&m, (const uint8_t *)s, cut);
		ptyproxy_modes_scan(&m, (const uint8_t *)s + cut, sizeof(s) - 1 - cut);
		ck_assert_uint_eq(m.nalt, 2);
		uint64_t at;
		bool on, known;
		ck_assert(ptyproxy_modes_alt_switch(&m, 0, &at, &on) && at == 26 && !on);
		ck_assert(ptyproxy_modes_alt_switch(&m, 1, &at, &on) && at == 10 && on);
		ck_assert(!ptyproxy_modes_alt_switch(&m, 2, &at, &on));
		ck_assert(!ptyproxy_modes_alt_at(&m, 9, &known) && known);
		ck_assert(ptyproxy_modes_alt_at(&m, 10, &known) && known);
		ck_assert(ptyproxy_modes_alt_at(&m, 25, &known) && known);
		ck_assert(!ptyproxy_modes_alt_at(&m, 26, &known) && known);
	}
	struct ptyproxy_modes m;
	ptyproxy_modes_init(&m, 0);
	for (int i = 0; i < 10; i++)
		ptyproxy_modes_scan(&m, (const uint8_t *)(i % 2 ? "\033[?1049l" : "\033[?1049h"), 8);
	bool known;
	ck_assert_uint_eq(m.nalt, 10);
	ck_assert(ptyproxy_modes_alt_at(&m, 79, &known) && known);   /* the 9th: on at 72 */
	ck_assert(!ptyproxy_modes_alt_at(&m, 80, &known) && known);  /* the 10th: off at 80 */
	(void)ptyproxy_modes_alt_at(&m, 3, &known);
	ck_assert(!known); /* before the oldest kept */
}
END_TEST

START_TEST(test_apply_reset)
{
	char buf[512];
	for (uint32_t modes = 0; modes < (1u << 13); modes += 37) {
		size_t n = ptyproxy_modes_apply_seq(modes, buf, sizeof(buf));
		ck_assert_uint_eq(scan_whole(buf, n), modes);
		struct ptyproxy_modes m;
		ptyproxy_modes_init(&m, modes);
		n = ptyproxy_modes_reset_seq(modes, buf, sizeof(buf));
		ptyproxy_modes_scan(&m, (const uint8_t *)buf, n);
		ck_assert_uint_eq(m.modes, 0);
	}
	/* Nothing set: only SGR 0 and show cursor (no ?1049l, which would move the cursor). */
	size_t n = ptyproxy_modes_reset_seq(0, buf, sizeof(buf));
	CHECK(n == strlen("\033[0m\033[?25h") && !memcmp(buf, "\033[0m\033[?25h", n));
	CHECK(ptyproxy_modes_apply_seq(0xffff, buf, 8) == 0); /* too small: nothing */
}
END_TEST

START_TEST(test_random_equivalence)
{
	/* Random streams of sequence pieces: chunked scanning equals whole scanning. */
	static const char *pieces[] = {"\033[?", "1049", "1000", ";", "h", "l", "\033", "=",
				       ">", "x", "\033[", "2004", "25", "\r", "?", "!p", "c"};
	srand(99);
	char s[400];
	for (int it = 0; it < 2000; it++) {
		size_t n = 0;
		while (n < sizeof(s) - 8) {
			const char *p = pieces[rand() % CK_ARRAY_SIZE(pieces)];
			memcpy(s + n, p, strlen(p));
			n += strlen(p);
		}
		uint32_t want = scan_whole(s, n);
		struct ptyproxy_modes m;
		ptyproxy_modes_init(&m, 0);
		for (size_t off = 0; off < n;) {
			size_t k = CK_MIN(n - off, (size_t)(rand() % 7));
			ptyproxy_modes_scan(&m, (const uint8_t *)s + off, k);
			off += k;
		}
		ck_assert_uint_eq(m.modes, want);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ptyproxy-modes");
	TCase *tc = tcase_create("modes");
	tcase_add_test(tc, test_known);
	tcase_add_test(tc, test_splits);
	tcase_add_test(tc, test_apply_reset);
	tcase_add_test(tc, test_alt_log);
	tcase_add_test(tc, test_random_equivalence);
	suite_add_tcase(s, tc);
	return ck_run_suite(s);
}
