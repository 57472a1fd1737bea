/* Checkpoint support: detach a session from a frozen job in the middle of a 100 MB transfer
 * both ways (with bytes unread in the job's socket), attach it to a new socket handed to the
 * net-job helper (the restored job), and check that nothing is lost or repeated; the session
 * table on disk; a connect() aborted while it waits on the notifier. */
#include "../check-main.h"
#include "np-test.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define TOTAL  (100ull << 20)
#define SEED_A 0xaaaa1111ULL /* job -> server */
#define SEED_B 0xbbbb2222ULL /* server -> job */

/* Long enough for what must happen, however loaded the machine. */
#define PATIENCE_NS (60ull * 1000000000)

struct shared {
	volatile int ready;
	int fd;
	uint64_t sent, recvd;
};

struct ck_srv {
	int lfd;
	struct sockaddr_storage addr;
	pthread_t th;
	struct ns_peer p;
	int result;
	volatile int started;
};

static void *ck_srv_main(void *arg)
{
	struct ck_srv *s = arg;
	s->started = 1;
	int c = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0) {
		s->result = -100;
		return NULL;
	}
	s->p.fd = c;
	s->result = ns_peer_run(&s->p);
	close(c);
	return NULL;
}

struct job_arg {
	struct sockaddr_storage addr;
	struct shared *sh;
};

static int job_transfer(void *arg)
{
	struct job_arg *a = arg;
	int fd = j_connect(&a->addr, 0);
	J_CHECK(fd >= 0, 1);
	a->sh->fd = fd;
	/* Freeze in the middle of both directions. */
	struct ns_peer p = {.fd = fd,
			    .total = TOTAL,
			    .seed_out = SEED_A,
			    .seed_in = SEED_B,
			    .freeze_at = TOTAL / 3};
	int r = ns_peer_run(&p);
	if (r != 1)
		fprintf(stderr, "job: ns_peer_run %d at sent %llu recvd %llu\n", r,
			(unsigned long long)p.sent, (unsigned long long)p.recvd);
	J_CHECK(r == 1, 2);
	/* Stop reading: the server keeps sending, so bytes pile up unread. */
	struct pollfd pf = {.fd = fd, .events = POLLIN};
	J_CHECK(poll(&pf, 1, (int)(PATIENCE_NS / 1000000)) == 1, 4);
	a->sh->sent = p.sent;
	a->sh->recvd = p.recvd;
	__sync_synchronize();
	a->sh->ready = 1;
	raise(SIGSTOP);
	return 3; /* never resumed */
}

static const char *helper_path(void)
{
	static char path[4096];
	const char *dir = getenv("CK_HELPERS");
	snprintf(path, sizeof(path), "%s/net-job", dir ? dir : "helpers");
	return path;
}

/* Checkpoint side, as the supervisor does it: take the frozen job's socket @fd (pidfd_getfd)
 * and detach its session, capturing the bytes the job has not read. */
static void detach_job_socket(struct fx *f, pid_t pid, int fd, uint32_t *ret_id,
			      void **ret_unread, size_t *ret_len)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	ck_assert_int_ge(pidfd, 0);
	int dup = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	ck_assert_int_ge(dup, 0);
	pthread_mutex_lock(&f->mu);
	ck_assert_int_eq(netproxy_session_find(f->np, dup, ret_id), 0);
	ck_assert_int_eq(netproxy_session_detach(f->np, *ret_id, dup, ret_unread, ret_len), 0);
	pthread_mutex_unlock(&f->mu);
	close(dup);
	close(pidfd);
}

