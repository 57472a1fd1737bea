/* Direct clients (HELLO_TTY_FD): the client hands the server its terminal with SCM_RIGHTS, the
 * server writes the output to it and reads keystrokes from it, cuts the detach key out, tells
 * the client the modes to reset (MODES) and lets go of the terminal before DETACH or EXITED.
 * Bad hand-overs (no fd, not a terminal, an fd without the flag or later on) close that client
 * only. A pipe job declines the terminal (the client relays). */
#include "../check-main.h"
#include <pty.h>
#include <sys/ioctl.h>

#include "fixture.h"

struct drx {
	uint8_t buf[1 << 18];
	int term;	/* >= 0: write OUTPUT/REDRAW payloads here and answer SYNC, as the client does */
	size_t relayed; /* OUTPUT bytes */
	struct ck_buf pend; /* for term, not written yet (it is nonblocking: we also read it) */
	size_t pend_off;
	size_t len;
	uint32_t welcome, modes;
	int nwelcome, nmodes, detach, exited, eof, noutput;
	bool synced; /* answered a SYNC, and no OUTPUT came after it */
	int wstatus;
};

/* Write what waits for the terminal; false while some is left. */
static bool drx_flush(struct drx *rx)
{
	while (rx->pend_off < rx->pend.len) {
		ssize_t n = write(rx->term, rx->pend.data + rx->pend_off, rx->pend.len - rx->pend_off);
		if (n < 0 && errno == EAGAIN)
			return false;
		CHECK(n > 0);
		rx->pend_off += (size_t)n;
	}
	rx->pend.len = rx->pend_off = 0;
	return true;
}

/* Take the messages in rx->buf; false when stopped at a SYNC that has to wait for the terminal. */
static bool drx_parse(int fd, struct drx *rx)
{
	size_t off = 0;
	bool ok = true;
	struct ptyproxy_msg m;
	ssize_t k;
	while (ok && (k = ptyproxy_msg_parse(rx->buf + off, rx->len - off, &m)) > 0) {
		switch (m.type) {
		case PTYPROXY_MSG_WELCOME:
			rx->welcome = ck_get_le32(m.payload), rx->nwelcome++;
			break;
		case PTYPROXY_MSG_MODES:
			rx->modes = ck_get_le32(m.payload), rx->nmodes++;
			break;
		case PTYPROXY_MSG_DETACH:
			rx->detach++;
			break;
		case PTYPROXY_MSG_EXITED:
			rx->exited++, rx->wstatus = (int)ck_get_le32(m.payload);
			break;
		case PTYPROXY_MSG_OUTPUT:
		case PTYPROXY_MSG_REDRAW:
			rx->noutput++;
			rx->relayed += m.len;
			rx->synced = false;
			if (rx->term >= 0)
				ck_buf_append(&rx->pend, m.payload, m.len);
			break;
		case PTYPROXY_MSG_SYNC:
			/* Answered once what came before it is written. */
			CHECK(rx->term >= 0);
			ok = drx_flush(rx);
			if (ok) {
				CHECK(ptyproxy_send_msg(fd, PTYPROXY_MSG_SYNCED, m.payload, 4) == 0);
				rx->synced = true;
			}
			break;
		}
		if (ok)
			off += (size_t)k;
	}
	CHECK(!ok || k == 0);
	memmove(rx->buf, rx->buf + off, rx->len - off);
	rx->len -= off;
	return ok;
}

static void drx_poll(int fd, struct drx *rx)
{
	for (;;) {
		/* As a client stuck on its terminal: reads no more until it is written. */
		if ((rx->term >= 0 && !drx_flush(rx)) || !drx_parse(fd, rx))
			return;
		ssize_t n = recv(fd, rx->buf + rx->len, sizeof(rx->buf) - rx->len, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			rx->eof = 1;
			return;
		}
		if (n < 0)
			return;
		rx->len += (size_t)n;
	}
}

/* What the user's screen (the outer pty master) got. */
struct screen_rx {
	char buf[1 << 21];
	size_t len;
};

static bool wait_screen(struct fx *f, int um, struct screen_rx *s, const char *what, int ms)
{
	uint64_t end = ck_now_ns() + (uint64_t)ms * 1000000;
	while (ck_now_ns() < end) {
		fx_pump(f, 5);
		ssize_t n;
		while ((n = read(um, s->buf + s->len, sizeof(s->buf) - 1 - s->len)) > 0)
			s->len += (size_t)n;
		s->buf[s->len] = 0;
		if (strstr(s->buf, what))
			return true;
	}
	return false;
}

static bool wait_rx(struct fx *f, int c, struct drx *rx, const int *field, int ms)
{
	uint64_t end = ck_now_ns() + (uint64_t)ms * 1000000;
	while (ck_now_ns() < end && !*field) {
		fx_pump(f, 5);
		drx_poll(c, rx);
	}
	return *field;
}

