/* Proxied TCP as the job sees it: bulk echo both ways, blocking and non-blocking connect,
 * refusal, resets, half-close, addresses, and what is left alone (UDP, unix sockets). */
#include "../check-main.h"
#include "np-test.h"

#include <sys/epoll.h>
#include <sys/un.h>

#define BULK (100ull << 20)
#define SEED 0x5eedULL

struct srv {
	int lfd;
	struct sockaddr_storage addr;
	struct sockaddr_storage accepted_peer;
	pthread_t th;
	int mode;
	uint64_t got;
	int ok;
	volatile int started;
};

enum { SRV_ECHO, SRV_RESET, SRV_HALF };

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	s->started = 1;
	socklen_t l = sizeof(s->accepted_peer);
	int c = accept4(s->lfd, (struct sockaddr *)&s->accepted_peer, &l, SOCK_CLOEXEC);
	if (c < 0)
		return NULL;
	if (s->mode == SRV_ECHO) {
		size_t cap = 1 << 20;
		char *b = malloc(cap);
		ssize_t n;
		while ((n = read(c, b, cap)) > 0) {
			s->got += (uint64_t)n;
			if (ck_write_full(c, b, (size_t)n) < 0)
				break;
		}
		free(b);
		shutdown(c, SHUT_WR);
		s->ok = n == 0;
	} else if (s->mode == SRV_RESET) {
		char b[16];
		(void)!read(c, b, sizeof(b)); /* wait for the job's "go" */
		struct linger lg = {1, 0};
		setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		s->ok = 1;
	} else if (s->mode == SRV_HALF) {
		char b[64];
		size_t got = 0;
		ssize_t n;
		while ((n = read(c, b + got, sizeof(b) - got)) > 0)
			got += (size_t)n;
		s->ok = n == 0 && got == 4 && memcmp(b, "ping", 4) == 0;
		ck_write_full(c, "pong", 4);
	}
	close(c);
	return NULL;
}

static void srv_start(struct srv *s, int family, int mode)
{
	memset(s, 0, sizeof(*s));
	s->mode = mode;
	s->lfd = t_listen(family, SOCK_STREAM, true, &s->addr);
	ck_assert_int_eq(pthread_create(&s->th, NULL, srv_main, s), 0);
	t_wait_started(&s->started);
}

static void srv_join(struct srv *s)
{
	pthread_join(s->th, NULL);
	close(s->lfd);
}

/* ---- echo of 100 MB, both directions at once ---- */

struct writer {
	int fd;
	int ok;
};

static void *j_writer(void *arg)
{
	struct writer *w = arg;
	size_t cap = 256 << 10;
	char *b = malloc(cap);
	uint64_t off = 0;
	w->ok = 1;
	while (off < BULK) {
		size_t n = (size_t)CK_MIN((uint64_t)cap, BULK - off);
		ns_fill(SEED, off, b, n);
		if (ck_write_full(w->fd, b, n) < 0) {
			w->ok = 0;
			break;
		}
		off += n;
	}
	shutdown(w->fd, SHUT_WR);
	free(b);
	return NULL;
}

static int job_echo(void *arg)
{
	const struct sockaddr_storage *a = arg;
	int fd = j_connect(a, 0);
	J_CHECK(fd >= 0, 1);
	struct writer w = {.fd = fd};
	pthread_t th;
	J_CHECK(pthread_create(&th, NULL, j_writer, &w) == 0, 2);
	size_t cap = 1 << 20;
	char *b = malloc(cap);
	uint64_t off = 0;
	ssize_t n;
	while ((n = read(fd, b, cap)) > 0) {
		J_CHECK(ns_check(SEED, off, b, (size_t)n), 3);
		off += (uint64_t)n;
	}
	pthread_join(th, NULL);
	J_CHECK(n == 0 && w.ok, 4);
	J_CHECK(off == BULK, 5);
	free(b);
	return 0;
}

START_TEST(test_echo_100mb)
{
	struct fx f;
	struct srv s;
	fx_start(&f, NULL);
	srv_start(&s, AF_INET, SRV_ECHO);
	pid_t pid = fx_job(&f, job_echo, &s.addr, 0);
	ck_assert_int_eq(fx_wait(pid), 0);
	srv_join(&s);
	ck_assert_int_eq(s.ok, 1);
	ck_assert_uint_eq(s.got, BULK);
	fx_stop(&f);
}
END_TEST

/* ---- non-blocking connect + epoll ---- */

