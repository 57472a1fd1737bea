/* Attach protocol: pack/unpack round trips, every malformed header refused, fuzzed input, and
 * a live check that a malformed message closes that client only. */
#include "../check-main.h"
#include <sys/ioctl.h>

#include "fixture.h"

static size_t mk(uint8_t *b, uint16_t magic, uint8_t ver, uint8_t type, uint32_t len)
{
	ck_put_le16(b, magic);
	b[2] = ver;
	b[3] = type;
	ck_put_le32(b + 4, len);
	return 8;
}

START_TEST(test_roundtrip)
{
	struct ptyproxy_hello h = {.flags = PTYPROXY_HELLO_READ_ONLY, .ws = {50, 132, 8, 16}};
	strcpy(h.term, "screen-256color");
	uint8_t buf[256], pl[PTYPROXY_HELLO_MAX];
	size_t n = ptyproxy_hello_pack(&h, pl, sizeof(pl));
	CHECK(n == 12 + strlen(h.term));
	CHECK(ptyproxy_msg_header(buf, PTYPROXY_MSG_HELLO, (uint32_t)n) == 0);
	memcpy(buf + 8, pl, n);
	struct ptyproxy_msg m;
	/* Every prefix is "need more", the whole is one message. */
	for (size_t i = 0; i < 8 + n; i++)
		CHECK(ptyproxy_msg_parse(buf, i, &m) == 0);
	CHECK(ptyproxy_msg_parse(buf, 8 + n, &m) == (ssize_t)(8 + n));
	struct ptyproxy_hello h2;
	CHECK(ptyproxy_hello_unpack(&m, &h2) == 0);
	CHECK(h2.flags == h.flags && !strcmp(h2.term, h.term));
	CHECK(h2.ws.ws_row == 50 && h2.ws.ws_col == 132 && h2.ws.ws_xpixel == 8 &&
	      h2.ws.ws_ypixel == 16);

	/* With the client's terminal modes. */
	h.flags |= PTYPROXY_HELLO_TERMIOS;
	memset(&h.tio, 0, sizeof(h.tio));
	h.tio.c_iflag = ICRNL | IUTF8, h.tio.c_oflag = OPOST | ONLCR, h.tio.c_lflag = ICANON | ECHO;
	h.tio.c_cc[VERASE] = 8;
	cfsetospeed(&h.tio, B9600), cfsetispeed(&h.tio, B9600);
	n = ptyproxy_hello_pack(&h, pl, sizeof(pl));
	CHECK(n == 12 + PTYPROXY_TERMIOS_LEN + strlen(h.term) && n <= PTYPROXY_HELLO_MAX);
	m = (struct ptyproxy_msg){.type = PTYPROXY_MSG_HELLO, .len = (uint32_t)n, .payload = pl};
	CHECK(ptyproxy_hello_unpack(&m, &h2) == 0 && !strcmp(h2.term, h.term));
	CHECK(h2.tio.c_iflag == h.tio.c_iflag && h2.tio.c_oflag == h.tio.c_oflag &&
	      h2.tio.c_lflag == h.tio.c_lflag && h2.tio.c_cc[VERASE] == 8 &&
	      h2.tio.c_cflag == h.tio.c_cflag && cfgetospeed(&h2.tio) == B9600);
	pl[12 + 17] = 31; /* ncc */
	CHECK(ptyproxy_hello_unpack(&m, &h2) == -EBADMSG);
	m.len = 12 + PTYPROXY_TERMIOS_LEN - 1; /* flag set, block cut short */
	CHECK(ptyproxy_hello_unpack(&m, &h2) == -EBADMSG);

	/* A terminal handed over: the detach key follows the termios block. */
	h.flags |= PTYPROXY_HELLO_TTY_FD;
	h.detach_key = 0x1c;
	n = ptyproxy_hello_pack(&h, pl, sizeof(pl));
	CHECK(n == 12 + PTYPROXY_TERMIOS_LEN + 2 + strlen(h.term) && n <= PTYPROXY_HELLO_MAX);
	m = (struct ptyproxy_msg){.type = PTYPROXY_MSG_HELLO, .len = (uint32_t)n, .payload = pl};
	CHECK(ptyproxy_hello_unpack(&m, &h2) == 0 && h2.detach_key == 0x1c);
	CHECK(!strcmp(h2.term, h.term) && h2.flags == h.flags);
	h.detach_key = PTYPROXY_NO_DETACH_KEY;
	n = ptyproxy_hello_pack(&h, pl, sizeof(pl));
	CHECK(ptyproxy_hello_unpack(&m, &h2) == 0 && h2.detach_key == PTYPROXY_NO_DETACH_KEY);
	ck_put_le16(pl + 12 + PTYPROXY_TERMIOS_LEN, 256); /* not a byte */
	CHECK(ptyproxy_hello_unpack(&m, &h2) == -EBADMSG);
	m.len = 12 + PTYPROXY_TERMIOS_LEN + 1; /* key cut short */
	CHECK(ptyproxy_hello_unpack(&m, &h2) == -EBADMSG);

	struct winsize ws = {40, 100, 1, 2}, ws2;
	ptyproxy_winsize_pack(&ws, pl);
	struct ptyproxy_msg rm = {.type = PTYPROXY_MSG_RESIZE, .len = 8, .payload = pl};
	CHECK(ptyproxy_winsize_unpack(&rm, &ws2) == 0 && !memcmp(&ws, &ws2, sizeof(ws)));
	CHECK(ptyproxy_msg_header(buf, PTYPROXY_MSG_OUTPUT, PTYPROXY_MSG_MAX + 1) == -EMSGSIZE);
}
END_TEST