START_TEST(test_detach_attach_midstream)
{
	struct fx f;
	struct ck_srv s = {0};
	fx_start(&f, NULL);
	ck_assert_msg(access(helper_path(), X_OK) == 0, "helper %s missing (CK_HELPERS)",
		      helper_path());
	s.lfd = t_listen(AF_INET, SOCK_STREAM, true, &s.addr);
	s.p = (struct ns_peer){.total = TOTAL, .seed_out = SEED_B, .seed_in = SEED_A};
	ck_assert_int_eq(pthread_create(&s.th, NULL, ck_srv_main, &s), 0);
	t_wait_started(&s.started);

	struct shared *sh =
		mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(sh, MAP_FAILED);
	struct job_arg ja = {.addr = s.addr, .sh = sh};
	pid_t pid = fx_job(&f, job_transfer, &ja, 0);

	int st;
	ck_assert_int_eq(waitpid(pid, &st, WUNTRACED), pid);
	ck_assert_msg(WIFSTOPPED(st), "the job did not stop mid-transfer: status 0x%x", st);
	ck_assert(sh->sent < TOTAL && sh->recvd < TOTAL);
	ck_assert_int_eq(sh->ready, 1);

	/* Checkpoint: take the job's socket, detach, capture. */
	uint32_t id;
	void *unread = NULL;
	size_t ulen = 0;
	detach_job_socket(&f, pid, sh->fd, &id, &unread, &ulen);
	struct netproxy_session_info *v;
	size_t n;
	pthread_mutex_lock(&f.mu);
	ck_assert_int_eq(netproxy_status(f.np, &v, &n), 0);
	pthread_mutex_unlock(&f.mu);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(v[0].state, NETPROXY_STATE_DETACHED);
	/* What the library computed the job consumed is what the job itself counted. */
	ck_assert_uint_eq(v[0].consumed, sh->recvd);
	ck_assert_uint_eq(v[0].delivered - v[0].consumed, ulen);
	free(v);
	ck_assert_msg(ulen > 0, "no unread bytes were captured");
	ck_assert(ns_check(SEED_B, sh->recvd, unread, ulen));

	/* The old job is gone; the upstream keeps sending into the bounded buffer. */
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	usleep(100 * 1000);

	/* A wrong capture is refused. */
	int js = -1;
	pthread_mutex_lock(&f.mu);
	ck_assert_int_eq(netproxy_session_attach(f.np, id, unread, ulen - 1, &js), -EINVAL);
	ck_assert_int_eq(netproxy_session_attach(f.np, id, unread, ulen, &js), 0);
	pthread_mutex_unlock(&f.mu);
	free(unread);

	/* The restored job. */
	pid_t h = fork();
	if (h == 0) { /* no Check call in the child (np-test.h, fx_loop) */
		char a_total[32], a_sent[32], a_recvd[32], a_so[32], a_si[32];
		if (dup2(js, 3) < 0 || fcntl(3, F_SETFD, 0) < 0)
			_exit(120);
		snprintf(a_total, sizeof(a_total), "%llu", (unsigned long long)TOTAL);
		snprintf(a_sent, sizeof(a_sent), "%llu", (unsigned long long)sh->sent);
		snprintf(a_recvd, sizeof(a_recvd), "%llu", (unsigned long long)sh->recvd);
		snprintf(a_so, sizeof(a_so), "%llu", (unsigned long long)SEED_A);
		snprintf(a_si, sizeof(a_si), "%llu", (unsigned long long)SEED_B);
		execl(helper_path(), "net-job", "3", a_total, a_sent, a_recvd, a_so, a_si,
		      (char *)NULL);
		_exit(121);
	}
	ck_assert_int_ge(h, 0);
	close(js);
	ck_assert_int_eq(fx_wait(h), 0);
	pthread_join(s.th, NULL);
	ck_assert_int_eq(s.result, 0); /* the server got A exactly, and sent all of B */
	ck_assert_uint_eq(s.p.recvd, TOTAL);
	close(s.lfd);
	munmap(sh, 4096);
	fx_stop(&f);
}
END_TEST

/* ---- a session whose upstream half-closed ---- */

/* The job: connect, say it is ready once it has the server's bytes waiting unread (with the
 * upstream's FIN behind them), then stop. */
