/* Saved state: save from a live proxy, load, seed a new proxy on a new pty with the saved
 * termios and size, and check its first redraw shows the saved screen; corruption -> -EBADMSG. */
#include "../check-main.h"
#include <sys/ioctl.h>

#include "fixture.h"

static int tmpdir(void)
{
	const char *base = getenv("CK_TEST_TMPDIR");
	char path[512];
	snprintf(path, sizeof(path), "%s/ptystate.XXXXXX", base ? base : "/tmp");
	if (base)
		mkdir(base, 0755);
	CHECK(mkdtemp(path));
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0);
	return fd;
}

/* Screen of a redraw, as a model fed with it sees it. */
static void screen_of(const char *redraw, size_t len, uint16_t rows, uint16_t cols,
		      struct pp_screen *ret)
{
	struct pp_model *m;
	CHECK(pp_model_new(rows, cols, &m) == 0);
	pp_model_feed(m, (const uint8_t *)redraw, len);
	CHECK(pp_model_snapshot(m, ret) == 0);
	pp_model_free(m);
}

static const char content[] = "\033[?1049h\033[H\033[2Jtop \033[1;32mgreen\033[0m\r\n"
			      "\033[5;10H\033[7mrev\033[0m \xe4\xb8\xad\033[?2004h\033[?1000h"
			      "\033[?1006h\033[3;4H";

START_TEST(test_save_load_seed)
{
	struct fx f;
	fx_init(&f);
	int master, slave;
	struct winsize ws = {30, 100, 0, 0};
	CHECK(ptyproxy_pty_open(NULL, NULL, &ws, &master, &slave) == 0);
	/* The job sets its terminal raw: the master reports it. */
	struct termios raw;
	CHECK(tcgetattr(slave, &raw) == 0);
	cfmakeraw(&raw);
	CHECK(tcsetattr(slave, TCSANOW, &raw) == 0);
	struct ptyproxy_config cfg = fx_config(&f);
	CHECK(ptyproxy_new(&cfg, master, NULL, &f.p) == 0);
	CHECK(write(slave, content, sizeof(content) - 1) == (ssize_t)sizeof(content) - 1);
	fx_pump(&f, 30);
	CHECK(ptyproxy_catch_up(f.p) == 0);
	_cleanup_free_ char *r1 = NULL;
	size_t l1;
	CHECK(ptyproxy_redraw(f.p, &r1, &l1) == 0);
	int dir = tmpdir();
	CHECK(ptyproxy_state_save(f.p, dir) == 0);
	fx_free(&f);
	close(slave);

	struct ptyproxy_state *st;
	CHECK(ptyproxy_state_load(dir, &st) == 0);
	const struct winsize *sws = ptyproxy_state_winsize(st);
	CHECK(sws->ws_row == 30 && sws->ws_col == 100);
	CHECK(!(ptyproxy_state_termios(st)->c_lflag & (ICANON | ECHO)));
	uint32_t modes = ptyproxy_state_modes(st);
	CHECK(modes == (PTYPROXY_MODE_ALTSCREEN | PTYPROXY_MODE_PASTE | PTYPROXY_MODE_MOUSE_VT200 |
			PTYPROXY_MODE_MOUSE_SGR));

	/* "After a reboot": a new pty with the saved termios and size, seeded model. */
	struct fx g;
	fx_init(&g);
	CHECK(ptyproxy_pty_open(NULL, ptyproxy_state_termios(st), sws, &master, &slave) == 0);
	struct termios now;
	CHECK(tcgetattr(slave, &now) == 0 && !(now.c_lflag & (ICANON | ECHO)));
	cfg = fx_config(&g);
	CHECK(ptyproxy_new(&cfg, master, st, &g.p) == 0);
	ptyproxy_state_free(st);
	struct ptyproxy_info info;
	ptyproxy_get_info(g.p, &info);
	CHECK(info.modes == modes);
	_cleanup_free_ char *r2 = NULL;
	size_t l2;
	CHECK(ptyproxy_redraw(g.p, &r2, &l2) == 0);
	struct pp_screen s1, s2;
	screen_of(r1, l1, 30, 100, &s1);
	screen_of(r2, l2, 30, 100, &s2);
	for (size_t i = 0; i < 30 * 100; i++)
		CHECK(pp_cell_equal(&s1.cells[i], &s2.cells[i]));
	CHECK(s1.crow == 2 && s1.ccol == 3 && s2.crow == 2 && s2.ccol == 3);
	pp_screen_free(&s1), pp_screen_free(&s2);

	/* A client attaching now gets that screen. */
	int c = fx_client(&g, 0, 30, 100);
	struct fx_rx *rx = calloc(1, sizeof(*rx));
	CHECK(fx_wait_for(&g, c, rx, "green", FX_PATIENCE_MS));
	CHECK(fx_rx_has(rx, "\033[?1049h") && fx_rx_has(rx, "\033[?2004h"));
	ck_buf_free(&rx->out);
	free(rx);
	close(c), close(slave), close(dir);
	fx_free(&g);
}
END_TEST

/* The size saved is the pty's: a job that set its own (`stty cols 50 rows 20`) after the last
 * client did gets it back, not the client's. */
START_TEST(test_save_job_size)
{
	struct fx f;
	fx_init(&f);
	int master, slave;
	struct winsize ws = {30, 100, 0, 0}, mine = {20, 50, 0, 0};
	CHECK(ptyproxy_pty_open(NULL, NULL, &ws, &master, &slave) == 0);
	struct ptyproxy_config cfg = fx_config(&f);
	CHECK(ptyproxy_new(&cfg, master, NULL, &f.p) == 0);
	CHECK(ioctl(slave, TIOCSWINSZ, &mine) == 0);
	int dir = tmpdir();
	CHECK(ptyproxy_state_save(f.p, dir) == 0);
	fx_free(&f);
	close(slave);
	struct ptyproxy_state *st;
	CHECK(ptyproxy_state_load(dir, &st) == 0);
	const struct winsize *sws = ptyproxy_state_winsize(st);
	CHECK(sws->ws_row == 20 && sws->ws_col == 50);
	ptyproxy_state_free(st);
	close(dir);
}
END_TEST