START_TEST(test_malformed_headers)
{
	uint8_t b[16] = {0};
	struct ptyproxy_msg m;
	mk(b, 0x1234, 1, PTYPROXY_MSG_INPUT, 0);
	CHECK(ptyproxy_msg_parse(b, 8, &m) == -EBADMSG);
	CHECK(ptyproxy_msg_parse(b, 2, &m) == -EBADMSG); /* judged as soon as seen */
	mk(b, PTYPROXY_MSG_MAGIC, 2, PTYPROXY_MSG_INPUT, 0);
	CHECK(ptyproxy_msg_parse(b, 8, &m) == -EBADMSG);
	CHECK(ptyproxy_msg_parse(b, 3, &m) == -EBADMSG);
	for (int t = 0; t < 256; t++) {
		mk(b, PTYPROXY_MSG_MAGIC, 1, (uint8_t)t, 0);
		bool known = t >= 1 && t <= PTYPROXY_MSG_NOTICE;
		ssize_t r = ptyproxy_msg_parse(b, 8, &m);
		if (!known)
			CHECK(r == -EBADMSG);
	}
	/* Lengths: fixed-size types refuse any other length; bulk types refuse > MAX. */
	struct {
		uint8_t type;
		uint32_t good, bad;
	} cases[] = {
		{PTYPROXY_MSG_RESIZE, 8, 7},	{PTYPROXY_MSG_RESIZE, 8, 9},
		{PTYPROXY_MSG_DETACH, 0, 1},	{PTYPROXY_MSG_EXITED, 4, 3},
		{PTYPROXY_MSG_HELLO, 12, 11},	{PTYPROXY_MSG_HELLO, 12, PTYPROXY_HELLO_MAX + 1},
		{PTYPROXY_MSG_INPUT, 0, PTYPROXY_MSG_MAX + 1},
		{PTYPROXY_MSG_OUTPUT, PTYPROXY_MSG_MAX, 0xffffffffu},
		{PTYPROXY_MSG_INPUT_EOF, 0, 4}, {PTYPROXY_MSG_WELCOME, 4, 0},
		{PTYPROXY_MSG_MODES, 4, 5},
		{PTYPROXY_MSG_OUTPUT_CLOSED, 4, 0}, {PTYPROXY_MSG_NOTICE, 0, PTYPROXY_MSG_MAX + 1},
	};
	for (size_t i = 0; i < CK_ARRAY_SIZE(cases); i++) {
		mk(b, PTYPROXY_MSG_MAGIC, 1, cases[i].type, cases[i].bad);
		CHECK(ptyproxy_msg_parse(b, 8, &m) == -EBADMSG);
		mk(b, PTYPROXY_MSG_MAGIC, 1, cases[i].type, cases[i].good);
		CHECK(ptyproxy_msg_parse(b, 8, &m) == (cases[i].good ? 0 : 8));
	}
	/* Payload checks. */
	uint8_t pl[16] = {0};
	struct ptyproxy_msg rm = {.type = PTYPROXY_MSG_RESIZE, .len = 8, .payload = pl};
	struct winsize ws;
	CHECK(ptyproxy_winsize_unpack(&rm, &ws) == -EBADMSG); /* 0x0 */
	struct ptyproxy_hello h;
	struct ptyproxy_msg hm = {.type = PTYPROXY_MSG_HELLO, .len = 13, .payload = pl};
	ck_put_le16(pl + 4, 24), ck_put_le16(pl + 6, 80);
	CHECK(ptyproxy_hello_unpack(&hm, &h) == -EBADMSG); /* NUL in TERM */
	pl[12] = 'x';
	CHECK(ptyproxy_hello_unpack(&hm, &h) == 0);
	ck_put_le32(pl, 0x80);
	CHECK(ptyproxy_hello_unpack(&hm, &h) == -EBADMSG); /* unknown flag */
}
END_TEST

