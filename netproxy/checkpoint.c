/* Detach and attach. Stream offsets make exactness checkable:
 *   down direction: W = bytes written to the job leg (ring mid). The job's socket received
 *   D = leg_base + tcpi_bytes_received of its TCP_INFO (exact, counted by the job's own socket),
 *   and holds u unread bytes (peeked), so the job consumed C = D - u. Bytes in [D, W) were
 *   written but never reached the job (the leg's send queue); the down ring keeps NP_KEEP bytes
 *   behind W, more than that send queue can hold (fixed SO_SNDBUF), so [D, hi) is still there.
 *   A new leg gets the u captured bytes, then [D, hi): the stream continues at C.
 *   up direction: the frozen job cannot write more; reading the leg until the job's socket
 *   has nothing left in its send queue (SIOCOUTQ 0) and the leg is empty takes everything. */
#include "netproxy/netproxy-internal.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_received */
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

int netproxy_session_find(struct netproxy *np, int job_sock, uint32_t *ret_id)
{
	struct stat st;
	if (fstat(job_sock, &st) < 0)
		return -errno;
	for (struct np_session *s = np->sessions; s; s = s->next) {
		if (s->leg_ino == st.st_ino && s->ps.fd >= 0) {
			*ret_id = s->id;
			return 0;
		}
	}
	return -ENOENT;
}

/* Everything the frozen job wrote, into the up ring; while a restored job is still sending
 * again what its previous run had sent (replay, cut.c), through the comparison first, as the
 * relay would. -EPROTO: the bytes differ (the caller resets the session). */