static int job_nonblock(void *arg)
{
	const struct sockaddr_storage *a = arg;
	int fd = socket(a->ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	J_CHECK(fd >= 0, 1);
	int r = connect(fd, (const struct sockaddr *)a, t_len(a));
	J_CHECK(r == 0 || errno == EINPROGRESS, 2);
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
	J_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, 3);
	J_CHECK(epoll_wait(ep, &ev, 1, 5000) == 1, 4);
	int err = -1;
	socklen_t l = sizeof(err);
	J_CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) == 0 && err == 0, 5);
	J_CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) != 0, 6);
	J_CHECK(write(fd, "hello", 5) == 5, 7);
	shutdown(fd, SHUT_WR);
	char b[16];
	size_t got = 0;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		J_CHECK(poll(&p, 1, 5000) == 1, 8);
		ssize_t n = read(fd, b + got, sizeof(b) - got);
		if (n == 0)
			break;
		J_CHECK(n > 0 || errno == EAGAIN, 9);
		if (n > 0)
			got += (size_t)n;
	}
	J_CHECK(got == 5 && memcmp(b, "hello", 5) == 0, 10);
	return 0;
}

START_TEST(test_nonblock_epoll)
{
	struct fx f;
	struct srv s;
	fx_start(&f, NULL);
	srv_start(&s, AF_INET, SRV_ECHO);
	pid_t pid = fx_job(&f, job_nonblock, &s.addr, 0);
	ck_assert_int_eq(fx_wait(pid), 0);
	srv_join(&s);
	ck_assert_int_eq(s.ok, 1);
	fx_stop(&f);
}
END_TEST

/* ---- refused ---- */

static int job_refused(void *arg)
{
	const struct sockaddr_storage *a = arg;
	int fd = j_connect(a, 0);
	J_CHECK(fd == -ECONNREFUSED, 1);
	fd = socket(a->ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int r = connect(fd, (const struct sockaddr *)a, t_len(a));
	J_CHECK(r < 0 && errno == EINPROGRESS, 2);
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	J_CHECK(poll(&p, 1, 5000) == 1, 3);
	int err = 0;
	socklen_t l = sizeof(err);
	J_CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) == 0, 4);
	J_CHECK(err == ECONNREFUSED, 5);
	close(fd);
	return 0;
}

START_TEST(test_refused)
{
	struct fx f;
	struct sockaddr_storage a;
	fx_start(&f, NULL);
	int hole = t_listen(AF_INET, SOCK_STREAM, false, &a);
	pid_t pid = fx_job(&f, job_refused, &a, 0);
	ck_assert_int_eq(fx_wait(pid), 0);
	ck_assert_uint_eq(fx_nsessions(&f), 0);
	close(hole);
	fx_stop(&f);
}
END_TEST

/* ---- peer reset ---- */

static int job_reset(void *arg)
{
	const struct sockaddr_storage *a = arg;
	int fd = j_connect(a, 0);
	J_CHECK(fd >= 0, 1);
	J_CHECK(write(fd, "go", 2) == 2, 2);
	char b[16];
	ssize_t n;
	while ((n = read(fd, b, sizeof(b))) > 0)
		;
	J_CHECK(n < 0 && errno == ECONNRESET, 3);
	return 0;
}

START_TEST(test_peer_reset)
{
	struct fx f;
	struct srv s;
	fx_start(&f, NULL);
	srv_start(&s, AF_INET, SRV_RESET);
	pid_t pid = fx_job(&f, job_reset, &s.addr, 0);
	ck_assert_int_eq(fx_wait(pid), 0);
	srv_join(&s);
	fx_stop(&f);
}
END_TEST

/* ---- half-close ---- */

static int job_half(void *arg)
{
	const struct sockaddr_storage *a = arg;
	int fd = j_connect(a, 0);
	J_CHECK(fd >= 0, 1);
	J_CHECK(write(fd, "ping", 4) == 4, 2);
	J_CHECK(shutdown(fd, SHUT_WR) == 0, 3);
	char b[16];
	size_t got = 0;
	ssize_t n;
	while ((n = read(fd, b + got, sizeof(b) - got)) > 0)
		got += (size_t)n;
	J_CHECK(n == 0 && got == 4 && memcmp(b, "pong", 4) == 0, 4);
	return 0;
}

START_TEST(test_half_close)
{
	struct fx f;
	struct srv s;
	fx_start(&f, NULL);
	srv_start(&s, AF_INET, SRV_HALF);
	pid_t pid = fx_job(&f, job_half, &s.addr, 0);
	ck_assert_int_eq(fx_wait(pid), 0);
	srv_join(&s);
	ck_assert_int_eq(s.ok, 1);
	fx_stop(&f);
}
END_TEST

/* ---- addresses and socket identity ---- */

