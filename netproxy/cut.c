/* The network half of a consistent cut: a session's position at a checkpoint (struct
 * netproxy_cut), re-attaching a session at such a position to a restored job, and the socket
 * a restored job gets for a connection that could not be kept.
 *
 * From its first cut on, a session sends everything the job writes through the up ring, which
 * keeps NP_RETAIN bytes behind what went upstream (ring offset + up_delta = stream offset). A
 * re-attach at a cut the job has sent past compares what the restored job sends again with
 * those bytes and drops them when equal; the first byte that differs resets the session
 * (counted in replay_mismatch for the caller to report), so the peer never sees a stream with
 * bytes twice or missing. Beyond the retained window the re-attach is refused (-ESTALE).
 * The down direction needs the bytes from the cut's delivered offset on, which the down ring
 * keeps (NP_KEEP behind what it wrote).
 *
 * A job killed after a checkpoint closes its sockets: the leg's EOF or reset would end the
 * upstream before anyone knows the job died. So a session with a cut holds it instead (leg no
 * longer served, upstream kept and read into the bounded ring) and the caller, who knows
 * whether the job's process is exiting, releases it (netproxy_release_held) when it is not,
 * or re-attaches it in a restore. */
#include "netproxy/netproxy-internal.h"

#include <fcntl.h>
#include <poll.h>

static uint64_t taken_up(const struct np_session *s)
{
	return s->bytes_up + np_ring_pending(&s->up);
}

int netproxy_session_cut(struct netproxy *np, uint32_t id, struct netproxy_cut *ret)
{
	struct np_session *s = np_session_by_id(np, id);
	if (!s)
		return -ENOENT;
	if (!s->detached || !s->captured)
		return -EINVAL;
	if (!s->retain) {
		size_t cap = CK_MAX(s->up.cap, (size_t)NP_RETAIN + s->np->cfg.buf_size);
		int r = np_ring_grow(&s->up, cap);
		if (r < 0)
			return r;
		s->up.keep = NP_RETAIN;
		s->retain = true;
	}
	s->up_delta = taken_up(s) - s->up.hi;
	/* A restored job still sending again what its previous run sent is at replay_pos: a
	 * restore of this cut replays from there (its re-attach checks the bytes are kept). */
	uint64_t up = s->replay_pos < s->replay_end ? s->replay_pos : taken_up(s);
	*ret = (struct netproxy_cut){.id = id,
				     .family = s->family,
				     .peer = s->peer,
				     .up = up,
				     .consumed = s->consumed,
				     .delivered = s->delivered,
				     .unread_sum = s->unread_sum,
				     .flags = s->connecting ? NETPROXY_CUT_CONNECTING : 0};
	_Static_assert(NP_PASSED_OPTS_MAX <= NETPROXY_CUT_OPTS_MAX, "NETPROXY_CUT_OPTS_MAX");
	for (size_t i = 0; i < s->opts.n; i++)
		ret->opts[ret->nopts++] = (struct netproxy_sockopt){
			s->opts.o[i].level, s->opts.o[i].name, s->opts.o[i].v};
	return 0;
}

static void opts_from_cut(const struct netproxy_cut *cut, struct np_opt_set *set)
{
	set->n = 0;
	for (size_t i = 0; i < cut->nopts && i < CK_ARRAY_SIZE(set->o); i++) {
		set->o[set->n].level = cut->opts[i].level;
		set->o[set->n].name = cut->opts[i].name;
		set->o[set->n++].v = cut->opts[i].value;
	}
}

int netproxy_cut_check(const struct netproxy_cut *cut)
{
	const uint32_t pending = NETPROXY_CUT_REFUSED | NETPROXY_CUT_RESET;
	if ((cut->family != AF_INET && cut->family != AF_INET6) ||
	    (cut->flags & ~(NETPROXY_CUT_CONNECTING | pending)) ||
	    ((cut->flags & pending) == pending) || !(cut->flags & pending) != (cut->id != 0) ||
	    cut->nopts > NETPROXY_CUT_OPTS_MAX || cut->consumed > cut->delivered)
		return -EINVAL;
	for (uint32_t i = 0; i < cut->nopts; i++) {
		bool known = false;
		for (size_t k = 0; k < np_passed_opts_n && !known; k++)
			known = np_passed_opts[k].level == cut->opts[i].level &&
				np_passed_opts[k].name == cut->opts[i].name;
		if (!known)
			return -EINVAL;
	}
	return 0;
}