/* A HELLO with @nfds copies of @fd attached (0: none), on a new connection. */
static int hello_with(struct fx *f, uint32_t flags, int fd, int nfds)
{
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	CHECK(ptyproxy_client_add(f->p, sv[0]) == 0);
	struct ptyproxy_hello h = {.flags = flags, .ws = {24, 80, 0, 0}, .detach_key = 0x1c};
	strcpy(h.term, "xterm");
	uint8_t pl[PTYPROXY_HELLO_MAX], b[8 + PTYPROXY_HELLO_MAX];
	size_t n = ptyproxy_hello_pack(&h, pl, sizeof(pl));
	CHECK(ptyproxy_msg_header(b, PTYPROXY_MSG_HELLO, (uint32_t)n) == 0);
	memcpy(b + 8, pl, n);
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(2 * sizeof(int))];
	} cm = {0};
	struct iovec iov = {b, 8 + n};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds) {
		int fds[2] = {fd, fd};
		mh.msg_control = cm.b;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	CHECK(sendmsg(sv[1], &mh, 0) == (ssize_t)(8 + n));
	return sv[1];
}

/* The user's terminal: an outer pty, raw as the client leaves it; *ret_tty is a new open file
 * description of its slave (what the client hands over). */
static void user_terminal2(int *ret_master, int *ret_tty, int *ret_own)
{
	int um, us;
	struct winsize ws = {24, 80, 0, 0};
	CHECK(openpty(&um, &us, NULL, NULL, &ws) == 0);
	struct termios t;
	CHECK(tcgetattr(us, &t) == 0);
	cfmakeraw(&t);
	CHECK(tcsetattr(us, TCSANOW, &t) == 0);
	CHECK(fcntl(um, F_SETFL, O_NONBLOCK) == 0);
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", us);
	*ret_tty = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	CHECK(*ret_tty >= 0);
	if (ret_own)
		*ret_own = us;
	else
		close(us);
	*ret_master = um;
}

static void user_terminal(int *ret_master, int *ret_tty)
{
	user_terminal2(ret_master, ret_tty, NULL);
}

static void type(int um, const char *s)
{
	CHECK(write(um, s, strlen(s)) == (ssize_t)strlen(s));
}

static bool holds_tty(struct fx *f)
{
	struct ptyproxy_info i;
	ptyproxy_get_info(f->p, &i);
	return i.direct > 0;
}

START_TEST(test_direct_io_modes_detach_exit)
{
	struct fx f;
	fx_init(&f);
	int master, slave;
	CHECK(ptyproxy_pty_open(NULL, NULL, NULL, &master, &slave) == 0);
	struct ptyproxy_config cfg = fx_config(&f);
	CHECK(ptyproxy_new(&cfg, master, NULL, &f.p) == 0);
	pid_t pid = fx_spawn(slave, "PS1='$ ' exec sh -i");
	int um, tty;
	user_terminal(&um, &tty);
	int c = hello_with(&f, PTYPROXY_HELLO_TTY_FD, tty, 1);
	close(tty);
	struct drx *rx = calloc(1, sizeof(*rx));
	rx->term = -1;
	struct screen_rx *scr = calloc(1, sizeof(*scr));
	CHECK(wait_rx(&f, c, rx, &rx->nwelcome, FX_PATIENCE_MS));
	CHECK(rx->welcome & PTYPROXY_WELCOME_TTY);
	/* Keystrokes typed on the user's terminal reach the job; the output is written there, not
	 * sent as messages. The size is the client's. */
	type(um, "stty size; echo out-$((6*7))\r");
	CHECK(wait_screen(&f, um, scr, "out-42", FX_PATIENCE_MS));
	CHECK(strstr(scr->buf, "24 80"));
	drx_poll(c, rx);
	CHECK(rx->noutput == 0);
	CHECK(holds_tty(&f));
	/* A mode the job turns on is announced before its bytes reach the terminal. */
	type(um, "printf '\\033[?1000h'; echo m-$((1+1))-on\r");
	CHECK(wait_screen(&f, um, scr, "m-2-on", FX_PATIENCE_MS));
	drx_poll(c, rx);
	CHECK(rx->modes & PTYPROXY_MODE_MOUSE_VT200);
	/* The detach key: what came before it goes to the job, then the server lets go of the
	 * terminal, says DETACH and closes. */
	type(um, "echo before-key\r\x1c");
	CHECK(wait_rx(&f, c, rx, &rx->detach, FX_PATIENCE_MS));
	CHECK(wait_rx(&f, c, rx, &rx->eof, FX_PATIENCE_MS));
	CHECK(!holds_tty(&f));
	CHECK(rx->modes & PTYPROXY_MODE_MOUSE_VT200); /* still on: the client resets it */
	close(c);
	/* Reattach directly (the screen is redrawn on the terminal), then the job ends. */
	user_terminal(&um, &tty);
	memset(scr, 0, sizeof(*scr));
	memset(rx, 0, sizeof(*rx));
	rx->term = -1;
	c = hello_with(&f, PTYPROXY_HELLO_TTY_FD, tty, 1);
	close(tty);
	CHECK(wait_screen(&f, um, scr, "before-key", FX_PATIENCE_MS)); /* the redraw */
	type(um, "exit 5\r");
	int st = -1;
	FX_PUMP_UNTIL(&f, waitpid(pid, &st, WNOHANG) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 5);
	ptyproxy_job_exited(f.p, st);
	CHECK(wait_rx(&f, c, rx, &rx->exited, FX_PATIENCE_MS));
	CHECK(rx->wstatus == st);
	CHECK(wait_rx(&f, c, rx, &rx->eof, FX_PATIENCE_MS));
	CHECK(!holds_tty(&f));
	close(c), close(um);
	free(rx), free(scr);
	fx_free(&f);
}
END_TEST

