/* Which socket the job ends up holding: its own file, connected to the proxy (the common case,
 * one round trip), or a leg of the proxy's put at its fd number (bound sockets, another network
 * namespace). Either way the connection works and the job cannot tell it from TCP. */
#include "np-test.h"

#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

/* Accept one connection, read to EOF, expect "ping", answer "pong", close. */
struct pong {
	int lfd;
	struct sockaddr_storage addr;
	pthread_t th;
	int ok;
	volatile int started;
};

static void *pong_main(void *arg)
{
	struct pong *p = arg;
	p->started = 1;
	int c = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return NULL;
	char b[16];
	size_t got = 0;
	ssize_t n;
	while ((n = read(c, b + got, sizeof(b) - got)) > 0)
		got += (size_t)n;
	p->ok = n == 0 && got == 4 && memcmp(b, "ping", 4) == 0;
	(void)ck_write_full(c, "pong", 4);
	close(c);
	return NULL;
}

static void pong_start(struct pong *p)
{
	memset(p, 0, sizeof(*p));
	p->lfd = t_listen(AF_INET, SOCK_STREAM, true, &p->addr);
	ck_assert_int_eq(pthread_create(&p->th, NULL, pong_main, p), 0);
	t_wait_started(&p->started);
}

static void pong_join(struct pong *p)
{
	pthread_join(p->th, NULL);
	close(p->lfd);
}

enum { OWN, BOUND, NETNS };

struct how {
	const struct sockaddr_storage *to;
	int mode;
};

static ino_t ino_of(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

static int job_sock(void *arg)
{
	const struct how *h = arg;
	if (h->mode == NETNS) {
		/* A network namespace of the job's own, its loopback up: the proxy's listener
		 * is not reachable from there, so the job must get a leg made outside. */
		J_CHECK(unshare(CLONE_NEWNET) == 0, 1);
		int d = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		struct ifreq ifr = {0};
		strcpy(ifr.ifr_name, "lo");
		J_CHECK(ioctl(d, SIOCGIFFLAGS, &ifr) == 0, 2);
		ifr.ifr_flags |= IFF_UP;
		J_CHECK(ioctl(d, SIOCSIFFLAGS, &ifr) == 0, 3);
		close(d);
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	J_CHECK(fd >= 0, 4);
	if (h->mode == BOUND) {
		struct sockaddr_in a = {.sin_family = AF_INET,
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		J_CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0, 5);
	}
	int one = 1, dup_fd = dup(fd);
	J_CHECK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0, 6);
	ino_t before = ino_of(fd);
	J_CHECK(connect(fd, (const struct sockaddr *)h->to, t_len(h->to)) == 0, 7);
	ino_t after = ino_of(fd);
	int v = 0;
	socklen_t l = sizeof(v);
	J_CHECK(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &l) == 0 && v == 1, 8);
	/* FD_CLOEXEC is per fd: it must have stayed (own file) or been given (leg). */
	J_CHECK(fcntl(fd, F_GETFD) == FD_CLOEXEC, 9);
	J_CHECK(connect(fd, (const struct sockaddr *)h->to, t_len(h->to)) < 0 && errno == EISCONN,
		17);
	if (h->mode == OWN) {
		J_CHECK(after == before, 10);
		/* The very file: a duplicate made before connect is connected too. */
		J_CHECK(ck_write_full(dup_fd, "ping", 4) == 0, 11);
		J_CHECK(shutdown(dup_fd, SHUT_WR) == 0, 12);
	} else {
		J_CHECK(after != before, 13);
		J_CHECK(ck_write_full(fd, "ping", 4) == 0, 14);
		J_CHECK(shutdown(fd, SHUT_WR) == 0, 15);
	}
	char b[8];
	J_CHECK(ck_read_full(fd, b, sizeof(b)) == 4 && memcmp(b, "pong", 4) == 0, 16);
	close(dup_fd);
	close(fd);
	return 0;
}

static void sock_case(int mode)
{
	struct fx f;
	struct pong p;
	fx_start(&f, NULL);
	pong_start(&p);
	struct how h = {.to = &p.addr, .mode = mode};
	pid_t pid = fx_job(&f, job_sock, &h, 0);
	ck_assert_int_eq(fx_wait(pid), 0);
	pong_join(&p);
	ck_assert_int_eq(p.ok, 1);
	fx_stop(&f);
}

START_TEST(test_own_socket)
{
	sock_case(OWN);
}
END_TEST

START_TEST(test_bound_socket_gets_leg)
{
	sock_case(BOUND);
}
END_TEST

START_TEST(test_other_netns_gets_leg)
{
	/* CI runs as root; elsewhere unshare(CLONE_NEWNET) is refused and this says so. */
	ck_assert_msg(geteuid() == 0, "test_other_netns_gets_leg needs root (CI runs as root)");
	sock_case(NETNS);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("netproxy-jobsock");
	TCase *tc = tcase_create("jobsock");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_own_socket);
	tcase_add_test(tc, test_bound_socket_gets_leg);
	tcase_add_test(tc, test_other_netns_gets_leg);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