static int job_names(void *arg)
{
	struct srv *s = arg;
	int fd = j_connect(&s->addr, 0);
	J_CHECK(fd >= 0, 1);
	struct sockaddr_storage peer, me;
	socklen_t l = sizeof(peer);
	J_CHECK(getpeername(fd, (struct sockaddr *)&peer, &l) == 0, 2);
	J_CHECK(l == t_len(&s->addr) && memcmp(&peer, &s->addr, l) == 0, 3);
	l = sizeof(me);
	J_CHECK(getsockname(fd, (struct sockaddr *)&me, &l) == 0, 4);
	J_CHECK(me.ss_family == s->addr.ss_family, 5);
	int v;
	l = sizeof(v);
	J_CHECK(getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &l) == 0 && v == s->addr.ss_family, 6);
	J_CHECK(getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l) == 0 && v == SOCK_STREAM, 7);
	J_CHECK(getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &l) == 0 && v == IPPROTO_TCP, 8);
	v = 1;
	J_CHECK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v)) == 0, 9);
	J_CHECK(setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof(v)) == 0, 10);
	/* short buffer: truncated, full length reported */
	l = 4;
	J_CHECK(getpeername(fd, (struct sockaddr *)&peer, &l) == 0 && l == t_len(&s->addr), 11);
	/* tell the server our local address through the stream */
	J_CHECK(ck_write_full(fd, &me, sizeof(me)) == 0, 12);
	shutdown(fd, SHUT_WR);
	char b[sizeof(me)];
	J_CHECK(ck_read_full(fd, b, sizeof(b)) == sizeof(b), 13);
	return 0;
}

static void names_case(int family)
{
	struct fx f;
	struct srv s;
	fx_start(&f, NULL);
	srv_start(&s, family, SRV_ECHO);
	pid_t pid = fx_job(&f, job_names, &s, NETPROXY_FILTER_NAMES);
	ck_assert_int_eq(fx_wait(pid), 0);
	srv_join(&s);
	ck_assert_int_eq(s.ok, 1);
	fx_stop(&f);
}

START_TEST(test_names_v4)
{
	names_case(AF_INET);
}
END_TEST

START_TEST(test_names_v6)
{
	names_case(AF_INET6);
}
END_TEST

/* ---- a job thread other than the main one; options set after connect ---- */

struct thr {
	struct srv *s;
	int release; /* read end: the test has looked at the upstream */
	int rc;
};

static void *job_thread_main(void *arg)
{
	struct thr *t = arg;
	t->rc = 1;
	int fd = j_connect(&t->s->addr, 0);
	if (fd < 0)
		return NULL;
	int v = 555, one = 1, bad = -1;
	socklen_t l = sizeof(v);
	struct sockaddr_storage peer;
	socklen_t pl = sizeof(peer);
	char b[4];
	if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, sizeof(v)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		t->rc = 2;
	else if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &bad, sizeof(bad)) == 0 ||
		 errno != EINVAL)
		t->rc = 3; /* the kernel's check on the job's own socket answers */
	else if (getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &l) < 0 || v != 555)
		t->rc = 4;
	else if (getpeername(fd, (struct sockaddr *)&peer, &pl) < 0 ||
		 memcmp(&peer, &t->s->addr, pl) != 0)
		t->rc = 5;
	else if (ck_write_full(fd, "ping", 4) < 0 || ck_read_full(fd, b, 4) != 4)
		t->rc = 6;
	else if (read(t->release, b, 1) != 1)
		t->rc = 7;
	else
		t->rc = 0;
	close(fd);
	return NULL;
}

static int job_thread(void *arg)
{
	pthread_t th;
	if (pthread_create(&th, NULL, job_thread_main, arg) != 0)
		return 10;
	pthread_join(th, NULL);
	return ((struct thr *)arg)->rc;
}

/* The upstream socket of the session: ours, whose local address the server saw as the peer. */
static int upstream_keepidle(const struct sockaddr_storage *local)
{
	for (int fd = 3; fd < 1024; fd++) {
		struct sockaddr_storage a;
		socklen_t l = sizeof(a);
		if (getsockname(fd, (struct sockaddr *)&a, &l) < 0 || l != t_len(local) ||
		    memcmp(&a, local, l) != 0)
			continue;
		int v = -1;
		l = sizeof(v);
		if (getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &l) == 0)
			return v;
	}
	return -1;
}

