/* Job-side legs: a loopback TCP connection from a supervisor-held listener. The job's end is a
 * real TCP socket of the family it asked for, so SO_DOMAIN/SO_TYPE/SO_PROTOCOL, TCP options and
 * shutdown behave as TCP. Anyone on the host can connect to the listener, so an accepted
 * connection is used only when its peer address is exactly the local address of the socket we
 * made; anything else is closed. */
#include "netproxy/netproxy-internal.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/stat.h>

int np_family_idx(int family)
{
	return family == AF_INET6 ? 1 : 0;
}

bool np_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return false;
}

void np_reset_close(int fd)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	if (fd < 0)
		return;
	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

socklen_t np_loopback(int family, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (void *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		return sizeof(*s6);
	}
	struct sockaddr_in *s4 = (void *)ss;
	s4->sin_family = AF_INET;
	s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sizeof(*s4);
}

static int bound_socket(int family, bool listening, struct sockaddr_storage *ret_addr)
{
	struct sockaddr_storage ss;
	socklen_t len = np_loopback(family, &ss);
	_cleanup_close_ int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0)
		return -errno;
	if (listening && listen(fd, SOMAXCONN) < 0)
		return -errno;
	len = sizeof(*ret_addr);
	if (getsockname(fd, (struct sockaddr *)ret_addr, &len) < 0)
		return -errno;
	return TAKE_FD(fd);
}

/* Leg family: the job's, unless IPv6 loopback is unusable here (then AF_INET, documented). */
static int leg_listener(struct netproxy *np, int family, int *ret_idx)
{
	int idx = np_family_idx(family);
	if (np->leglisten[idx].fd < 0) {
		int fd = bound_socket(family, true, &np->legaddr[idx]);
		if (fd < 0 && idx == 1)
			return leg_listener(np, AF_INET, ret_idx);
		if (fd < 0)
			return fd;
		np->leglisten[idx] = (struct np_ep){
			.kind = NP_EP_LEGLISTEN, .fd = fd, .ptr = (void *)(intptr_t)idx};
		int r = np_ep_set(np, &np->leglisten[idx], EPOLLIN);
		if (r < 0)
			return r;
	}
	*ret_idx = idx;
	return 0;
}

