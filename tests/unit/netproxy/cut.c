/* The network half of a checkpoint (cut.c): a session re-attached at a cut reads on exactly
 * there;
 * what the restored job sends again is dropped when equal and resets the session when not;
 * the socket a restored job gets for a lost connection fails with ECONNRESET on first use; a
 * connection cut while connecting is connected again by a proxy that never had it. */
#include "../check-main.h"
#include "np-test.h"

#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

struct shared {
	volatile int step; /* the test moves it on; the job waits for it */
	volatile int done; /* the job's last finished step */
	int fd;
	struct sockaddr_storage addr; /* the server's */
};

static void wait_step(struct shared *sh, int want)
{
	while (sh->step < want)
		usleep(1000);
}

static int job_cut(void *arg)
{
	struct shared *sh = arg;
	int fd = j_connect(&sh->addr, 0);
	J_CHECK(fd >= 0, 1);
	sh->fd = fd;
	J_CHECK(write(fd, "abc", 3) == 3, 2);
	sh->done = 1;
	wait_step(sh, 2); /* the cut is taken meanwhile (the job stays away from its socket) */
	J_CHECK(write(fd, "def", 3) == 3, 3);
	sh->done = 2;
	wait_step(sh, 3);
	return 0;
}

static void wait_done(struct shared *sh, int want)
{
	for (int i = 0; i < 5000 && sh->done < want; i++)
		usleep(1000);
	ck_assert_int_ge(sh->done, want);
}

static void read_exact(int fd, const char *want)
{
	char b[16] = "";
	size_t n = strlen(want), got = 0;
	while (got < n) {
		ssize_t k = read(fd, b + got, n - got);
		ck_assert_int_gt(k, 0);
		got += (size_t)k;
	}
	ck_assert_str_eq(b, want);
}

START_TEST(test_reattach_and_stale)
{
	struct fx f;
	fx_start(&f, NULL);
	struct shared *sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
				 -1, 0);
	ck_assert_ptr_ne(sh, MAP_FAILED);
	int l = t_listen(AF_INET, SOCK_STREAM, true, &sh->addr);
	pid_t pid = fx_job(&f, job_cut, sh, 0);
	int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(c, 0);
	wait_done(sh, 1);
	read_exact(c, "abc");
	ck_assert_int_eq(write(c, "xy", 2), 2); /* sits unread in the job's socket */

	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	ck_assert_int_ge(pidfd, 0);
	int dup = (int)syscall(SYS_pidfd_getfd, pidfd, sh->fd, 0);
	ck_assert_int_ge(dup, 0);
	/* wait until "xy" reached the job's socket */
	for (int i = 0; i < 5000; i++) {
		int q = 0;
		ioctl(dup, FIONREAD, &q);
		if (q == 2)
			break;
		usleep(1000);
	}
	pthread_mutex_lock(&f.mu);
	uint32_t id;
	ck_assert_int_eq(netproxy_session_find(f.np, dup, &id), 0);
	void *unread = NULL;
	size_t ulen = 0;
	ck_assert_int_eq(netproxy_session_detach(f.np, id, dup, &unread, &ulen), 0);
	ck_assert_uint_eq(ulen, 2);
	ck_assert_int_eq(memcmp(unread, "xy", 2), 0);
	struct netproxy_cut cut;
	ck_assert_int_eq(netproxy_session_cut(f.np, id, &cut), 0);
	ck_assert_uint_eq(cut.up, 3);
	ck_assert_int_eq(netproxy_session_resume(f.np, id), 0);
	pthread_mutex_unlock(&f.mu);

	/* The job goes on: it sends "def" after the cut, and "z" arrives for it. */
	sh->step = 2;
	wait_done(sh, 2);
	read_exact(c, "def");
	ck_assert_int_eq(write(c, "z", 1), 1);
	for (int i = 0; i < 5000; i++) {
		int q = 0;
		ioctl(dup, FIONREAD, &q);
		if (q == 3)
			break;
		usleep(1000);
	}

	/* A restore at the cut (the old job left alone, as if dead): the new socket reads on at
	 * the cut ("xy", then "z"); the "def" it sends again is dropped, "gh" goes up. */
	int nfd = -1;
	pthread_mutex_lock(&f.mu);
	struct netproxy_cut other = cut;
	other.id += 1000;
	ck_assert_int_eq(netproxy_session_reattach(f.np, &other, unread, ulen, &nfd), -ENOENT);
	ck_assert_int_eq(netproxy_session_reattach(f.np, &cut, unread, ulen, &nfd), 0);
	pthread_mutex_unlock(&f.mu);
	read_exact(nfd, "xyz");
	/* A checkpoint while the restored job has sent again only part of it ("de"): it was
	 * refused (EAGAIN) until the job had sent it all, forever if it never did. Cut at the
	 * job's position in the replay; the replay goes on after it. */
	ck_assert_int_eq(write(nfd, "de", 2), 2);
	free(unread);
	unread = NULL;
	pthread_mutex_lock(&f.mu);
	ck_assert_int_eq(netproxy_session_detach(f.np, id, nfd, &unread, &ulen), 0);
	struct netproxy_cut mid;
	ck_assert_int_eq(netproxy_session_cut(f.np, id, &mid), 0);
	ck_assert_uint_eq(mid.up, 5);
	ck_assert_int_eq(netproxy_session_resume(f.np, id), 0);
	pthread_mutex_unlock(&f.mu);
	ck_assert_int_eq(write(nfd, "f", 1), 1);
	ck_assert_int_eq(write(nfd, "gh", 2), 2);
	read_exact(c, "gh");
	ck_assert_int_eq(write(c, "!", 1), 1);
	read_exact(nfd, "!");

	/* Another cut on the new socket; it sends "ij" after it; a restore that sends "iX"
	 * instead resets the session: the peer gets "ij" once and no foreign byte. */
	free(unread);
	unread = NULL;
	pthread_mutex_lock(&f.mu);
	ck_assert_int_eq(netproxy_session_detach(f.np, id, nfd, &unread, &ulen), 0);
	ck_assert_uint_eq(ulen, 0);
	ck_assert_int_eq(netproxy_session_cut(f.np, id, &cut), 0);
	ck_assert_uint_eq(cut.up, 8);
	ck_assert_int_eq(netproxy_session_resume(f.np, id), 0);
	pthread_mutex_unlock(&f.mu);
	ck_assert_int_eq(write(nfd, "ij", 2), 2);
	read_exact(c, "ij");
	int nfd2 = -1;
	pthread_mutex_lock(&f.mu);
	ck_assert_int_eq(netproxy_session_reattach(f.np, &cut, unread, ulen, &nfd2), 0);
	pthread_mutex_unlock(&f.mu);
	ck_assert_int_eq(write(nfd2, "iX", 2), 2);
	char b;
	errno = 0;
	ssize_t k = read(c, &b, 1);
	ck_assert(k == 0 || (k < 0 && errno == ECONNRESET));
	struct netproxy_counters cn;
	pthread_mutex_lock(&f.mu);
	netproxy_counters_get(f.np, &cn);
	pthread_mutex_unlock(&f.mu);
	ck_assert_uint_eq(cn.replay_mismatch, 1);
	close(nfd2);

	sh->step = 3;
	ck_assert_int_eq(fx_wait(pid), 0);
	free(unread);
	close(nfd);
	close(dup);
	close(pidfd);
	close(c);
	close(l);
	munmap(sh, 4096);
	fx_stop(&f);
}
END_TEST