/* A flood goes through the client (OUTPUT it writes to its terminal), then, after a SYNC round,
 * the server writes the terminal itself again; the user's screen gets every byte in order. */
START_TEST(test_direct_flood_relayed_then_direct)
{
	struct fx f;
	fx_init(&f);
	int master, slave;
	CHECK(ptyproxy_pty_open(NULL, NULL, NULL, &master, &slave) == 0);
	struct ptyproxy_config cfg = fx_config(&f);
	CHECK(ptyproxy_new(&cfg, master, NULL, &f.p) == 0);
	int um, tty, own;
	user_terminal2(&um, &tty, &own);
	int c = hello_with(&f, PTYPROXY_HELLO_TTY_FD | PTYPROXY_HELLO_NO_REDRAW, tty, 1);
	close(tty);
	struct drx *rx = calloc(1, sizeof(*rx));
	struct screen_rx *scr = calloc(1, sizeof(*scr));
	rx->term = own;
	CHECK(fcntl(own, F_SETFL, O_NONBLOCK) == 0);
	CHECK(wait_rx(&f, c, rx, &rx->nwelcome, FX_PATIENCE_MS));
	/* The job starts once the client is attached, as in `ckptenv run`: a NO_REDRAW client
	 * never sees what came before (on a loaded machine "ready" did, and was lost). */
	pid_t pid = fx_spawn(slave, "stty raw -echo; echo ready; read go; seq 1 150000 | cat; "
				 "echo flood-done; exec cat");
	CHECK(wait_screen(&f, um, scr, "ready\n", FX_PATIENCE_MS));
	scr->len = 0;
	scr->buf[0] = 0;
	/* Not served for a while, the job fills the pty: a batch after that is a big one. */
	type(um, "\n");
	uint64_t end = ck_now_ns() + 2ull * FX_PATIENCE_MS * 1000000;
	while (ck_now_ns() < end && !strstr(scr->buf, "flood-done\n")) {
		if (!rx->relayed)
			usleep(50000); /* until a batch was big: let the job fill the pty */
		fx_pump(&f, 2);
		drx_poll(c, rx);
		ssize_t n;
		while ((n = read(um, scr->buf + scr->len, sizeof(scr->buf) - 1 - scr->len)) > 0)
			scr->len += (size_t)n;
		scr->buf[scr->len] = 0;
	}
	struct ck_buf want = {0};
	char line[32];
	for (int i = 1; i <= 150000; i++)
		ck_buf_append(&want, line, (size_t)snprintf(line, sizeof(line), "%d\n", i));
	ck_buf_append(&want, "flood-done\n", 11);
	ck_assert_uint_eq(scr->len, want.len);
	CHECK(!memcmp(scr->buf, want.data, want.len));
	CHECK(rx->relayed > 0); /* the flood went through the client */
	/* Back to direct once output is quiet (SYNC, SYNCED): an echo comes on the terminal, not
	 * as a message. */
	CHECK(FX_PUMP_UNTIL(&f, (drx_poll(c, rx), rx->synced)));
	fx_pump(&f, 5); /* the server takes the SYNCED */
	size_t relayed = rx->relayed;
	scr->len = 0;
	scr->buf[0] = 0;
	type(um, "typed-after");
	CHECK(wait_screen(&f, um, scr, "typed-after", FX_PATIENCE_MS));
	drx_poll(c, rx);
	CHECK(rx->relayed == relayed);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	ck_buf_free(&want);
	ck_buf_free(&rx->pend);
	close(c), close(um), close(own);
	free(rx), free(scr);
	fx_free(&f);
}
END_TEST

