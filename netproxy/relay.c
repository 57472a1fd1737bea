/* The relay of one session: job leg (ps) <-> upstream (us). Job -> upstream goes through the up
 * ring, upstream -> job through the down ring, which must keep bytes already written to the
 * leg for a detach (see checkpoint.c), both with large readv/sendmsg calls. Not splice: a
 * pipe between the two sockets moved job -> upstream at 0.55x a direct connection, the copy
 * through the ring at 0.75-0.79x (bench/net.sh, docs/net.md "Relay"). Reading
 * stops while the buffer is full (backpressure reaches the sender through TCP's window); EOF
 * becomes shutdown(SHUT_WR) on the other side once the buffer is empty; an upstream reset
 * becomes a reset of the job leg (ECONNRESET in the job) after what came before it. */
#include "netproxy/netproxy-internal.h"

#include <fcntl.h>
#include <sys/epoll.h>

/* How much one pump may move per direction before yielding to other sessions. */
#define NP_PUMP_BUDGET (8u << 20)

static bool fatal(int err)
{
	return err != EAGAIN && err != EWOULDBLOCK && err != EINTR;
}

/* Read from @fd into @r. Returns bytes read, 0 at EOF, -EAGAIN, or -errno. */
static ssize_t fill(int fd, struct np_ring *r)
{
	if (!r->data) {
		/* The buffer (3.5 MiB down) comes with the first byte: many connections end
		 * without one, and malloc + free of it per connection cost a brk and page
		 * faults each (glibc's heap trim). */
		char c;
		ssize_t k = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if (k <= 0)
			return k == 0 ? 0 : -errno;
	}
	struct iovec iov[2];
	int n = np_ring_in_iov(r, iov);
	if (n <= 0)
		return n < 0 ? n : -EAGAIN;
	ssize_t k = readv(fd, iov, n);
	if (k < 0)
		return -errno;
	r->hi += (uint64_t)k;
	return k;
}

static bool up_error(int fd)
{
	int err = 0;
	socklen_t l = sizeof(err);
	return getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) == 0 && err != 0;
}

static ssize_t drain(int fd, struct np_ring *r)
{
	struct iovec iov[2];
	int n = np_ring_out_iov(r, iov);
	if (n == 0)
		return -EAGAIN;
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
	ssize_t k = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (k < 0)
		return -errno;
	r->mid += (uint64_t)k;
	return k;
}

static ssize_t up_fill(struct np_session *s)
{
	if (s->replay_pos < s->replay_end)
		return np_cut_replay_fill(s); /* a restored job sends again what went up */
	return fill(s->ps.fd, &s->up);
}

static void update_events(struct np_session *s)
{
	struct netproxy *np = s->np;
	uint32_t pe = 0, ue = 0;
	if (s->ps.fd >= 0 && !s->detached) {
		if (!s->job_eof && np_ring_space(&s->up) > 0)
			pe |= EPOLLIN;
		if (np_ring_pending(&s->down) > 0)
			pe |= EPOLLOUT;
	}
	if (s->connecting) {
		ue = EPOLLOUT;
	} else if (s->us.fd >= 0) {
		if (!s->peer_eof && !s->peer_reset && np_ring_space(&s->down) > 0)
			ue |= EPOLLIN;
		if (np_ring_pending(&s->up) > 0)
			ue |= EPOLLOUT;
		/* After the peer's FIN, its reset still matters (the peer closed for good and
		 * answers what the job sends with RST): stay registered for the error. */
		if (ue == 0 && s->peer_eof && !s->peer_reset)
			ue = EPOLLERR;
	}
	(void)np_ep_set(np, &s->ps, pe);
	(void)np_ep_set(np, &s->us, ue);
}

void np_relay_pump(struct np_session *s)
{
	bool leg = s->ps.fd >= 0 && !s->detached;
	bool up = s->us.fd >= 0 && !s->connecting;
	size_t moved_up = 0, moved_down = 0;
	bool progress = true;

	while (progress) {
		progress = false;
		/* job -> upstream */
		if (leg && !s->job_eof && moved_up < NP_PUMP_BUDGET) {
			ssize_t k = up_fill(s);
			if ((k == 0 || (k < 0 && fatal((int)-k))) && np_cut_hold_leg(s, (int)-k)) {
				leg = false; /* the job died after a checkpoint: kept for a restore */
			} else if (k == 0) {
				s->job_eof = true;
			} else if (k > 0) {
				moved_up += (size_t)k;
				progress = true;
			} else if (fatal((int)-k)) {
				/* The job reset or closed its socket with data unread. */
				np_session_destroy(s, true);
				return;
			}
		}
		if (up && np_ring_pending(&s->up) > 0) {
			ssize_t k = drain(s->us.fd, &s->up);
			if (k > 0) {
				s->bytes_up += (uint64_t)k;
				progress = true;
			} else if (k < 0 && fatal((int)-k)) {
				s->peer_reset = true; /* upstream gone while we still had to send */
				s->up.mid = s->up.hi; /* the session ends: dropped */
			}
		}
		/* A reset after the peer's FIN (the job wrote to a peer that had closed): the job
		 * gets it as on a real socket (EPIPE on its next write). */
		if (up && s->peer_eof && !s->peer_reset && up_error(s->us.fd))
			s->peer_reset = true;
		/* upstream -> job */
		if (up && !s->peer_eof && !s->peer_reset && moved_down < NP_PUMP_BUDGET) {
			ssize_t k = fill(s->us.fd, &s->down);
			if (k == 0) {
				s->peer_eof = true;
			} else if (k > 0) {
				moved_down += (size_t)k;
				progress = true;
			} else if (fatal((int)-k)) {
				s->peer_reset = true;
			}
		}
		if (leg && np_ring_pending(&s->down) > 0) {
			ssize_t k = drain(s->ps.fd, &s->down);
			if (k > 0) {
				progress = true;
			} else if (k < 0 && fatal((int)-k)) {
				np_session_destroy(s, true);
				return;
			}
		}
	}

	if (up && s->job_eof && !s->job_shut_sent && np_ring_pending(&s->up) == 0) {
		(void)shutdown(s->us.fd, SHUT_WR);
		s->job_shut_sent = true;
	}
	if (leg && np_ring_pending(&s->down) == 0) {
		if (s->peer_reset) {
			/* Everything before the reset was handed over; now the reset. */
			np_ep_del(s->np, &s->ps);
			np_reset_close(s->ps.fd);
			s->ps.fd = -1;
			np_session_destroy(s, true);
			return;
		}
		if (s->peer_eof && !s->peer_shut_sent) {
			(void)shutdown(s->ps.fd, SHUT_WR);
			s->peer_shut_sent = true;
		}
	}
	if (s->job_shut_sent && s->peer_shut_sent && !s->detached) {
		/* Both directions are finished; the job leg's queued bytes still go out with
		 * a normal close. */
		np_ep_del(s->np, &s->ps);
		close(s->ps.fd);
		s->ps.fd = -1;
		np_session_destroy(s, false);
		return;
	}
	update_events(s);
}

int np_relay_start(struct np_session *s, int ps)
{
	s->ps.fd = ps;
	np_relay_pump(s);
	return 0;
}