void netproxy_cut_apply_opts(const struct netproxy_cut *cut, int fd)
{
	struct np_opt_set set;
	opts_from_cut(cut, &set);
	np_opts_apply(&set, fd);
}

int netproxy_session_reattach(struct netproxy *np, const struct netproxy_cut *cut,
			      const void *unread, size_t len, int *ret_job_fd)
{
	struct np_session *s = np_session_by_id(np, cut->id);
	if (!s)
		return -ENOENT;
	if (!np_addr_equal(&s->peer, &cut->peer))
		return -ENOENT; /* the id was reused by another connection */
	if (s->answer_pending)
		return -EBUSY;
	if (s->peer_reset || s->us.fd < 0)
		return -ECONNRESET;
	uint64_t taken = taken_up(s);
	if (taken < cut->up)
		return -EINVAL;
	if (taken > cut->up && (!s->retain || cut->up < s->up.lo + s->up_delta))
		return -ESTALE; /* what the job sent after the cut is no longer kept */
	if (len != cut->delivered - cut->consumed || cut->delivered < s->down.lo ||
	    cut->delivered > s->down.hi)
		return -ESTALE; /* the bytes after the cut are no longer kept */
	if (!s->detached) {
		/* Resumed after the cut and the job is gone since: stop serving the old leg. */
		s->detached = true;
		np_relay_pump(s);
	}
	if (s->held) {
		s->held = false;
		np->nheld--;
	}
	s->replay_pos = cut->up;
	s->replay_end = taken;
	s->delivered = cut->delivered;
	s->consumed = cut->consumed;
	s->unread_sum = cut->unread_sum;
	s->captured = true;
	int r = netproxy_session_attach(np, cut->id, unread, len, ret_job_fd);
	if (r == 0) {
		/* The restored job has the options it had at the cut; so has the upstream, also
		 * after the old job changed one since. */
		opts_from_cut(cut, &s->opts);
		np_opts_apply(&s->opts, *ret_job_fd);
		if (s->us.fd >= 0)
			np_opts_apply(&s->opts, s->us.fd);
	}
	return r;
}

