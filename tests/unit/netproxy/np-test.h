/* Shared fixture of the netproxy suites: a proxy served by its own thread (a mutex stands for
 * the supervisor's single loop thread), jobs as forked children under the filter, and small
 * loopback servers. */
#ifndef NP_TEST_H
#define NP_TEST_H

#include "common/ck.h"
#include "netproxy/netproxy.h"
#include "../../helpers/net-stream.h"

#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>

struct fx {
	struct netproxy *np;
	pthread_t th;
	pthread_mutex_t mu;
	volatile int stop;
	volatile int started;
};

/* Wait until a new thread runs its own code: a fork while a thread is still starting (inside
 * the sanitizer runtime's allocator) can leave the child with a held lock. */
static inline void t_wait_started(volatile int *flag)
{
	while (!*flag)
		usleep(1000);
}

static inline void *fx_loop(void *arg)
{
	struct fx *f = arg;
	f->started = 1;
	while (!f->stop) {
		struct pollfd p = {.fd = netproxy_fd(f->np), .events = POLLIN};
		poll(&p, 1, 20);
		pthread_mutex_lock(&f->mu);
		int r = netproxy_dispatch(f->np);
		pthread_mutex_unlock(&f->mu);
		/* No Check call on the passing path: each takes Check's own lock, and a job forked
		 * while this thread held it would hang in its first ck_assert (seen 1 in 300). */
		if (r < 0)
			ck_abort_msg("netproxy_dispatch: %s", strerror(-r));
	}
	return NULL;
}

static inline void fx_start(struct fx *f, const struct netproxy_config *cfg)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->mu, NULL);
	ck_assert_int_eq(netproxy_new(cfg, &f->np), 0);
	ck_assert_int_eq(pthread_create(&f->th, NULL, fx_loop, f), 0);
	t_wait_started(&f->started);
}

static inline void fx_stop(struct fx *f)
{
	f->stop = 1;
	pthread_join(f->th, NULL);
	netproxy_free(f->np);
}

static inline size_t fx_nsessions(struct fx *f)
{
	struct netproxy_session_info *v;
	size_t n;
	pthread_mutex_lock(&f->mu);
	ck_assert_int_eq(netproxy_status(f->np, &v, &n), 0);
	pthread_mutex_unlock(&f->mu);
	free(v);
	return n;
}

/* Run @fn(@arg) in a child under the filter; its return value is the exit status. */
static inline pid_t fx_job(struct fx *f, int (*fn)(void *), void *arg, unsigned flags)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	/* Fork while the proxy thread is parked on the mutex, not inside malloc: the child of a
	 * multi-threaded process must not inherit a held allocator lock (seen under ASan). */
	pthread_mutex_lock(&f->mu);
	pid_t pid = fork();
	if (pid != 0)
		pthread_mutex_unlock(&f->mu);
	if (pid == 0) { /* no Check call in the child (see fx_loop) */
		close(sv[0]);
		int nfd = netproxy_filter_install(flags);
		if (nfd < 0)
			_exit(100);
		if (ck_send_fds(sv[1], "n", 1, &nfd, 1) < 0)
			_exit(101);
		close(nfd);
		char c;
		if (read(sv[1], &c, 1) != 1)
			_exit(102);
		close(sv[1]);
		_exit(fn(arg));
	}
	ck_assert_int_ge(pid, 0);
	close(sv[1]);
	char c;
	int nfd = -1;
	size_t n = 0;
	ck_assert_int_eq(ck_recv_fds(sv[0], &c, 1, &nfd, 1, &n), 1);
	ck_assert_int_eq(n, 1);
	pthread_mutex_lock(&f->mu);
	ck_assert_int_eq(netproxy_add_listener(f->np, nfd), 0);
	pthread_mutex_unlock(&f->mu);
	ck_assert_int_eq(write(sv[0], "k", 1), 1);
	close(sv[0]);
	return pid;
}

static inline int fx_wait(pid_t pid)
{
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	if (WIFSIGNALED(st))
		return 200 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

static inline socklen_t t_len(const struct sockaddr_storage *a)
{
	return a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* A loopback listener (or, with !listening, a bound port nothing listens on). */
static inline int t_listen(int family, int type, bool listening, struct sockaddr_storage *addr)
{
	memset(addr, 0, sizeof(*addr));
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (void *)addr;
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
	} else {
		struct sockaddr_in *s4 = (void *)addr;
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	}
	int fd = socket(family, type | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ck_assert_int_eq(bind(fd, (struct sockaddr *)addr, t_len(addr)), 0);
	if (listening && type == SOCK_STREAM)
		ck_assert_int_eq(listen(fd, 64), 0);
	socklen_t l = sizeof(*addr);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)addr, &l), 0);
	return fd;
}

/* In the job: a TCP connect to @a; returns the fd or -errno. */
static inline int j_connect(const struct sockaddr_storage *a, int extra_type)
{
	int fd = socket(a->ss_family, SOCK_STREAM | extra_type, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)a, t_len(a)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

#define J_CHECK(cond, code)                                                                    \
	do {                                                                                   \
		if (!(cond)) {                                                                 \
			fprintf(stderr, "job check failed line %d: %s (errno %d)\n", __LINE__, \
				#cond, errno);                                                 \
			return code;                                                           \
		}                                                                              \
	} while (0)

#endif
