/* Live tests: a real shell on the slave; input through the API, output back, resize seen by
 * the child (stty size), job exit status, held input, read-only clients, pipe mode byte-exact,
 * the bounded output log. */
#include "../check-main.h"
#include <sys/ioctl.h>

#include "fixture.h"

static int reap(struct fx *f, pid_t pid)
{
	int st;
	if (FX_PUMP_UNTIL(f, waitpid(pid, &st, WNOHANG) == pid))
		return st;
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

static struct ptyproxy_info info_of(struct fx *f)
{
	struct ptyproxy_info info;
	ptyproxy_get_info(f->p, &info);
	return info;
}

/* The job's first bytes (a DA query, 3 bytes) reached the model while no client was attached:
 * the model answered it. Before that, a client attaching would leave the query unanswered. */
static bool da_answered(struct fx *f)
{
	struct ptyproxy_info info = info_of(f);
	return info.output_bytes >= 3 && !info.model_lag;
}

/* The job stopped itself (kill -STOP $$) at a point the test waits for. */
static bool stopped(pid_t pid)
{
	int st;
	return waitpid(pid, &st, WNOHANG | WUNTRACED) == pid && WIFSTOPPED(st);
}

static void input(int c, const char *s)
{
	CHECK(ptyproxy_send_msg(c, PTYPROXY_MSG_INPUT, s, strlen(s)) == 0);
}

static void resize(int c, unsigned rows, unsigned cols)
{
	uint8_t b[8];
	struct winsize ws = {(unsigned short)rows, (unsigned short)cols, 0, 0};
	ptyproxy_winsize_pack(&ws, b);
	CHECK(ptyproxy_send_msg(c, PTYPROXY_MSG_RESIZE, b, 8) == 0);
}

START_TEST(test_shell_io_resize_exit)
{
	struct fx f;
	fx_init(&f);
	int master, slave;
	CHECK(ptyproxy_pty_open(NULL, NULL, NULL, &master, &slave) == 0);
	struct ptyproxy_config cfg = fx_config(&f);
	CHECK(ptyproxy_new(&cfg, master, NULL, &f.p) == 0);
	pid_t pid = fx_spawn(slave, "PS1='$ ' exec sh -i");
	int c = fx_client(&f, 0, 33, 101);
	struct fx_rx *rx = calloc(1, sizeof(*rx));
	/* An empty INPUT first, while the input queue has no buffer yet, is nothing (it was a
	 * memcpy from NULL, which UBSan ends the supervisor for). */
	CHECK(ptyproxy_send_msg(c, PTYPROXY_MSG_INPUT, NULL, 0) == 0);
	/* The size follows the attached client. */
	input(c, "stty size; echo job-$((40+2))\n");
	CHECK(fx_wait_for(&f, c, rx, "job-42", FX_PATIENCE_MS));
	CHECK(fx_rx_has(rx, "33 101"));
	resize(c, 40, 120);
	input(c, "stty size\n");
	CHECK(fx_wait_for(&f, c, rx, "40 120", FX_PATIENCE_MS));
	/* A read-only client does not type and does not set the size; a second writer does. */
	int ro = fx_client(&f, PTYPROXY_HELLO_READ_ONLY, 10, 10);
	input(ro, "echo from-ro\n");
	int w2 = fx_client(&f, 0, 20, 60);
	input(w2, "stty size; echo done-$((1+1))\n");
	CHECK(fx_wait_for(&f, c, rx, "done-2", FX_PATIENCE_MS));
	CHECK(fx_rx_has(rx, "20 60"));
	CHECK(!fx_rx_has(rx, "from-ro"));
	struct ptyproxy_info info;
	ptyproxy_get_info(f.p, &info);
	CHECK(info.clients == 3 && info.writers == 2 && info.ws.ws_row == 20);
	/* Detach of one client leaves the others. */
	CHECK(ptyproxy_send_msg(w2, PTYPROXY_MSG_DETACH, NULL, 0) == 0);
	CHECK(FX_PUMP_UNTIL(&f, info_of(&f).clients == 2));
	/* Held input is not written until released (checkpoint). */
	ptyproxy_hold_input(f.p, true);
	input(c, "echo held-$((2+3))\n");
	CHECK(!fx_wait_for(&f, c, rx, "held-5", 300));
	ptyproxy_hold_input(f.p, false);
	CHECK(fx_wait_for(&f, c, rx, "held-5", FX_PATIENCE_MS));
	/* Job exit: status delivered, then the connection closes. */
	input(c, "exit 7\n");
	int st = reap(&f, pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7);
	ptyproxy_job_exited(f.p, st);
	struct fx_rx *rrx = calloc(1, sizeof(*rrx));
	CHECK(FX_PUMP_UNTIL(&f, (fx_rx_poll(c, rx), fx_rx_poll(ro, rrx), rx->eof && rrx->eof)));
	CHECK(rx->exited && rx->wstatus == st && rx->eof);
	CHECK(rrx->exited && rrx->eof);
	ck_buf_free(&rx->out), ck_buf_free(&rrx->out);
	free(rx), free(rrx);
	close(c), close(ro), close(w2);
	fx_free(&f);
}
END_TEST

START_TEST(test_reattach_redraw_and_log)
{
	struct fx f;
	fx_init(&f);
	int master, slave, dir;
	char path[] = "/tmp/ptylog.XXXXXX";
	CHECK(mkdtemp(path));
	dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(ptyproxy_pty_open(NULL, NULL, NULL, &master, &slave) == 0);
	struct ptyproxy_config cfg = fx_config(&f);
	cfg.log_dirfd = dir;
	cfg.log_size = 64 << 10;
	cfg.ring_size = 64 << 10;
	CHECK(ptyproxy_new(&cfg, master, NULL, &f.p) == 0);
	/* No client: a DA1 query is answered by the model so the job does not hang. The job then
	 * stops itself until the flood may begin. */
	pid_t pid = fx_spawn(slave, "stty raw -echo; printf '\\033[c'; "
				     "dd bs=1 count=6 2>/dev/null | od -c | head -1; kill -STOP $$; "
				     "seq 0 19999 | sed s/^/line-/; "
				     "printf '\\033[?1049h\\033[HFULLSCREEN\\033[?2004h'; sleep 600");
	CHECK(FX_PUMP_UNTIL(&f, stopped(pid)));
	/* The flood (209 kB) into a supervisor too busy to go idle: the 64 kB ring overflows
	 * before the model sees it. Going idle between bursts, as on a loaded machine, it could
	 * keep up, and nothing would be skipped. */
	CHECK(kill(pid, SIGCONT) == 0);
	uint64_t end = ck_now_ns() + (uint64_t)FX_PATIENCE_MS * 1000000;
	while (!(info_of(&f).modes & PTYPROXY_MODE_ALTSCREEN) && ck_now_ns() < end)
		fx_pump_events(&f, 5, false);
	struct ptyproxy_info info = info_of(&f);
	CHECK(info.modes & PTYPROXY_MODE_ALTSCREEN);
	CHECK(info.model_lost > 0); /* the ring is small: the model skipped the middle */
	int c = fx_client(&f, 0, 24, 80);
	struct fx_rx *rx = calloc(1, sizeof(*rx));
	CHECK(fx_wait_for(&f, c, rx, "FULLSCREEN", FX_PATIENCE_MS));
	CHECK(rx->nredraw >= 1 && fx_rx_has(rx, "\033[?1049h") && fx_rx_has(rx, "\033[?2004h"));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	ptyproxy_job_exited(f.p, 9);
	fx_free(&f);
	/* The log: bounded, newest kept, holds the DA reply's effect (od output of ESC [ ? 1 ;). */
	struct stat a, b;
	CHECK(fstatat(dir, "output.log", &a, 0) == 0 && fstatat(dir, "output.log.1", &b, 0) == 0);
	CHECK(a.st_size + b.st_size <= 64 << 10);
	char tmpl[] = "/tmp/ptylogdump.XXXXXX";
	int out = mkstemp(tmpl);
	CHECK(ptyproxy_log_dump(dir, NULL, out) == 0);
	char *buf = malloc(70 << 10);
	ssize_t n = pread(out, buf, 70 << 10, 0);
	CHECK(n > 0 && memmem(buf, (size_t)n, "line-19999", 10) && !memmem(buf, (size_t)n, "line-5\n", 7));
	CHECK(memmem(buf, (size_t)n, "FULLSCREEN", 10));
	free(buf);
	unlink(tmpl);
	close(out), close(dir), close(c);
	ck_buf_free(&rx->out);
	free(rx);
}
END_TEST

START_TEST(test_da_reply)
{
	struct fx f;
	fx_init(&f);
	int master, slave;
	CHECK(ptyproxy_pty_open(NULL, NULL, NULL, &master, &slave) == 0);
	struct ptyproxy_config cfg = fx_config(&f);
	CHECK(ptyproxy_new(&cfg, master, NULL, &f.p) == 0);
	pid_t pid = fx_spawn(slave, "stty raw -echo; printf '\\033[c'; "
				     "dd bs=1 count=4 2>/dev/null | od -An -c; sleep 600");
	CHECK(FX_PUMP_UNTIL(&f, da_answered(&f)));
	int c = fx_client(&f, 0, 24, 80);
	struct fx_rx *rx = calloc(1, sizeof(*rx));
	CHECK(fx_wait_for(&f, c, rx, "033   [   ?   1", FX_PATIENCE_MS));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	ck_buf_free(&rx->out);
	free(rx);
	close(c);
	fx_free(&f);
}
END_TEST

/* A flood of lines: the model skips to the last screenful (cheap), and a redraw still shows the
 * screen as a terminal that saw every byte would. */
/* Loop 0: the default ring; 1: a 64 KiB one, which the flood wraps a dozen times (the master
 * is read straight into the ring: a batch ends at its end). A client attached throughout gets
 * every byte in order either way. */
START_TEST(test_flood_skips_to_last_lines)
{
	struct fx f;
	fx_init(&f);
	int master, slave;
	struct winsize ws = {24, 80, 0, 0};
	CHECK(ptyproxy_pty_open(NULL, NULL, &ws, &master, &slave) == 0);
	struct ptyproxy_config cfg = fx_config(&f);
	cfg.ring_size = _i ? 64u << 10 : 0;
	CHECK(ptyproxy_new(&cfg, master, NULL, &f.p) == 0);
	int c = fx_client(&f, PTYPROXY_HELLO_NO_REDRAW, 24, 80);
	struct fx_rx *rx = calloc(1, sizeof(*rx));
	CHECK(FX_PUMP_UNTIL(&f, info_of(&f).clients == 1)); /* attached before any output */
	pid_t pid = fx_spawn(slave, "stty raw -echo; printf '\\033[1mbold-before\\n'; "
				     "seq 1 60000 | sed 's/^/flood-/; s/$/\\r/'; printf 'last'; sleep 600");
	struct ptyproxy_info info;
	FX_PUMP_UNTIL(&f, (fx_rx_poll(c, rx), info = info_of(&f),
			   info.output_bytes == 768914 && !info.model_lag));
	ck_assert_uint_eq(info.output_bytes, 768914); /* 16 + 768894 + 4 */
	struct ck_buf want = {0};
	char line[32];
	for (int i = 1; i <= 60000; i++)
		ck_buf_append(&want, line, (size_t)snprintf(line, sizeof(line), "flood-%d\r\n", i));
	ck_buf_append(&want, "last", 4);
	CHECK(FX_PUMP_UNTIL(&f, (fx_rx_poll(c, rx), rx->out.len >= want.len)));
	CHECK(!memcmp(rx->out.data + rx->out.len - want.len, want.data, want.len));
	ck_buf_free(&want);
	ck_buf_free(&rx->out);
	free(rx);
	close(c);
	CHECK(!info.model_lag);
	CHECK(info.model_lost > 500000 && info.model_lost < info.output_bytes);
	_cleanup_free_ char *redraw = NULL;
	size_t len;
	CHECK(ptyproxy_redraw(f.p, &redraw, &len) == 0);
	/* Rows 1..23 hold flood-59978 .. flood-60000, the last row "last". */
	CHECK(memmem(redraw, len, "flood-59978", 11) && memmem(redraw, len, "flood-60000", 11));
	CHECK(!memmem(redraw, len, "flood-59977", 11));
	CHECK(memmem(redraw, len, "last", 4));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	fx_free(&f);
}
END_TEST

static void pipes_run(const char *cmd, const uint8_t *in, size_t inlen, struct fx_rx *rx,
		      int *ret_status)
{
	struct fx f;
	fx_init(&f);
	int job[3], sup[3];
	CHECK(ptyproxy_pipes_create(job, sup) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		if (ptyproxy_child_setup_pipes(job) < 0)
			_exit(126);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 3; i++)
		close(job[i]);
	struct ptyproxy_config cfg = fx_config(&f);
	CHECK(ptyproxy_new_pipes(&cfg, sup, &f.p) == 0);
	int c = fx_client(&f, PTYPROXY_HELLO_PIPES, 0, 0);
	CHECK(fcntl(c, F_SETFL, O_NONBLOCK) == 0);
	size_t off = 0;
	bool eof_sent = false;
	int st = -1;
	uint64_t end = ck_now_ns() + (uint64_t)FX_PATIENCE_MS * 1000000;
	while (!rx->exited && ck_now_ns() < end) {
		/* Feed input without blocking; the proxy applies backpressure. */
		while (off < inlen) {
			size_t k = CK_MIN(inlen - off, (size_t)PTYPROXY_MSG_MAX);
			uint8_t hdr[8];
			ptyproxy_msg_header(hdr, PTYPROXY_MSG_INPUT, (uint32_t)k);
			struct iovec iov[2] = {{hdr, 8}, {(void *)(in + off), k}};
			int sndbuf_room;
			CHECK(ioctl(c, TIOCOUTQ, &sndbuf_room) == 0);
			if (sndbuf_room > 128 << 10)
				break;
			CHECK(fcntl(c, F_SETFL, 0) == 0); /* whole messages only */
			CHECK(writev(c, iov, 2) == (ssize_t)(8 + k));
			CHECK(fcntl(c, F_SETFL, O_NONBLOCK) == 0);
			off += k;
		}
		if (off == inlen && !eof_sent) {
			CHECK(fcntl(c, F_SETFL, 0) == 0);
			CHECK(ptyproxy_send_msg(c, PTYPROXY_MSG_INPUT_EOF, NULL, 0) == 0);
			CHECK(fcntl(c, F_SETFL, O_NONBLOCK) == 0);
			eof_sent = true;
		}
		fx_pump(&f, 1);
		fx_rx_poll(c, rx);
		if (st < 0 && waitpid(pid, &st, WNOHANG) == pid)
			ptyproxy_job_exited(f.p, st);
		else if (st < 0)
			st = -1;
	}
	fx_pump(&f, 5);
	fx_rx_poll(c, rx);
	CHECK(rx->exited);
	*ret_status = rx->wstatus;
	close(c);
	fx_free(&f);
}

START_TEST(test_pipes_byte_exact)
{
	size_t len = 8 << 20;
	uint8_t *data = malloc(len);
	srand(1);
	for (size_t i = 0; i < len; i++)
		data[i] = (uint8_t)rand();
	struct fx_rx *rx = calloc(1, sizeof(*rx));
	int st;
	pipes_run("cat; echo tail-on-stderr >&2; exit 3", data, len, rx, &st);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
	ck_assert_uint_eq(rx->out.len, len);
	CHECK(!memcmp(rx->out.data, data, len));
	CHECK(rx->err.len == 15 && !memcmp(rx->err.data, "tail-on-stderr\n", 15));
	ck_buf_free(&rx->out), ck_buf_free(&rx->err);
	memset(rx, 0, sizeof(*rx));
	/* End of input reaches the job as EOF; stdout and stderr stay apart. */
	pipes_run("wc -c; echo e1 >&2; echo o1", (const uint8_t *)"abc", 3, rx, &st);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(rx->out.len == 5 && !memcmp(rx->out.data, "3\no1\n", 5));
	CHECK(rx->err.len == 3 && !memcmp(rx->err.data, "e1\n", 3));
	ck_buf_free(&rx->out), ck_buf_free(&rx->err);
	free(rx);
	free(data);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ptyproxy-live");
	TCase *tc = tcase_create("live");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_shell_io_resize_exit);
	tcase_add_test(tc, test_reattach_redraw_and_log);
	tcase_add_test(tc, test_da_reply);
	tcase_add_loop_test(tc, test_flood_skips_to_last_lines, 0, 2);
	tcase_add_test(tc, test_pipes_byte_exact);
	suite_add_tcase(s, tc);
	return ck_run_suite(s);
}