static int job_halfclosed(void *arg)
{
	struct job_arg *a = arg;
	int fd = j_connect(&a->addr, 0);
	J_CHECK(fd >= 0, 1);
	a->sh->fd = fd;
	/* Until "hi" and the FIN arrived (POLLRDHUP: the FIN, behind the bytes; nothing read). */
	struct pollfd pf = {.fd = fd, .events = POLLRDHUP};
	J_CHECK(poll(&pf, 1, (int)(PATIENCE_NS / 1000000)) == 1, 2);
	__sync_synchronize();
	a->sh->ready = 1;
	raise(SIGSTOP);
	return 3; /* never resumed */
}

START_TEST(test_detach_after_upstream_fin)
{
	struct fx f;
	fx_start(&f, NULL);
	struct sockaddr_storage addr;
	int l = t_listen(AF_INET, SOCK_STREAM, true, &addr);
	struct shared *sh =
		mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(sh, MAP_FAILED);
	struct job_arg ja = {.addr = addr, .sh = sh};
	pid_t pid = fx_job(&f, job_halfclosed, &ja, 0);
	int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(c, 0);
	ck_assert_int_eq(write(c, "hi", 2), 2);
	ck_assert_int_eq(shutdown(c, SHUT_WR), 0);
	int st;
	ck_assert_int_eq(waitpid(pid, &st, WUNTRACED), pid);
	ck_assert(WIFSTOPPED(st));
	ck_assert_int_eq(sh->ready, 1);

	/* The job's socket holds "hi" and the FIN: the FIN (one sequence number in
	 * tcpi_bytes_received) is no byte of the stream. This detach used to fail with EIO. */
	uint32_t id;
	void *unread = NULL;
	size_t ulen = 0;
	detach_job_socket(&f, pid, sh->fd, &id, &unread, &ulen);
	ck_assert_uint_eq(ulen, 2);
	ck_assert_int_eq(memcmp(unread, "hi", 2), 0);
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);

	/* The restored job's socket gives the unread bytes, then end of file. */
	int js = -1;
	pthread_mutex_lock(&f.mu);
	ck_assert_int_eq(netproxy_session_attach(f.np, id, unread, ulen, &js), 0);
	pthread_mutex_unlock(&f.mu);
	free(unread);
	char b[8];
	size_t got = 0;
	uint64_t deadline = ck_now_ns() + PATIENCE_NS;
	for (;;) {
		struct pollfd p = {.fd = js, .events = POLLIN};
		ck_assert_int_ge(poll(&p, 1, 100), 0);
		ssize_t k = recv(js, b + got, sizeof(b) - got, MSG_DONTWAIT);
		if (k == 0)
			break;
		if (k > 0)
			got += (size_t)k;
		ck_assert_msg(ck_now_ns() < deadline, "no end of file after %zu bytes", got);
	}
	ck_assert_uint_eq(got, 2);
	ck_assert_int_eq(memcmp(b, "hi", 2), 0);
	close(js);
	close(c);
	close(l);
	munmap(sh, 4096);
	fx_stop(&f);
}
END_TEST

/* ---- session table ---- */

static int job_hold(void *arg)
{
	const struct sockaddr_storage *a = arg;
	int fd = j_connect(a, 0);
	J_CHECK(fd >= 0, 1);
	J_CHECK(write(fd, "abc", 3) == 3, 2);
	char b;
	J_CHECK(read(fd, &b, 1) == 1, 3); /* until the test is done */
	return 0;
}

static void flip(int dirfd, long at)
{
	int fd = openat(dirfd, "netproxy.table", O_RDWR);
	ck_assert_int_ge(fd, 0);
	uint8_t c;
	ck_assert_int_eq(pread(fd, &c, 1, at), 1);
	c ^= 0x40;
	ck_assert_int_eq(pwrite(fd, &c, 1, at), 1);
	close(fd);
}