START_TEST(test_fuzz)
{
	srand(12345);
	uint8_t *buf = malloc(PTYPROXY_MSG_MAX + 64);
	int ok = 0, bad = 0, more = 0;
	for (int i = 0; i < 20000; i++) {
		size_t len = (size_t)rand() % 64;
		if (rand() % 8 == 0)
			len = (size_t)rand() % (PTYPROXY_MSG_MAX + 64);
		for (size_t k = 0; k < len; k++)
			buf[k] = (uint8_t)rand();
		if (len >= 8 && rand() % 2) { /* a plausible header, random type and length */
			mk(buf, PTYPROXY_MSG_MAGIC, 1, (uint8_t)(rand() % 12),
			   rand() % 3 ? (uint32_t)(rand() % 80) : (uint32_t)rand());
		}
		struct ptyproxy_msg m;
		ssize_t r = ptyproxy_msg_parse(buf, len, &m);
		CHECK(r == -EBADMSG || (r >= 0 && (size_t)r <= len));
		if (r > 0) {
			ok++;
			CHECK(m.payload == buf + 8 && m.len + 8 == (size_t)r);
			struct ptyproxy_hello h;
			struct winsize ws;
			if (m.type == PTYPROXY_MSG_HELLO)
				(void)ptyproxy_hello_unpack(&m, &h);
			if (m.type == PTYPROXY_MSG_RESIZE)
				(void)ptyproxy_winsize_unpack(&m, &ws);
		} else if (r == 0) {
			more++;
		} else {
			bad++;
		}
	}
	CHECK(ok > 100 && bad > 100 && more > 100);
	free(buf);
}
END_TEST

/* Several clients on one pty; one sends a bad message; only that one is closed, once logged,
 * and the job and the other client carry on. */
static void bad_client_case(const uint8_t *bad, size_t badlen)
{
	struct fx f;
	fx_init(&f);
	int master, slave;
	CHECK(ptyproxy_pty_open(NULL, NULL, NULL, &master, &slave) == 0);
	struct ptyproxy_config cfg = fx_config(&f);
	CHECK(ptyproxy_new(&cfg, master, NULL, &f.p) == 0);
	int good = fx_client(&f, 0, 24, 80);
	int evil = fx_client(&f, 0, 24, 80);
	fx_pump(&f, 20);
	CHECK(send(evil, bad, badlen, MSG_NOSIGNAL) == (ssize_t)badlen);
	struct ptyproxy_info info;
	CHECK(FX_PUMP_UNTIL(&f, (ptyproxy_get_info(f.p, &info), info.clients == 1)));
	CHECK(f.nlogs == 1 && strstr(f.lastlog, "closed"));
	struct fx_rx *rx = calloc(1, sizeof(*rx)), *erx = calloc(1, sizeof(*erx));
	fx_rx_poll(evil, erx);
	CHECK(erx->eof);
	CHECK(write(slave, "still here\n", 11) == 11);
	CHECK(fx_wait_for(&f, good, rx, "still here", FX_PATIENCE_MS));
	/* Input from the surviving client still reaches the job. */
	CHECK(ptyproxy_send_msg(good, PTYPROXY_MSG_INPUT, "typed\n", 6) == 0);
	fx_pump(&f, 20);
	char in[64] = {0};
	struct pollfd pfd = {.fd = slave, .events = POLLIN};
	CHECK(poll(&pfd, 1, FX_PATIENCE_MS) == 1 && read(slave, in, sizeof(in) - 1) > 0);
	CHECK(strstr(in, "typed"));
	ck_buf_free(&rx->out), ck_buf_free(&erx->out);
	free(rx), free(erx);
	close(good), close(evil), close(slave);
	fx_free(&f);
}

