/* Screen redraw: feed full-screen-program output into one model, encode a redraw, feed that
 * into a second fresh model, and compare every cell and the cursor. */
#include "../check-main.h"
#include "fixture.h"

/* Something vim-like: alternate screen, scroll region, tildes, colours of every kind,
 * attributes, wide and combining characters, a status line, cursor parked in the text. */
static void vim_like(struct ck_buf *b, int rows, int cols)
{
	char t[256];
	const char *s = "\033[?1049h\033[22;0;0t\033[?1h\033=\033[H\033[2J\033[1;23r\033[?25l";
	ck_buf_append(b, s, strlen(s));
	for (int r = 2; r < rows - 1; r++) {
		int n = snprintf(t, sizeof(t), "\033[%d;1H\033[94m~\033[0m", r);
		ck_buf_append(b, t, (size_t)n);
	}
	s = "\033[1;1H\033[38;5;130m  1 \033[0m#include <stdio.h> \033[1mbold\033[0m "
	    "\033[4munder\033[24m \033[3mital\033[23m \033[7mrev\033[27m \033[9mstrike\033[29m"
	    "\033[2;1H\033[38;5;130m  2 \033[0m\033[38;2;10;200;30mrgb\033[48;2;1;2;3mbg\033[0m "
	    "\033[42mgreenbg   \033[0m\xe4\xb8\xad\xe6\x96\x87 e\xcc\x81 \033[21mdbl\033[0m";
	ck_buf_append(b, s, strlen(s));
	int n = snprintf(t, sizeof(t), "\033[%d;1H\033[1;7m%-*s\033[0m", rows,
			 cols - 2, "main.c [+]   2,5   All");
	ck_buf_append(b, t, (size_t)n);
	s = "\033[95;103mX\033[0m\033[2;5H\033[?25h";
	ck_buf_append(b, s, strlen(s));
}

static void compare(struct pp_model *a, struct pp_model *b)
{
	struct pp_screen sa, sb;
	CHECK(pp_model_snapshot(a, &sa) == 0 && pp_model_snapshot(b, &sb) == 0);
	ck_assert_uint_eq(sa.rows, sb.rows);
	ck_assert_uint_eq(sa.cols, sb.cols);
	for (size_t i = 0; i < (size_t)sa.rows * sa.cols; i++)
		ck_assert_msg(pp_cell_equal(&sa.cells[i], &sb.cells[i]),
			      "cell %zu,%zu differs: %x/%d vs %x/%d attrs %x vs %x fg %d:%d vs %d:%d bg %d:%d vs %d:%d w %d %d", i / sa.cols,
			      i % sa.cols, sa.cells[i].ch[0], sa.cells[i].nch, sb.cells[i].ch[0], sb.cells[i].nch, sa.cells[i].attrs,
			      sb.cells[i].attrs, sa.cells[i].fg.kind, sa.cells[i].fg.v[0], sb.cells[i].fg.kind, sb.cells[i].fg.v[0], sa.cells[i].bg.kind, sa.cells[i].bg.v[0], sb.cells[i].bg.kind, sb.cells[i].bg.v[0], sa.cells[i].width, sb.cells[i].width);
	ck_assert_uint_eq(sa.crow, sb.crow);
	ck_assert_uint_eq(sa.ccol, sb.ccol);
	pp_screen_free(&sa);
	pp_screen_free(&sb);
}

static void redraw_roundtrip(const struct ck_buf *in, int rows, int cols, uint32_t *ret_modes)
{
	struct pp_model *a, *b;
	CHECK(pp_model_new((uint16_t)rows, (uint16_t)cols, &a) == 0);
	CHECK(pp_model_new((uint16_t)rows, (uint16_t)cols, &b) == 0);
	pp_model_feed(a, in->data, in->len);
	struct ptyproxy_modes m;
	ptyproxy_modes_init(&m, 0);
	ptyproxy_modes_scan(&m, in->data, in->len);
	struct pp_screen s;
	CHECK(pp_model_snapshot(a, &s) == 0);
	struct ck_buf out = {0};
	pp_screen_encode(&s, m.modes, &out);
	CHECK(!out.err);
	pp_model_feed(b, out.data, out.len);
	compare(a, b);
	CHECK(a->alt == b->alt);
	/* The redraw carries the modes. */
	struct ptyproxy_modes m2;
	ptyproxy_modes_init(&m2, 0);
	ptyproxy_modes_scan(&m2, out.data, out.len);
	ck_assert_uint_eq(m2.modes, m.modes);
	if (ret_modes)
		*ret_modes = m.modes;
	pp_screen_free(&s);
	ck_buf_free(&out);
	pp_model_free(a);
	pp_model_free(b);
}

START_TEST(test_vim_like)
{
	struct ck_buf in = {0};
	vim_like(&in, 24, 80);
	uint32_t modes;
	redraw_roundtrip(&in, 24, 80, &modes);
	CHECK(modes & PTYPROXY_MODE_ALTSCREEN);
	CHECK(modes & PTYPROXY_MODE_KEYPAD);
	CHECK(!(modes & PTYPROXY_MODE_CURSOR_HIDDEN));
	ck_buf_free(&in);
	vim_like(&in, 50, 200);
	redraw_roundtrip(&in, 50, 200, NULL);
	ck_buf_free(&in);
}
END_TEST

START_TEST(test_shell_scrolling)
{
	/* A shell that scrolled, coloured ls output, a prompt; the last column filled. */
	struct ck_buf in = {0};
	char t[300];
	for (int i = 0; i < 100; i++) {
		int n = snprintf(t, sizeof(t), "line %d \033[1;3%dmfile%d\033[0m\r\n", i, i % 8, i);
		ck_buf_append(&in, t, (size_t)n);
	}
	memset(t, '#', 80);
	ck_buf_append(&in, t, 80);
	ck_buf_append(&in, "\r\n$ echo hi", 11);
	redraw_roundtrip(&in, 24, 80, NULL);
	ck_buf_free(&in);
}
END_TEST

START_TEST(test_random_text)
{
	/* Random SGR + text + cursor moves: whatever the screen, the redraw reproduces it. */
	srand(4242);
	for (int it = 0; it < 50; it++) {
		struct ck_buf in = {0};
		char t[64];
		for (int k = 0; k < 400; k++) {
			int n = 0;
			switch (rand() % 6) {
			case 0:
				n = snprintf(t, sizeof(t), "\033[%d;%dH", rand() % 26, rand() % 82);
				break;
			case 1:
				n = snprintf(t, sizeof(t), "\033[%d;%dm", rand() % 10,
					     30 + rand() % 18);
				break;
			case 2:
				n = snprintf(t, sizeof(t), "\033[38;5;%dm\033[48;2;%d;%d;%dm",
					     rand() % 256, rand() % 256, rand() % 256, rand() % 256);
				break;
			case 3:
				n = snprintf(t, sizeof(t), "\033[%dK", rand() % 3);
				break;
			default:
				for (int i = 0; i < 10; i++)
					t[n++] = (char)(' ' + rand() % 95);
			}
			ck_buf_append(&in, t, (size_t)n);
		}
		redraw_roundtrip(&in, 24, 80, NULL);
		ck_buf_free(&in);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ptyproxy-screen");
	TCase *tc = tcase_create("screen");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_vim_like);
	tcase_add_test(tc, test_shell_scrolling);
	tcase_add_test(tc, test_random_text);
	suite_add_tcase(s, tc);
	return ck_run_suite(s);
}