int netproxy_session_reconnect(struct netproxy *np, const struct netproxy_cut *cut,
			       const void *unsent, size_t len, int *ret_job_fd)
{
	if (!(cut->flags & NETPROXY_CUT_CONNECTING) || cut->consumed || cut->delivered ||
	    len != cut->up || (cut->family != AF_INET && cut->family != AF_INET6))
		return -EINVAL;
	if (np->nsessions >= np->cfg.max_sessions)
		return -EAGAIN;
	struct np_session *s;
	int r = np_session_new(np, cut->family, &s);
	if (r < 0)
		return r;
	np->nconnects++;
	s->peer = cut->peer;
	opts_from_cut(cut, &s->opts);
	/* What the old job wrote while it waited goes first (a new stream for the peer). */
	if ((r = np_ring_append(&s->up, unsent, len)) < 0)
		goto fail;
	s->us.fd = socket(cut->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (s->us.fd < 0) {
		r = -errno;
		goto fail;
	}
	np_opts_apply(&s->opts, s->us.fd);
	int js, ps;
	if ((r = np_leg_new_restored(np, cut->family, &js, &ps, &s->leg_ino)) < 0)
		goto fail;
	np_opts_apply(&s->opts, js);
	s->connecting = true;
	np_relay_start(s, ps);
	np_upstream_connect(s); /* a failure resets the leg: ECONNRESET in the job */
	*ret_job_fd = js;
	return 0;
fail:
	np_session_destroy(s, false);
	return r;
}

ssize_t np_cut_replay_fill(struct np_session *s)
{
	uint8_t got[16384], want[sizeof(got)];
	size_t n = (size_t)CK_MIN((uint64_t)sizeof(got), s->replay_end - s->replay_pos);
	ssize_t k = recv(s->ps.fd, got, n, MSG_DONTWAIT);
	if (k <= 0)
		return k < 0 ? -errno : 0;
	np_ring_copy_out(&s->up, s->replay_pos - s->up_delta, want, (size_t)k);
	if (memcmp(got, want, (size_t)k)) {
		s->np->nreplay_mismatch++;
		s->replay_end = s->replay_pos;
		return -EPROTO; /* fatal: the session is reset, the peer sees no foreign byte */
	}
	s->replay_pos += (uint64_t)k;
	return k;
}

bool np_cut_hold_leg(struct np_session *s, int err)
{
	if (!s->retain || s->held || err == EPROTO) /* EPROTO: a replay that differs */
		return false;
	s->held = true;
	s->held_err = err;
	s->detached = true;
	s->np->nheld++;
	return true;
}

void netproxy_release_held(struct netproxy *np)
{
	for (struct np_session *s = np->sessions, *next; s; s = next) {
		next = s->next;
		if (!s->held)
			continue;
		s->held = false;
		np->nheld--;
		s->detached = false;
		if (s->held_err) {
			np_session_destroy(s, true); /* the reset the leg had */
			continue;
		}
		s->job_eof = true;
		np_relay_pump(s);
	}
}

int netproxy_session_drop(struct netproxy *np, uint32_t id)
{
	struct np_session *s = np_session_by_id(np, id);
	if (!s)
		return -ENOENT;
	np_session_destroy(s, true);
	return 0;
}

/* A connection to a private listener, accepted and closed with SO_LINGER 0: the RST is in
 * the socket before we return, so its first recv/send fails with ECONNRESET. */
int netproxy_reset_socket(int family, int *ret_fd)
{
	if (family != AF_INET && family != AF_INET6)
		return -EAFNOSUPPORT;
	_cleanup_close_ int c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0)
		return -errno;
	int r = netproxy_pend_error(c, family, ECONNRESET);
	if (r < 0)
		return r;
	*ret_fd = TAKE_FD(c);
	return 0;
}

int netproxy_pend_error(int fd, int family, int err)
{
	if ((err != ECONNREFUSED && err != ECONNRESET) ||
	    (family != AF_INET && family != AF_INET6))
		return -EINVAL;
	struct sockaddr_storage a;
	socklen_t al = np_loopback(family, &a);
	_cleanup_close_ int l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -errno;
	/* bound and not listening refuses; listening, the accepted end is reset */
	if (bind(l, (struct sockaddr *)&a, al) < 0 || getsockname(l, (struct sockaddr *)&a, &al) < 0 ||
	    (err == ECONNRESET && listen(l, 1) < 0))
		return -errno;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	int r = 0;
	/* A socket whose connect failed answers its next connect with ECONNABORTED (and is then
	 * unconnected); one that was reset once connected says EISCONN until disconnected. */
	for (int tries = 0;; tries++) {
		if (connect(fd, (struct sockaddr *)&a, al) == 0) {
			r = -EAGAIN; /* connected: the error could not be left pending */
			break;
		}
		if (errno == EINPROGRESS)
			break;
		int e = errno;
		if (tries < 2 && e == EISCONN) {
			struct sockaddr unspec = {.sa_family = AF_UNSPEC};
			(void)connect(fd, &unspec, sizeof(unspec));
			continue;
		}
		if (tries < 2 && e == ECONNABORTED)
			continue;
		r = e == ECONNREFUSED ? -EAGAIN : -e;
		break;
	}
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	uint64_t deadline = ck_now_ns() + 2000000000ull;
	if (!r && err == ECONNRESET) {
		struct pollfd lp = {.fd = l, .events = POLLIN};
		int acc = poll(&lp, 1, 2000) == 1 ? accept4(l, NULL, NULL, SOCK_CLOEXEC) : -1;
		if (acc < 0)
			r = -ETIMEDOUT;
		else
			np_reset_close(acc);
	}
	while (!r && !(p.revents & POLLERR)) {
		if (ck_now_ns() > deadline)
			r = -ETIMEDOUT;
		else
			(void)poll(&p, 1, 50);
	}
	if (fcntl(fd, F_SETFL, fl) < 0 && !r)
		r = -errno;
	return r;
}
