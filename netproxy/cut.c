/* The network half of a consistent cut: a session's position at a checkpoint (struct
 * netproxy_cut), re-attaching a session at such a position to a restored job, and the socket
 * a restored job gets for a connection that could not be kept.
 *
 * A session can be re-attached at a cut when the upstream has seen nothing the restored job
 * will not send again: the bytes taken from the job since the cut are 0 (the job was stopped
 * at it, or sent nothing after it). The up direction is not retained after it is sent, so a
 * replay cannot be compared: such a session is reset rather than risk a stream with bytes
 * twice or missing. The down direction needs the bytes from the cut's delivered offset on,
 * which the down ring keeps (NP_KEEP behind what it wrote) while the job is detached, and for
 * a while after a resume. */
#include "netproxy/netproxy-internal.h"

#include <poll.h>

static uint64_t taken_up(const struct np_session *s)
{
	return s->bytes_up + s->upipe_len + np_ring_pending(&s->up);
}

int netproxy_session_cut(struct netproxy *np, uint32_t id, struct netproxy_cut *ret)
{
	struct np_session *s = np_session_by_id(np, id);
	if (!s)
		return -ENOENT;
	if (!s->detached || !s->captured)
		return -EINVAL;
	*ret = (struct netproxy_cut){.id = id,
				     .family = s->family,
				     .peer = s->peer,
				     .up = taken_up(s),
				     .consumed = s->consumed,
				     .delivered = s->delivered,
				     .unread_sum = s->unread_sum};
	return 0;
}

int netproxy_session_reattach(struct netproxy *np, const struct netproxy_cut *cut,
			      const void *unread, size_t len, int *ret_job_fd)
{
	struct np_session *s = np_session_by_id(np, cut->id);
	if (!s)
		return -ENOENT;
	if (!np_addr_equal(&s->peer, &cut->peer))
		return -ENOENT; /* the id was reused by another connection */
	if (s->connecting || s->answer_pending)
		return -EBUSY;
	if (s->peer_reset || s->us.fd < 0)
		return -ECONNRESET;
	if (taken_up(s) != cut->up)
		return -ESTALE; /* the job sent bytes after the cut: a replay cannot be checked */
	if (len != cut->delivered - cut->consumed || cut->delivered < s->down.lo ||
	    cut->delivered > s->down.hi)
		return -ESTALE; /* the bytes after the cut are no longer kept */
	if (!s->detached) {
		/* Resumed after the cut and the job is gone since: stop serving the old leg. */
		s->detached = true;
		np_relay_pump(s);
	}
	s->delivered = cut->delivered;
	s->consumed = cut->consumed;
	s->unread_sum = cut->unread_sum;
	s->captured = true;
	return netproxy_session_attach(np, cut->id, unread, len, ret_job_fd);
}

int netproxy_session_drop(struct netproxy *np, uint32_t id)
{
	struct np_session *s = np_session_by_id(np, id);
	if (!s)
		return -ENOENT;
	np_session_destroy(s, true);
	return 0;
}

static socklen_t loopback_any(int family, struct sockaddr_storage *ss)
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

/* A connection to a private listener, accepted and closed with SO_LINGER 0: the RST is in
 * the socket before we return, so its first recv/send fails with ECONNRESET. */
int netproxy_reset_socket(int family, int *ret_fd)
{
	if (family != AF_INET && family != AF_INET6)
		return -EAFNOSUPPORT;
	struct sockaddr_storage a;
	socklen_t al = loopback_any(family, &a);
	_cleanup_close_ int l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -errno;
	if (bind(l, (struct sockaddr *)&a, al) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &al) < 0)
		return -errno;
	_cleanup_close_ int c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&a, al) < 0)
		return -errno;
	int acc = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (acc < 0)
		return -errno;
	np_reset_close(acc);
	struct pollfd p = {.fd = c, .events = POLLIN};
	uint64_t deadline = ck_now_ns() + 2000000000ull;
	while (!(p.revents & (POLLHUP | POLLERR))) {
		if (ck_now_ns() > deadline)
			return -ETIMEDOUT;
		(void)poll(&p, 1, 50);
	}
	*ret_fd = TAKE_FD(c);
	return 0;
}