START_TEST(test_table_save_load)
{
	struct fx f;
	struct sockaddr_storage a;
	fx_start(&f, NULL);
	int l = t_listen(AF_INET, SOCK_STREAM, true, &a);
	pid_t pid = fx_job(&f, job_hold, &a, 0);
	int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(c, 0);
	char b[3];
	ck_assert_int_eq(ck_read_full(c, b, 3), 3);

	char dir[] = "/tmp/np-table-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(dfd, 0);
	pthread_mutex_lock(&f.mu);
	ck_assert_int_eq(netproxy_table_save(f.np, dfd), 0);
	pthread_mutex_unlock(&f.mu);

	struct netproxy_session_info *v;
	size_t n;
	ck_assert_int_eq(netproxy_table_load(dfd, &v, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(v[0].state, NETPROXY_STATE_ESTABLISHED);
	ck_assert_uint_eq(v[0].bytes_up, 3);
	ck_assert_int_eq(memcmp(&v[0].peer, &a, sizeof(struct sockaddr_in)), 0);
	char txt[64];
	ck_assert_int_eq(netproxy_addr_format(&v[0].peer, txt, sizeof(txt)), 0);
	ck_assert_ptr_nonnull(strstr(txt, "127.0.0.1:"));
	free(v);

	/* corruption anywhere -> -EBADMSG; truncation too */
	struct stat st;
	ck_assert_int_eq(fstatat(dfd, "netproxy.table", &st, 0), 0);
	for (long at = 0; at < st.st_size; at += 7) {
		flip(dfd, at);
		ck_assert_int_eq(netproxy_table_load(dfd, &v, &n), -EBADMSG);
		flip(dfd, at);
	}
	ck_assert_int_eq(netproxy_table_load(dfd, &v, &n), 0);
	free(v);
	int fd = openat(dfd, "netproxy.table", O_RDWR);
	ck_assert_int_eq(ftruncate(fd, st.st_size - 9), 0);
	close(fd);
	ck_assert_int_eq(netproxy_table_load(dfd, &v, &n), -EBADMSG);
	ck_assert_int_eq(unlinkat(dfd, "netproxy.table", 0), 0);
	ck_assert_int_eq(netproxy_table_load(dfd, &v, &n), -ENOENT);

	ck_assert_int_eq(write(c, "k", 1), 1);
	ck_assert_int_eq(fx_wait(pid), 0);
	close(c);
	close(l);
	close(dfd);
	rmdir(dir);
	fx_stop(&f);
}
END_TEST

/* ---- a connect() aborted while it waits on the notifier ---- */

static void on_usr1(int sig)
{
	(void)sig;
}

static int job_abort(void *arg)
{
	const struct sockaddr_storage *a = arg;
	struct sigaction sa = {.sa_handler = on_usr1}; /* no SA_RESTART */
	sigaction(SIGUSR1, &sa, NULL);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int r = connect(fd, (const struct sockaddr *)a, t_len(a));
	J_CHECK(r < 0 && errno == EINTR, 1);
	return 0;
}

START_TEST(test_connect_aborted)
{
	struct fx f;
	struct sockaddr_storage a;
	fx_start(&f, NULL);
	/* backlog 0 with one connection queued: further SYNs are dropped, connects hang */
	int l = t_listen(AF_INET, SOCK_STREAM, false, &a);
	ck_assert_int_eq(listen(l, 0), 0);
	int c1 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(connect(c1, (struct sockaddr *)&a, t_len(&a)), 0);
	pid_t pid = fx_job(&f, job_abort, &a, 0);
	uint64_t deadline = ck_now_ns() + PATIENCE_NS;
	while (fx_nsessions(&f) == 0 && ck_now_ns() < deadline)
		usleep(5000);
	ck_assert_uint_eq(fx_nsessions(&f), 1); /* waiting on the upstream */
	kill(pid, SIGUSR1);
	ck_assert_int_eq(fx_wait(pid), 0);
	deadline = ck_now_ns() + PATIENCE_NS;
	while (fx_nsessions(&f) != 0 && ck_now_ns() < deadline)
		usleep(5000);
	ck_assert_uint_eq(fx_nsessions(&f), 0); /* the half-made session was dropped */
	close(c1);
	close(l);
	fx_stop(&f);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("netproxy-checkpoint");
	TCase *tc = tcase_create("checkpoint");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_detach_attach_midstream);
	tcase_add_test(tc, test_detach_after_upstream_fin);
	tcase_add_test(tc, test_table_save_load);
	tcase_add_test(tc, test_connect_aborted);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ck_run_suite(suite());
}