START_TEST(test_bad_handovers)
{
	struct fx f;
	fx_init(&f);
	int master, slave;
	CHECK(ptyproxy_pty_open(NULL, NULL, NULL, &master, &slave) == 0);
	struct ptyproxy_config cfg = fx_config(&f);
	CHECK(ptyproxy_new(&cfg, master, NULL, &f.p) == 0);
	pid_t pid = fx_spawn(slave, "exec cat");
	int good = fx_client(&f, 0, 24, 80);
	struct drx *rx = calloc(1, sizeof(*rx));
	rx->term = -1;
	int um, tty, pfd[2];
	user_terminal(&um, &tty);
	CHECK(pipe2(pfd, O_CLOEXEC) == 0);
	static const struct {
		uint32_t flags;
		int which, nfds; /* which: 0 the terminal, 1 a pipe */
		const char *log;
	} cases[] = {
		{PTYPROXY_HELLO_TTY_FD, 0, 0, "hello without its terminal descriptor"},
		{PTYPROXY_HELLO_TTY_FD, 1, 1, "the descriptor sent is not a terminal"},
		{0, 0, 1, "descriptor sent without HELLO_TTY_FD"},
		{PTYPROXY_HELLO_TTY_FD, 0, 2, "unexpected file descriptors"},
	};
	for (size_t i = 0; i < CK_ARRAY_SIZE(cases); i++) {
		int before = f.nlogs;
		int c = hello_with(&f, cases[i].flags, cases[i].which ? pfd[1] : tty,
				   cases[i].nfds);
		memset(rx, 0, sizeof(*rx));
	rx->term = -1;
		CHECK(wait_rx(&f, c, rx, &rx->eof, FX_PATIENCE_MS));
		ck_assert_msg(f.nlogs == before + 1 && strstr(f.lastlog, cases[i].log),
			      "case %zu: %s", i, f.lastlog);
		CHECK(!holds_tty(&f));
		close(c);
	}
	/* A descriptor after the HELLO is refused too. */
	int c = hello_with(&f, PTYPROXY_HELLO_TTY_FD, tty, 1);
	memset(rx, 0, sizeof(*rx));
	rx->term = -1;
	CHECK(wait_rx(&f, c, rx, &rx->nwelcome, FX_PATIENCE_MS));
	uint8_t hdr[8];
	ptyproxy_msg_header(hdr, PTYPROXY_MSG_INPUT, 0);
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} cm = {0};
	struct iovec iov = {hdr, 8};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cm.b,
			    .msg_controllen = sizeof(cm.b)};
	struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
	h->cmsg_level = SOL_SOCKET, h->cmsg_type = SCM_RIGHTS, h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &pfd[0], sizeof(int));
	CHECK(sendmsg(c, &mh, 0) == 8);
	CHECK(wait_rx(&f, c, rx, &rx->eof, FX_PATIENCE_MS));
	CHECK(strstr(f.lastlog, "unexpected file descriptors"));
	CHECK(!holds_tty(&f));
	close(c);
	/* The job and the other client did not notice. */
	struct fx_rx *frx = calloc(1, sizeof(*frx));
	CHECK(ptyproxy_send_msg(good, PTYPROXY_MSG_INPUT, "still-here\r", 11) == 0);
	CHECK(fx_wait_for(&f, good, frx, "still-here", FX_PATIENCE_MS));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(good), close(um), close(tty), close(pfd[0]), close(pfd[1]);
	ck_buf_free(&frx->out);
	free(frx), free(rx);
	fx_free(&f);
}
END_TEST

START_TEST(test_pipe_job_declines)
{
	struct fx f;
	fx_init(&f);
	int job[3], sup[3];
	CHECK(ptyproxy_pipes_create(job, sup) == 0);
	for (int i = 0; i < 3; i++)
		close(job[i]); /* the job side is gone at once: EOF */
	struct ptyproxy_config cfg = fx_config(&f);
	CHECK(ptyproxy_new_pipes(&cfg, sup, &f.p) == 0);
	int um, tty;
	user_terminal(&um, &tty);
	int c = hello_with(&f, PTYPROXY_HELLO_TTY_FD, tty, 1);
	struct drx *rx = calloc(1, sizeof(*rx));
	rx->term = -1;
	CHECK(wait_rx(&f, c, rx, &rx->nwelcome, FX_PATIENCE_MS));
	CHECK(rx->welcome == PTYPROXY_WELCOME_PIPES);
	CHECK(!holds_tty(&f));
	close(c), close(um), close(tty);
	free(rx);
	fx_free(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ptyproxy-direct");
	TCase *tc = tcase_create("direct");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_direct_io_modes_detach_exit);
	tcase_add_test(tc, test_direct_flood_relayed_then_direct);
	tcase_add_test(tc, test_bad_handovers);
	tcase_add_test(tc, test_pipe_job_declines);
	suite_add_tcase(s, tc);
	return ck_run_suite(s);
}