static int drain_job(struct np_session *s, int job_sock)
{
	uint64_t deadline = ck_now_ns() + 2000000000ull;
	for (;;) {
		ssize_t k;
		if (s->replay_pos < s->replay_end) {
			k = np_cut_replay_fill(s);
			if (k == -EPROTO)
				return -EPROTO;
			if (k < 0) {
				errno = (int)-k;
				k = -1;
			}
			if (k > 0)
				continue;
		} else {
			if (np_ring_space(&s->up) == 0) {
				size_t cap = s->up.cap * 2;
				if (cap > NP_DETACH_MAX)
					return -ENOBUFS;
				int r = np_ring_grow(&s->up, cap);
				if (r < 0)
					return r;
			}
			struct iovec iov[2];
			int n = np_ring_in_iov(&s->up, iov);
			if (n < 0)
				return n;
			k = readv(s->ps.fd, iov, n);
			if (k > 0) {
				s->up.hi += (uint64_t)k;
				continue;
			}
		}
		if (k == 0) {
			s->job_eof = true;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		int outq = 0;
		if (job_sock >= 0 && ioctl(job_sock, SIOCOUTQ, &outq) < 0)
			outq = 0;
		int inq = 0;
		(void)ioctl(s->ps.fd, FIONREAD, &inq);
		if (outq == 0 && inq == 0)
			return 0;
		if (ck_now_ns() > deadline)
			return -ETIMEDOUT;
		/* SIOCOUTQ counts bytes not yet acknowledged: everything may be read already
		 * while our delayed ACK (40 ms) keeps it nonzero. Push the ACK now. */
		int one = 1;
		(void)setsockopt(s->ps.fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
		struct pollfd p = {.fd = s->ps.fd, .events = POLLIN};
		(void)poll(&p, 1, 10);
	}
}

/* tcpi_state values (include/net/tcp_states.h) in which the socket has received a FIN. */
enum { NP_TCP_TIME_WAIT = 6, NP_TCP_CLOSE_WAIT = 8, NP_TCP_LAST_ACK = 9, NP_TCP_CLOSING = 11 };

static int peek_unread(int job_sock, uint8_t **ret, size_t *ret_len)
{
	int avail = 0;
	if (ioctl(job_sock, FIONREAD, &avail) < 0)
		return -errno;
	_cleanup_free_ uint8_t *buf = malloc((size_t)avail + 1);
	if (!buf)
		return -ENOMEM;
	size_t got = 0;
	if (avail > 0) {
		/* MSG_DONTWAIT: never block on, nor change the flags of, the job's socket. One
		 * peek returns at most the queue, so ask for all of it at once. */
		ssize_t k;
		do
			k = recv(job_sock, buf, (size_t)avail, MSG_PEEK | MSG_DONTWAIT);
		while (k < 0 && errno == EINTR);
		if (k < 0)
			return -errno;
		got = (size_t)k;
		if (got != (size_t)avail)
			return -EIO;
	}
	*ret = TAKE_PTR(buf);
	*ret_len = got;
	return 0;
}

int netproxy_session_unsent(struct netproxy *np, uint32_t id, void **ret, size_t *ret_len)
{
	struct np_session *s = np_session_by_id(np, id);
	if (!s)
		return -ENOENT;
	if (!s->detached)
		return -EINVAL;
	size_t n = np_ring_pending(&s->up);
	uint8_t *buf = malloc(n + 1);
	if (!buf)
		return -ENOMEM;
	np_ring_copy_out(&s->up, s->up.mid, buf, n);
	*ret = buf;
	*ret_len = n;
	return 0;
}

int netproxy_session_detach(struct netproxy *np, uint32_t id, int job_sock, void **ret_unread,
			    size_t *ret_len)
{
	struct np_session *s = np_session_by_id(np, id);
	if (!s)
		return -ENOENT;
	if (s->answer_pending || s->detached || s->ps.fd < 0)
		return -EBUSY;
	_cleanup_free_ uint8_t *unread = NULL;
	s->detached = true;
	np_relay_pump(s); /* only updates the events: the leg is no longer served */
	int r = drain_job(s, job_sock);
	if (r == -EPROTO) { /* the restored job sent other bytes: no foreign byte goes up */
		np_session_destroy(s, true);
		return -ECONNRESET;
	}
	if (r < 0)
		goto undo;

	uint64_t W = s->down.mid, D;
	size_t ulen = 0;
	if (job_sock >= 0) {
		struct tcp_info ti;
		socklen_t l = sizeof(ti);
		if (getsockopt(job_sock, IPPROTO_TCP, TCP_INFO, &ti, &l) < 0) {
			r = -errno;
			goto undo;
		}
		/* The kernel counts a received FIN in tcpi_bytes_received (one sequence number):
		 * after the upstream half-closed and we passed that on, take it out again. */
		uint64_t fin = ti.tcpi_state == NP_TCP_CLOSE_WAIT || ti.tcpi_state == NP_TCP_LAST_ACK ||
			       ti.tcpi_state == NP_TCP_CLOSING || ti.tcpi_state == NP_TCP_TIME_WAIT;
		D = s->leg_base + ti.tcpi_bytes_received - fin;
		r = peek_unread(job_sock, &unread, &ulen);
		if (r < 0)
			goto undo;
		s->captured = true;
	} else {
		/* No job socket: assume it got what left our send queue; nothing captured. */
		int nsd = 0;
		(void)ioctl(s->ps.fd, SIOCOUTQNSD, &nsd);
		D = W - (uint64_t)nsd;
		s->captured = false;
	}
	if (D > W || D < s->down.lo || ulen > D - s->leg_base) {
		r = -EIO; /* would lose bytes: refuse rather than corrupt the stream */
		goto undo;
	}
	s->delivered = D;
	s->consumed = D - ulen;
	s->unread_sum = ck_checksum(unread ? unread : (uint8_t *)"", ulen);
	*ret_len = ulen;
	*ret_unread = TAKE_PTR(unread);
	np_relay_pump(s); /* upstream keeps flowing into the bounded ring */
	return 0;
undo:
	s->detached = false;
	np_relay_pump(s);
	return r;
}

int netproxy_session_resume(struct netproxy *np, uint32_t id)
{
	struct np_session *s = np_session_by_id(np, id);
	if (!s)
		return -ENOENT;
	if (!s->detached || s->ps.fd < 0)
		return -EINVAL;
	s->detached = false;
	np_relay_pump(s);
	return 0;
}

int netproxy_session_attach(struct netproxy *np, uint32_t id, const void *unread, size_t len,
			    int *ret_job_fd)
{
	struct np_session *s = np_session_by_id(np, id);
	if (!s)
		return -ENOENT;
	if (!s->detached)
		return -EINVAL;
	if (len != s->delivered - s->consumed ||
	    ck_checksum(len ? unread : "", len) != s->unread_sum)
		return -EINVAL;

	/* The new down stream: the captured bytes, then what the old leg never received. */
	uint64_t D = s->delivered, C = s->consumed;
	size_t rest = (size_t)(s->down.hi - D);
	size_t cap = CK_MAX(np->cfg.buf_size + NP_KEEP, len + rest + np->cfg.buf_size);
	struct np_ring nr;
	int r = np_ring_init(&nr, cap, NP_KEEP, C);
	if (r < 0)
		return r;
	_cleanup_free_ uint8_t *tmp = malloc(len + rest + 1);
	if (!tmp) {
		np_ring_free(&nr);
		return -ENOMEM;
	}
	if (len)
		memcpy(tmp, unread, len);
	np_ring_copy_out(&s->down, D, tmp + len, rest);
	r = np_ring_append(&nr, tmp, len + rest);
	if (r < 0) {
		np_ring_free(&nr);
		return r;
	}

	int js, ps;
	ino_t ino;
	r = np_leg_new_restored(np, s->family, &js, &ps, &ino);
	if (r < 0) {
		np_ring_free(&nr);
		return r;
	}
	if (s->job_eof)
		(void)shutdown(js, SHUT_WR); /* the old job had shut its write side */

	np_ep_del(np, &s->ps);
	if (s->ps.fd >= 0)
		close(s->ps.fd);
	s->ps.fd = -1;
	np_ring_free(&s->down);
	s->down = nr;
	s->leg_ino = ino;
	s->leg_base = C;
	s->peer_shut_sent = false; /* the new leg needs its own FIN */
	s->detached = false;
	*ret_job_fd = js;
	np_relay_start(s, ps);
	return 0;
}