START_TEST(test_reset_socket)
{
	int fams[2] = {AF_INET, AF_INET6};
	for (int i = 0; i < 2; i++) {
		int fd = -1;
		ck_assert_int_eq(netproxy_reset_socket(fams[i], &fd), 0);
		char b;
		errno = 0;
		ck_assert_int_eq(recv(fd, &b, 1, 0), -1);
		ck_assert_int_eq(errno, ECONNRESET);
		close(fd);
		ck_assert_int_eq(netproxy_reset_socket(fams[i], &fd), 0);
		errno = 0;
		ck_assert_int_eq(send(fd, "x", 1, MSG_NOSIGNAL), -1);
		ck_assert_int_eq(errno, ECONNRESET);
		close(fd);
	}
	int fd;
	ck_assert_int_eq(netproxy_reset_socket(AF_UNIX, &fd), -EAFNOSUPPORT);
}
END_TEST

static int so_error(int fd)
{
	int e = -1;
	socklen_t l = sizeof(e);
	ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l), 0);
	return e;
}

/* An error made pending again, as a checkpoint does after reading a job socket's SO_ERROR: on
 * a fresh socket, on one whose connect was refused (its next connect says ECONNABORTED) and on
 * one that was reset once connected (EISCONN until disconnected); O_NONBLOCK kept. */