START_TEST(test_corruption)
{
	struct ptyproxy_state s = {.modes = PTYPROXY_MODE_PASTE, .ws = {2, 3, 0, 0}};
	s.screen = (struct pp_screen){.rows = 2, .cols = 3, .crow = 1, .ccol = 2};
	struct pp_cell cells[6] = {{.ch = {'a'}, .nch = 1, .width = 1}, {.width = 1},
				   {.ch = {0x4e2d}, .nch = 1, .width = 2}, {.width = 1},
				   {.ch = {'e', 0x301}, .nch = 2, .width = 1, .attrs = 1},
				   {.width = 1, .fg = {2, {1, 2, 3}}}};
	s.screen.cells = cells;
	cfmakeraw(&s.tio);
	struct ck_buf b = {0};
	CHECK(pp_state_pack(&s, &b) == 0);
	struct ptyproxy_state out;
	CHECK(pp_state_unpack(b.data, b.len, &out) == 0);
	CHECK(out.modes == s.modes && out.screen.rows == 2 && out.screen.ccol == 2);
	for (int i = 0; i < 6; i++)
		CHECK(pp_cell_equal(&out.screen.cells[i], &cells[i]));
	CHECK(out.tio.c_lflag == s.tio.c_lflag && !memcmp(out.tio.c_cc, s.tio.c_cc, NCCS));
	pp_screen_free(&out.screen);
	/* Every single-bit flip and every truncation is refused. */
	for (size_t i = 0; i < b.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			b.data[i] ^= (uint8_t)(1 << bit);
			CHECK(pp_state_unpack(b.data, b.len, &out) == -EBADMSG);
			b.data[i] ^= (uint8_t)(1 << bit);
		}
		CHECK(pp_state_unpack(b.data, i, &out) == -EBADMSG);
	}
	/* A window larger than a client may set, with a valid checksum: refused (it was the
	 * restored pty's size, and libvterm's screen of 65535 x 65535 ended the supervisor). */
	struct ptyproxy_state big = s;
	big.ws = (struct winsize){65535, 65535, 0, 0};
	struct ck_buf bb = {0};
	CHECK(pp_state_pack(&big, &bb) == 0);
	CHECK(pp_state_unpack(bb.data, bb.len, &out) == -EBADMSG);
	ck_buf_free(&bb);
	big.ws = (struct winsize){0, 0, 0, 0}; /* a job's stty rows 0 cols 0: kept */
	CHECK(pp_state_pack(&big, &bb) == 0);
	CHECK(pp_state_unpack(bb.data, bb.len, &out) == 0);
	pp_screen_free(&out.screen);
	ck_buf_free(&bb);
	/* In vim: the normal screen under the alternate one goes along (version 2), and a
	 * version 1 file (no such screen, no flag byte) still reads. */
	struct ptyproxy_state alt = s;
	alt.modes |= PTYPROXY_MODE_ALTSCREEN;
	alt.have_normal = true;
	alt.normal = s.screen;
	alt.normal.crow = 0;
	CHECK(pp_state_pack(&alt, &bb) == 0);
	CHECK(pp_state_unpack(bb.data, bb.len, &out) == 0);
	CHECK(out.have_normal && out.normal.rows == 2 && out.normal.cols == 3 && !out.normal.crow);
	for (int i = 0; i < 6; i++)
		CHECK(pp_cell_equal(&out.normal.cells[i], &cells[i]));
	pp_screen_free(&out.screen);
	pp_screen_free(&out.normal);
	ck_buf_free(&bb);
	struct ck_buf v1 = {0};
	CHECK(pp_state_pack(&s, &v1) == 0);
	v1.data[4] = 1;
	v1.data[v1.len - 9] = v1.data[v1.len - 8]; /* drop the flag byte (0) before the sum */
	v1.len -= 1;
	ck_put_le64(v1.data + v1.len - 8, ck_checksum(v1.data, v1.len - 8));
	CHECK(pp_state_unpack(v1.data, v1.len, &out) == 0 && !out.have_normal);
	pp_screen_free(&out.screen);
	ck_buf_free(&v1);
	/* A file with a valid checksum but bad contents: refused by the bounds checks. */
	b.data[4] = 3; /* version */
	ck_put_le64(b.data + b.len - 8, ck_checksum(b.data, b.len - 8));
	CHECK(pp_state_unpack(b.data, b.len, &out) == -EBADMSG);
	/* Through the file API. */
	int dir = tmpdir();
	CHECK(ck_write_file_atomic(dir, PTYPROXY_STATE_FILE, b.data, b.len, 0600) == 0);
	struct ptyproxy_state *st = NULL;
	CHECK(ptyproxy_state_load(dir, &st) == -EBADMSG && !st);
	CHECK(unlinkat(dir, PTYPROXY_STATE_FILE, 0) == 0);
	CHECK(ptyproxy_state_load(dir, &st) == -ENOENT);
	close(dir);
	ck_buf_free(&b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ptyproxy-state");
	TCase *tc = tcase_create("state");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_save_load_seed);
	tcase_add_test(tc, test_save_job_size);
	tcase_add_test(tc, test_corruption);
	suite_add_tcase(s, tc);
	return ck_run_suite(s);
}