void np_leg_accept_foreign(struct netproxy *np, int idx)
{
	/* Only called when no leg is being made: everything queued is foreign. */
	for (int i = 0; i < 64; i++) {
		int fd = accept4(np->leglisten[idx].fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			return;
		np_reset_close(fd);
	}
}

static int wait_fd(int fd, short ev, int ms)
{
	struct pollfd p = {.fd = fd, .events = ev};
	int r;
	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

/* Take from the listener the connection whose peer is @js's local address (the 4-tuple check);
 * anything else queued there is someone else on the host, reset. */
static int leg_accept(struct netproxy *np, int idx, int js, int *ret_ps)
{
	int lfd = np->leglisten[idx].fd, r;
	struct sockaddr_storage mine;
	socklen_t alen = sizeof(mine);
	if (getsockname(js, (struct sockaddr *)&mine, &alen) < 0)
		return -errno;
	for (int tries = 0; tries < 256; tries++) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		int ps =
			accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (ps < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				return -errno;
			r = wait_fd(lfd, POLLIN, 1000);
			if (r < 0)
				return r;
			continue;
		}
		if (!np_addr_equal(&peer, &mine)) {
			np_reset_close(ps); /* someone else on the host: never a session */
			continue;
		}
		int one = 1, sndbuf = NP_LEG_SNDBUF;
		(void)setsockopt(ps, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (setsockopt(ps, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) < 0) {
			r = -errno;
			close(ps);
			return r;
		}
		*ret_ps = ps;
		return 0;
	}
	return -EAGAIN;
}

static int leg_make(struct netproxy *np, int idx, int *ret_js, int *ret_ps)
{
	int r;
	const struct sockaddr_storage *la = &np->legaddr[idx];
	_cleanup_close_ int js =
		socket(la->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (js < 0)
		return -errno;
	socklen_t alen = la->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						   : sizeof(struct sockaddr_in);
	if (connect(js, (const struct sockaddr *)la, alen) < 0 && errno != EINPROGRESS)
		return -errno;
	/* Loopback completes the handshake in softirq, normally before connect returns. */
	r = wait_fd(js, POLLOUT, 1000);
	if (r < 0)
		return r;
	int err = 0;
	socklen_t elen = sizeof(err);
	if (getsockopt(js, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		return -errno;
	if (err)
		return -err;
	r = leg_accept(np, idx, js, ret_ps);
	if (r < 0)
		return r;
	*ret_js = TAKE_FD(js);
	return 0;
}

/* The common case needs no leg of ours: the job's own socket (@jsock, our pidfd_getfd duplicate
 * of the very file) is connected to the leg listener, so the answer alone ends the connect: no
 * SECCOMP_IOCTL_NOTIF_ADDFD, which waits for the job's thread to run and install the fd (a
 * second round trip), and the job keeps its file, its options and its fd flags. Refused
 * (-EXDEV, the caller makes a leg of its own) when that connect could go anywhere but to us
 * or could block the loop: a socket in another network namespace (its loopback is not ours),
 * bound to a device, asking for TCP Fast Open (the SYN would wait for data), or a listener
 * whose accept queue is half full (a dropped SYN would hold a blocking connect for a second
 * and more). The 4-tuple check is leg_make's: nothing but that socket becomes the session. */
int np_leg_attach_job(struct netproxy *np, int family, int jsock, int *ret_ps)
{
	int idx, r = leg_listener(np, family, &idx);
	if (r < 0)
		return r;
	int lfd = np->leglisten[idx].fd;
	const struct sockaddr_storage *la = &np->legaddr[idx];
	if (la->ss_family != family)
		return -EXDEV; /* no IPv6 loopback: the job gets an AF_INET leg of ours */
	uint64_t cookie = 0;
	socklen_t l = sizeof(cookie);
	if (!np->netns_cookie &&
	    getsockopt(lfd, SOL_SOCKET, SO_NETNS_COOKIE, &np->netns_cookie, &l) < 0)
		return -EXDEV;
	l = sizeof(cookie);
	if (getsockopt(jsock, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &l) < 0 ||
	    cookie != np->netns_cookie)
		return -EXDEV;
	int v = 0;
	l = sizeof(v);
	if (getsockopt(jsock, SOL_SOCKET, SO_BINDTOIFINDEX, &v, &l) < 0 || v != 0)
		return -EXDEV;
	l = sizeof(v);
	if (getsockopt(jsock, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &v, &l) < 0 || v != 0)
		return -EXDEV;
	struct tcp_info ti;
	l = sizeof(ti);
	if (getsockopt(lfd, IPPROTO_TCP, TCP_INFO, &ti, &l) < 0 ||
	    ti.tcpi_unacked >= ti.tcpi_sacked / 2) /* listener: queue length, backlog */
		return -EXDEV;

	socklen_t alen = la->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						   : sizeof(struct sockaddr_in);
	if (connect(jsock, (const struct sockaddr *)la, alen) < 0) {
		if (errno != EINPROGRESS)
			return -EXDEV; /* not connected: the caller's leg replaces it */
		/* Non-blocking (or the job's SO_SNDTIMEO): loopback completes the handshake in
		 * softirq, normally before connect returns. */
		int err = 0;
		socklen_t elen = sizeof(err);
		r = wait_fd(jsock, POLLOUT, 1000);
		if (r == 0 && getsockopt(jsock, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			r = -errno;
		if (r < 0 || err)
			goto undo;
	}
	r = leg_accept(np, idx, jsock, ret_ps);
	if (r == 0)
		return 0;
undo:;
	/* Connected to us but not taken: AF_UNSPEC disconnects (an RST), and the caller's leg
	 * replaces the job's fd. */
	struct sockaddr sa = {.sa_family = AF_UNSPEC};
	(void)connect(jsock, &sa, sizeof(sa));
	return -EXDEV;
}

/* A connect waits for its leg: the handshake and the 4-tuple check of a loopback connection
 * are most of what the supervisor does for it. So legs are made ahead, after the answer
 * (np_leg_pool_refill at the end of a dispatch), and a connect takes a ready one. Pooled legs
 * are checked like any other (leg_make); nobody else holds their job end. */
int np_leg_new(struct netproxy *np, int family, int *ret_js, int *ret_ps)
{
	int idx;
	int r = leg_listener(np, family, &idx);
	if (r < 0)
		return r;
	np->pool_want[idx] = true;
	if (np->npool[idx] > 0) {
		unsigned k = --np->npool[idx];
		*ret_js = np->pool[idx][k][0];
		*ret_ps = np->pool[idx][k][1];
		return 0;
	}
	return leg_make(np, idx, ret_js, ret_ps);
}

void np_leg_pool_refill(struct netproxy *np)
{
	for (int idx = 0; idx < 2; idx++) {
		while (np->pool_want[idx] && np->npool[idx] < NP_LEG_POOL) {
			int js = -1, ps = -1;
			if (leg_make(np, idx, &js, &ps) < 0)
				break;
			np->pool[idx][np->npool[idx]][0] = js;
			np->pool[idx][np->npool[idx]++][1] = ps;
		}
	}
}

void np_leg_pool_free(struct netproxy *np)
{
	for (int idx = 0; idx < 2; idx++)
		while (np->npool[idx] > 0) {
			unsigned k = --np->npool[idx];
			close(np->pool[idx][k][0]);
			close(np->pool[idx][k][1]);
		}
}

int np_leg_refused(struct netproxy *np, int family, int *ret_js)
{
	int idx = np_family_idx(family);
	if (np->refuser[idx] < 0) {
		int fd = bound_socket(family, false, &np->refaddr[idx]);
		if (fd < 0)
			return fd;
		np->refuser[idx] = fd;
	}
	const struct sockaddr_storage *ra = &np->refaddr[idx];
	_cleanup_close_ int js = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (js < 0)
		return -errno;
	socklen_t alen =
		family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if (connect(js, (const struct sockaddr *)ra, alen) == 0)
		return -EADDRINUSE; /* cannot happen: nothing listens there */
	if (errno != EINPROGRESS && errno != ECONNREFUSED)
		return -errno;
	/* The RST comes back through loopback at once; wait until SO_ERROR is pending. */
	int r = wait_fd(js, POLLERR | POLLHUP, 1000);
	if (r < 0)
		return r;
	*ret_js = TAKE_FD(js);
	return 0;
}

int np_leg_new_restored(struct netproxy *np, int family, int *ret_js, int *ret_ps, ino_t *ret_ino)
{
	int js, ps;
	int r = np_leg_new(np, family, &js, &ps);
	if (r < 0)
		return r;
	struct stat st;
	if (fstat(js, &st) < 0) {
		r = -errno;
		close(js);
		close(ps);
		return r;
	}
	(void)fcntl(js, F_SETFL, fcntl(js, F_GETFL) & ~O_NONBLOCK);
	*ret_ino = st.st_ino;
	*ret_js = js;
	*ret_ps = ps;
	return 0;
}