START_TEST(test_malformed_closes_only_that_client)
{
	uint8_t b[64];
	size_t n;
	/* bad magic, bad version, unknown type, oversize, wrong fixed length, type not allowed
	 * from a client, second hello, zero winsize */
	n = mk(b, 0xdead, 1, PTYPROXY_MSG_INPUT, 1);
	bad_client_case(b, n + 1);
	n = mk(b, PTYPROXY_MSG_MAGIC, 9, PTYPROXY_MSG_INPUT, 1);
	bad_client_case(b, n + 1);
	n = mk(b, PTYPROXY_MSG_MAGIC, 1, 200, 0);
	bad_client_case(b, n);
	n = mk(b, PTYPROXY_MSG_MAGIC, 1, PTYPROXY_MSG_INPUT, PTYPROXY_MSG_MAX + 1);
	bad_client_case(b, n);
	n = mk(b, PTYPROXY_MSG_MAGIC, 1, PTYPROXY_MSG_RESIZE, 4);
	bad_client_case(b, n + 4);
	n = mk(b, PTYPROXY_MSG_MAGIC, 1, PTYPROXY_MSG_OUTPUT, 2);
	bad_client_case(b, n + 2);
	n = mk(b, PTYPROXY_MSG_MAGIC, 1, PTYPROXY_MSG_EXITED, 4);
	bad_client_case(b, n + 4);
	n = mk(b, PTYPROXY_MSG_MAGIC, 1, PTYPROXY_MSG_HELLO, 12);
	memset(b + 8, 0, 12), b[12] = 24, b[14] = 80;
	bad_client_case(b, n + 12);
	n = mk(b, PTYPROXY_MSG_MAGIC, 1, PTYPROXY_MSG_RESIZE, 8);
	memset(b + 8, 0, 8);
	bad_client_case(b, n + 8);
}
END_TEST

/* Random garbage from many clients never affects the job or a good client (ASan watches). */
START_TEST(test_fuzz_live)
{
	struct fx f;
	fx_init(&f);
	int master, slave;
	CHECK(ptyproxy_pty_open(NULL, NULL, NULL, &master, &slave) == 0);
	struct ptyproxy_config cfg = fx_config(&f);
	CHECK(ptyproxy_new(&cfg, master, NULL, &f.p) == 0);
	int good = fx_client(&f, 0, 24, 80);
	srand(777);
	uint8_t junk[512];
	for (int i = 0; i < 300; i++) {
		int sv[2];
		CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
		CHECK(ptyproxy_client_add(f.p, sv[0]) == 0);
		size_t n = (size_t)rand() % sizeof(junk);
		for (size_t k = 0; k < n; k++)
			junk[k] = (uint8_t)rand();
		if (n >= 4 && rand() % 2) /* get past the magic/version check sometimes */
			mk(junk, PTYPROXY_MSG_MAGIC, 1, (uint8_t)(rand() % 11), (uint32_t)rand() % 100);
		send(sv[1], junk, n, MSG_NOSIGNAL);
		fx_pump(&f, 1);
		close(sv[1]);
	}
	struct ptyproxy_info info;
	CHECK(FX_PUMP_UNTIL(&f, (ptyproxy_get_info(f.p, &info), info.clients == 1)));
	struct fx_rx *rx = calloc(1, sizeof(*rx));
	CHECK(write(slave, "alive\n", 6) == 6);
	CHECK(fx_wait_for(&f, good, rx, "alive", FX_PATIENCE_MS));
	ck_buf_free(&rx->out);
	free(rx);
	close(good), close(slave);
	fx_free(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ptyproxy-proto");
	TCase *tc = tcase_create("proto");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_malformed_headers);
	tcase_add_test(tc, test_fuzz);
	tcase_add_test(tc, test_malformed_closes_only_that_client);
	tcase_add_test(tc, test_fuzz_live);
	suite_add_tcase(s, tc);
	return ck_run_suite(s);
}
