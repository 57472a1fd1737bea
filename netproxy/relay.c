/* The relay of one session: job leg (ps) <-> upstream (us). Job -> upstream goes through a pipe
 * with splice (no copy); upstream -> job through the down ring, which must keep bytes already
 * written to the leg for a detach (see checkpoint.c), with large readv/sendmsg calls. Reading
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

static size_t up_pending(const struct np_session *s)
{
	return s->upipe_len + np_ring_pending(&s->up);
}

/* Room to read from the job: the pipe while the ring is empty, else the ring (order). */
static bool up_room(struct np_session *s)
{
	if (s->retain || np_ring_pending(&s->up) > 0)
		return np_ring_space(&s->up) > 0;
	return s->upipe_len < s->upipe_cap;
}

/* The pipe, made at the first use. */
static int upipe_make(struct np_session *s)
{
	if (pipe2(s->upipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		s->upipe[0] = s->upipe[1] = -1;
		return -errno;
	}
	(void)fcntl(s->upipe[1], F_SETPIPE_SZ, (int)s->np->cfg.buf_size);
	int cap = fcntl(s->upipe[1], F_GETPIPE_SZ);
	s->upipe_cap = cap > 0 ? (size_t)cap : 65536;
	return 0;
}

static ssize_t up_fill(struct np_session *s)
{
	if (s->replay_pos < s->replay_end)
		return np_cut_replay_fill(s); /* a restored job sends again what went up */
	if (s->retain || np_ring_pending(&s->up) > 0)
		return fill(s->ps.fd, &s->up);
	if (s->upipe_len >= s->upipe_cap)
		return -EAGAIN;
	if (s->upipe[0] < 0) {
		/* Many connections end without a byte from the job: see EOF without a pipe. */
		char c;
		ssize_t k = recv(s->ps.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if (k <= 0)
			return k == 0 ? 0 : -errno;
		int r = upipe_make(s);
		if (r < 0)
			return r == -EMFILE || r == -ENFILE ? fill(s->ps.fd, &s->up) : r;
	}
	ssize_t k = splice(s->ps.fd, NULL, s->upipe[1], NULL, s->upipe_cap - s->upipe_len,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (k < 0)
		return -errno;
	s->upipe_len += (size_t)k;
	return k;
}

static ssize_t up_drain(struct np_session *s)
{
	if (s->upipe_len == 0)
		return drain(s->us.fd, &s->up);
	ssize_t k = splice(s->upipe[0], NULL, s->us.fd, NULL, s->upipe_len,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (k < 0)
		return -errno;
	s->upipe_len -= (size_t)k;
	return k;
}

static void update_events(struct np_session *s)
{
	struct netproxy *np = s->np;
	uint32_t pe = 0, ue = 0;
	if (s->ps.fd >= 0 && !s->detached) {
		if (!s->job_eof && up_room(s))
			pe |= EPOLLIN;
		if (np_ring_pending(&s->down) > 0)
			pe |= EPOLLOUT;
	}
	if (s->connecting) {
		ue = EPOLLOUT;
	} else if (s->us.fd >= 0) {
		if (!s->peer_eof && !s->peer_reset && np_ring_space(&s->down) > 0)
			ue |= EPOLLIN;
		if (up_pending(s) > 0)
			ue |= EPOLLOUT;
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
		if (up && up_pending(s) > 0) {
			ssize_t k = up_drain(s);
			if (k > 0) {
				s->bytes_up += (uint64_t)k;
				progress = true;
			} else if (k < 0 && fatal((int)-k)) {
				s->peer_reset = true; /* upstream gone while we still had to send */
				s->up.mid = s->up.hi;
				s->upipe_len =
					0; /* the session ends: what the pipe holds is dropped */
			}
		}
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

	if (up && s->job_eof && !s->job_shut_sent && up_pending(s) == 0) {
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