START_TEST(test_pend_error)
{
	int fams[2] = {AF_INET, AF_INET6};
	for (int i = 0; i < 2; i++) {
		int fd = socket(fams[i], SOCK_STREAM | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(netproxy_pend_error(fd, fams[i], ECONNREFUSED), 0);
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		ck_assert_int_eq(poll(&p, 1, 0), 1);
		ck_assert(p.revents & POLLERR);
		ck_assert_int_eq(so_error(fd), ECONNREFUSED);
		ck_assert_int_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
		ck_assert_int_eq(netproxy_pend_error(fd, fams[i], ECONNREFUSED), 0); /* again */
		ck_assert_int_eq(so_error(fd), ECONNREFUSED);
		ck_assert_int_eq(netproxy_pend_error(fd, fams[i], ECONNRESET), 0);
		char b;
		errno = 0;
		ck_assert_int_eq(recv(fd, &b, 1, MSG_DONTWAIT), -1);
		ck_assert_int_eq(errno, ECONNRESET);
		close(fd);
		ck_assert_int_eq(netproxy_reset_socket(fams[i], &fd), 0); /* reset, connected once */
		ck_assert_int_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
		ck_assert_int_eq(so_error(fd), ECONNRESET);
		ck_assert_int_eq(netproxy_pend_error(fd, fams[i], ECONNRESET), 0);
		ck_assert_int_eq(so_error(fd), ECONNRESET);
		ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
		ck_assert_int_eq(netproxy_pend_error(fd, fams[i], ETIMEDOUT), -EINVAL);
		close(fd);
	}
}
END_TEST

/* A cut read back from a file is one a checkpoint could have taken; a crafted one is refused
 * (TCP_REPAIR was set as root on the upstream; consumed > delivered replayed the stream). */
START_TEST(test_cut_check)
{
	struct netproxy_cut ok = {.id = 7, .family = AF_INET, .delivered = 10, .consumed = 4,
				  .nopts = 1, .opts = {{IPPROTO_TCP, TCP_NODELAY, 1}}};
	ck_assert_int_eq(netproxy_cut_check(&ok), 0);
	struct netproxy_cut c = ok;
	c.opts[0] = (struct netproxy_sockopt){IPPROTO_TCP, TCP_REPAIR, 1};
	ck_assert_int_eq(netproxy_cut_check(&c), -EINVAL);
	c = ok, c.consumed = 11;
	ck_assert_int_eq(netproxy_cut_check(&c), -EINVAL);
	c = ok, c.nopts = NETPROXY_CUT_OPTS_MAX + 1;
	ck_assert_int_eq(netproxy_cut_check(&c), -EINVAL);
	c = ok, c.flags = 0x80;
	ck_assert_int_eq(netproxy_cut_check(&c), -EINVAL);
	c = ok, c.family = AF_UNIX;
	ck_assert_int_eq(netproxy_cut_check(&c), -EINVAL);
	c = ok, c.id = 0; /* no session: only a pending error */
	ck_assert_int_eq(netproxy_cut_check(&c), -EINVAL);
	c.flags = NETPROXY_CUT_REFUSED;
	ck_assert_int_eq(netproxy_cut_check(&c), 0);
	c.flags = NETPROXY_CUT_REFUSED | NETPROXY_CUT_RESET;
	ck_assert_int_eq(netproxy_cut_check(&c), -EINVAL);
}
END_TEST

/* A cut taken while connecting, in a proxy that never had the session (a new supervisor):
 * connected again to the same peer, the job's unsent bytes go first, the options are set;
 * a peer that refuses makes the socket fail with ECONNRESET. */
START_TEST(test_reconnect)
{
	struct fx f;
	fx_start(&f, NULL);
	struct netproxy_cut cut = {.family = AF_INET,
				   .up = 5,
				   .flags = NETPROXY_CUT_CONNECTING,
				   .nopts = 2,
				   .opts = {{IPPROTO_TCP, TCP_NODELAY, 1},
					    {IPPROTO_TCP, TCP_KEEPIDLE, 77}}};
	int l = t_listen(AF_INET, SOCK_STREAM, true, &cut.peer);
	int fd = -1;
	pthread_mutex_lock(&f.mu);
	struct netproxy_cut plain = cut;
	plain.flags = 0;
	ck_assert_int_eq(netproxy_session_reconnect(f.np, &plain, "hello", 5, &fd), -EINVAL);
	ck_assert_int_eq(netproxy_session_reconnect(f.np, &cut, "hello", 5, &fd), 0);
	pthread_mutex_unlock(&f.mu);
	int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(c, 0);
	read_exact(c, "hello");
	ck_assert_int_eq(write(fd, " again", 6), 6);
	read_exact(c, " again");
	ck_assert_int_eq(write(c, "yo", 2), 2);
	read_exact(fd, "yo");
	int v = 0;
	socklen_t vl = sizeof(v);
	ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &vl), 0);
	ck_assert_int_eq(v, 1);
	ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &vl), 0);
	ck_assert_int_eq(v, 77);
	close(fd);
	close(c);

	/* Nobody listens any more: refused, the job's socket is reset. */
	close(l);
	pthread_mutex_lock(&f.mu);
	ck_assert_int_eq(netproxy_session_reconnect(f.np, &cut, "hello", 5, &fd), 0);
	pthread_mutex_unlock(&f.mu);
	char b;
	errno = 0;
	ssize_t k = recv(fd, &b, 1, 0);
	ck_assert(k == -1 && errno == ECONNRESET);
	close(fd);

	/* The reset socket of a lost connection gets the options too. */
	ck_assert_int_eq(netproxy_reset_socket(AF_INET, &fd), 0);
	netproxy_cut_apply_opts(&cut, fd);
	ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &vl), 0);
	ck_assert_int_eq(v, 77);
	close(fd);
	fx_stop(&f);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("netproxy-cut");
	TCase *tc = tcase_create("cut");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_reattach_and_stale);
	tcase_add_test(tc, test_reset_socket);
	tcase_add_test(tc, test_pend_error);
	tcase_add_test(tc, test_cut_check);
	tcase_add_test(tc, test_reconnect);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ck_run_suite(suite());
}