START_TEST(test_thread_sockopts)
{
	struct fx f;
	struct srv s;
	int p[2];
	fx_start(&f, NULL);
	srv_start(&s, AF_INET, SRV_ECHO);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	struct thr t = {.s = &s, .release = p[0]};
	pid_t pid = fx_job(&f, job_thread, &t, NETPROXY_FILTER_NAMES | NETPROXY_FILTER_SOCKOPTS);
	for (int i = 0; i < 10000 && __atomic_load_n(&s.got, __ATOMIC_SEQ_CST) < 4; i++)
		usleep(1000);
	ck_assert_uint_ge(s.got, 4);
	pthread_mutex_lock(&f.mu);
	int idle = upstream_keepidle(&s.accepted_peer);
	pthread_mutex_unlock(&f.mu);
	ck_assert_int_eq(write(p[1], "k", 1), 1);
	ck_assert_int_eq(fx_wait(pid), 0);
	ck_assert_int_eq(idle, 555); /* set after connect, reached the real connection */
	srv_join(&s);
	close(p[0]);
	close(p[1]);
	fx_stop(&f);
}
END_TEST

/* ---- left alone: UDP and unix sockets ---- */

static int job_other(void *arg)
{
	const char *path = arg;
	struct sockaddr_storage ua;
	memcpy(&ua, path + 128, sizeof(ua));
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	J_CHECK(connect(u, (struct sockaddr *)&ua, sizeof(struct sockaddr_in)) == 0, 1);
	J_CHECK(send(u, "udp", 3, 0) == 3, 2);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	strcpy(sun.sun_path, path);
	int x = socket(AF_UNIX, SOCK_STREAM, 0);
	J_CHECK(connect(x, (struct sockaddr *)&sun, sizeof(sun)) == 0, 3);
	J_CHECK(write(x, "unix", 4) == 4, 4);
	char b[8];
	J_CHECK(read(x, b, 1) == 1, 5); /* wait for the test to have looked */
	return 0;
}

START_TEST(test_udp_unix_unproxied)
{
	struct fx f;
	fx_start(&f, NULL);
	char arg[128 + sizeof(struct sockaddr_storage)] = {0};
	snprintf(arg, 108, "/tmp/np-test-%d.sock", getpid());
	unlink(arg);
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	strcpy(sun.sun_path, arg);
	ck_assert_int_eq(bind(ls, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(ls, 4), 0);
	struct sockaddr_storage ua;
	int us = t_listen(AF_INET, SOCK_DGRAM, false, &ua);
	memcpy(arg + 128, &ua, sizeof(ua));
	pid_t pid = fx_job(&f, job_other, arg, 0);
	char b[8];
	ck_assert_int_eq(recv(us, b, sizeof(b), 0), 3);
	int c = accept(ls, NULL, NULL);
	ck_assert_int_ge(c, 0);
	ck_assert_int_eq(ck_read_full(c, b, 4), 4);
	ck_assert_uint_eq(fx_nsessions(&f), 0);
	ck_assert_int_eq(write(c, "k", 1), 1);
	ck_assert_int_eq(fx_wait(pid), 0);
	close(c);
	close(ls);
	close(us);
	unlink(arg);
	fx_stop(&f);
}
END_TEST

/* ---- session limit, fast open ---- */

static int job_limit(void *arg)
{
	const struct sockaddr_storage *a = arg;
	int f1 = j_connect(a, 0), f2 = j_connect(a, 0);
	J_CHECK(f1 >= 0 && f2 >= 0, 1);
	int f3 = j_connect(a, 0);
	J_CHECK(f3 == -EAGAIN, 2);
	close(f1);
	close(f2);
	/* TCP Fast Open would connect without connect(): refused like a host without it */
	int t = socket(a->ss_family, SOCK_STREAM, 0);
	J_CHECK(sendto(t, "x", 1, MSG_FASTOPEN, (const struct sockaddr *)a, t_len(a)) < 0 &&
			errno == EOPNOTSUPP,
		3);
	return 0;
}

START_TEST(test_limit_fastopen)
{
	struct fx f;
	struct netproxy_config cfg = {.max_sessions = 2};
	struct sockaddr_storage a;
	fx_start(&f, &cfg);
	int l = t_listen(AF_INET, SOCK_STREAM, true, &a);
	pid_t pid = fx_job(&f, job_limit, &a, 0);
	ck_assert_int_eq(fx_wait(pid), 0);
	close(l);
	fx_stop(&f);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("netproxy-relay");
	TCase *tc = tcase_create("relay");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_echo_100mb);
	tcase_add_test(tc, test_nonblock_epoll);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_peer_reset);
	tcase_add_test(tc, test_half_close);
	tcase_add_test(tc, test_names_v4);
	tcase_add_test(tc, test_names_v6);
	tcase_add_test(tc, test_thread_sockopts);
	tcase_add_test(tc, test_udp_unix_unproxied);
	tcase_add_test(tc, test_limit_fastopen);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ck_run_suite(suite());
}
