/* The attach client (ckptenv attach / run): relays the user's terminal to the supervisor.
 *
 * Terminal mode: the tty is set raw; keystrokes go out as INPUT messages (the detach key is cut
 * out), SIGWINCH becomes RESIZE, OUTPUT and REDRAW bytes are written to the terminal as they
 * are - the only thing the client does with them is run the mode scanner, to know which modes
 * to reset on the way out. On every way out (detach, job end, lost connection, SIGHUP/TERM/INT)
 * the modes the job turned on are reset and the saved termios is put back.
 *
 * Direct mode: the client hands the server its terminal (a new open file description of it,
 * SCM_RIGHTS with the HELLO), and if the WELCOME says the server took it, the client does not
 * read it any more: the server writes the output and reads the keystrokes itself, one process
 * hop fewer each way. Only during a flood the server sends OUTPUT for the client to write (the
 * two processes then share the work, as in a relay), and a SYNC that the client answers once
 * that is written, so the server knows when it may write the terminal itself again. The client
 * keeps the raw mode, turns SIGWINCH into RESIZE, and learns from MODES (and the relayed
 * output) what to reset; the server lets go of the terminal before it sends
 * DETACH or EXITED, and when the client ends on a signal it sends DETACH and waits for the
 * server to let go (the connection closes) before it resets the terminal. If the supervisor
 * dies, its fd dies with it and the client resets the terminal as on any other way out.
 *
 * Pipe mode (stdin not a tty): stdin -> INPUT, end of stdin -> INPUT_EOF, OUTPUT -> stdout,
 * STDERR -> stderr, byte for byte. Input is read only while little is queued for the socket,
 * and the socket is always read, so a job that stops reading cannot deadlock the relay. */
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "ptyproxy-internal.h"

#define SEND_HIGH (256u << 10)
#define RBUF_CAP  (256u << 10) /* several OUTPUT messages per recv, one writev for all */
#define RELEASE_WAIT_MS 2000   /* a direct client ending on a signal waits this long at most */

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
	int saved = errno;
	uint8_t b = (uint8_t)sig;
	if (write(sig_pipe[1], &b, 1) < 0) {
		/* full: a signal of this kind is pending anyway */
	}
	errno = saved;
}

static const int handled[] = {SIGWINCH, SIGHUP, SIGTERM, SIGINT, SIGQUIT};

void ptyproxy_client_opts_init(struct ptyproxy_client_opts *o)
{
	*o = (struct ptyproxy_client_opts){
		.in_fd = 0, .out_fd = 1, .err_fd = 2, .detach_key = 0x1c, .term = NULL};
}

/* Blocking write of all bytes, also to an fd someone left O_NONBLOCK. */
static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			poll(&pfd, 1, -1);
			continue;
		}
		if (k < 0)
			return -errno;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

struct cstate {
	int sock;
	const struct ptyproxy_client_opts *o;
	bool tty;
	bool offered; /* the terminal went with the HELLO: wait for WELCOME before reading it */
	bool welcomed;
	bool direct; /* the server took the terminal: do not read it */
	struct ptyproxy_modes modes;
	uint8_t *rbuf;
	size_t rlen;
	uint8_t *sbuf; /* pending bytes for the socket */
	size_t slen, scap;
	int wstatus;
	bool out_gone[3]; /* pipe mode: our stdout [1] / stderr [2] lost its reader */
};

static int queue_msg(struct cstate *s, uint8_t type, const void *data, size_t len)
{
	if (s->slen + PTYPROXY_MSG_HDR + len > s->scap) {
		size_t cap = CK_MAX(s->scap * 2, s->slen + PTYPROXY_MSG_HDR + len);
		uint8_t *nb = realloc(s->sbuf, cap);
		if (!nb)
			return -ENOMEM;
		s->sbuf = nb;
		s->scap = cap;
	}
	int r = ptyproxy_msg_header(s->sbuf + s->slen, type, (uint32_t)len);
	if (r < 0)
		return r;
	if (len)
		memcpy(s->sbuf + s->slen + PTYPROXY_MSG_HDR, data, len);
	s->slen += PTYPROXY_MSG_HDR + len;
	return 0;
}

static int flush_sock(struct cstate *s)
{
	size_t off = 0;
	while (off < s->slen) {
		ssize_t n = send(s->sock, s->sbuf + off, s->slen - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0)
			return -errno;
		off += (size_t)n;
	}
	memmove(s->sbuf, s->sbuf + off, s->slen - off);
	s->slen -= off;
	return 0;
}

/* Write the gathered iovecs to @fd in as few syscalls as possible. */
static int writev_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t k = writev(fd, iov, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			poll(&pfd, 1, -1);
			continue;
		}
		if (k < 0)
			return -errno;
		while (n > 0 && (size_t)k >= iov->iov_len) {
			k -= (ssize_t)iov->iov_len;
			iov++, n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + k;
			iov->iov_len -= (size_t)k;
		}
	}
	return 0;
}

/* Write the gathered payloads for @fd. In pipe mode an output whose reader went away (EPIPE,
 * `ckptenv run -- yes | head -1`) is not the end of the session: the server is told to close
 * the job's end of it (the job then gets SIGPIPE, as in a pipeline) and later payloads for it
 * are dropped. Returns 0, or -errno when the session cannot go on. */
static int out_write(struct cstate *s, int fd, struct iovec *iov, int n)
{
	int r = writev_all(fd, iov, n);
	if (r != -EPIPE || s->tty)
		return r;
	for (uint32_t i = 1; i <= 2; i++) {
		if ((i == 1 ? s->o->out_fd : s->o->err_fd) != fd || s->out_gone[i])
			continue;
		s->out_gone[i] = true;
		uint8_t le[4];
		ck_put_le32(le, i);
		if ((r = queue_msg(s, PTYPROXY_MSG_OUTPUT_CLOSED, le, 4)) < 0)
			return r;
	}
	return 0;
}

static bool out_is_gone(const struct cstate *s, int fd)
{
	return (s->out_gone[1] && fd == s->o->out_fd) || (s->out_gone[2] && fd == s->o->err_fd);
}

/* Handle what the server sent: consecutive payloads for the same fd go out in one writev.
 * Returns an enum ptyproxy_end when the session is over, -1 to go on. */
static int from_server(struct cstate *s)
{
	ssize_t n = recv(s->sock, s->rbuf + s->rlen, RBUF_CAP - s->rlen, MSG_DONTWAIT);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return -1;
	if (n <= 0)
		return PTYPROXY_END_LOST;
	s->rlen += (size_t)n;
	size_t off = 0;
	int end = -1;
	struct iovec iov[64];
	int niov = 0, iov_fd = -1;
	while (end < 0) {
		struct ptyproxy_msg m;
		ssize_t k = ptyproxy_msg_parse(s->rbuf + off, s->rlen - off, &m);
		if (k < 0)
			return PTYPROXY_END_LOST;
		if (k == 0)
			break;
		off += (size_t)k;
		int fd = -1;
		switch (m.type) {
		case PTYPROXY_MSG_OUTPUT:
		case PTYPROXY_MSG_REDRAW:
			fd = s->o->out_fd;
			if (s->tty)
				ptyproxy_modes_scan(&s->modes, m.payload, m.len);
			break;
		case PTYPROXY_MSG_STDERR:
			fd = s->tty ? s->o->out_fd : s->o->err_fd;
			break;
		case PTYPROXY_MSG_NOTICE:
			fd = s->tty ? -1 : s->o->err_fd;
			break;
		case PTYPROXY_MSG_WELCOME:
			s->welcomed = true;
			s->direct = s->offered && (ck_get_le32(m.payload) & PTYPROXY_WELCOME_TTY);
			break;
		case PTYPROXY_MSG_MODES:
			if (s->direct)
				s->modes.modes = ck_get_le32(m.payload);
			break;
		case PTYPROXY_MSG_SYNC:
			/* Everything before it is written once the gathered iovecs are. */
			if (niov && out_write(s, iov_fd, iov, niov) < 0)
				return PTYPROXY_END_LOST;
			niov = 0;
			if (queue_msg(s, PTYPROXY_MSG_SYNCED, m.payload, 4) < 0)
				return PTYPROXY_END_LOST;
			break;
		case PTYPROXY_MSG_EXITED:
			s->wstatus = (int)ck_get_le32(m.payload);
			end = PTYPROXY_END_EXITED;
			break;
		case PTYPROXY_MSG_DETACH:
			end = PTYPROXY_END_DETACHED;
			break;
		default: /* anything newer: nothing to do */
			break;
		}
		if (fd < 0 || !m.len || out_is_gone(s, fd))
			continue;
		if (niov && (fd != iov_fd || niov == (int)CK_ARRAY_SIZE(iov))) {
			if (out_write(s, iov_fd, iov, niov) < 0)
				return PTYPROXY_END_LOST;
			niov = 0;
		}
		iov_fd = fd;
		iov[niov++] = (struct iovec){(void *)m.payload, m.len};
	}
	if (niov && out_write(s, iov_fd, iov, niov) < 0)
		return PTYPROXY_END_LOST;
	memmove(s->rbuf, s->rbuf + off, s->rlen - off);
	s->rlen -= off;
	return end;
}

/* Returns an enum ptyproxy_end, -1 to go on, or -errno. */
static int from_user(struct cstate *s, bool *in_eof)
{
	uint8_t buf[65536];
	size_t cap = s->tty ? 4096 : sizeof(buf);
	ssize_t n = read(s->o->in_fd, buf, cap);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return -1;
	if (n < 0 && !s->tty)
		return -errno;
	if (n <= 0) {
		*in_eof = true;
		if (!s->tty && !s->o->read_only)
			return queue_msg(s, PTYPROXY_MSG_INPUT_EOF, NULL, 0) < 0 ? -ENOMEM : -1;
		return -1;
	}
	size_t len = (size_t)n;
	bool detach = false;
	if (s->tty && s->o->detach_key >= 0) {
		uint8_t *k = memchr(buf, s->o->detach_key, len);
		if (k) {
			len = (size_t)(k - buf);
			detach = true;
		}
	}
	if (len && !s->o->read_only && queue_msg(s, PTYPROXY_MSG_INPUT, buf, len) < 0)
		return -ENOMEM;
	if (detach) {
		queue_msg(s, PTYPROXY_MSG_DETACH, NULL, 0);
		return PTYPROXY_END_DETACHED;
	}
	return -1;
}

static int send_size(struct cstate *s)
{
	struct winsize ws;
	if (ioctl(s->o->in_fd, TIOCGWINSZ, &ws) < 0 || !ws.ws_row || !ws.ws_col)
		return 0;
	uint8_t b[8];
	ptyproxy_winsize_pack(&ws, b);
	return queue_msg(s, PTYPROXY_MSG_RESIZE, b, 8);
}

/* Direct mode, ending on our side: ask the server to let go of the terminal and wait until it
 * did (it closes the connection), so that nothing it writes comes after our reset. */
static void release_tty(struct cstate *s)
{
	if (queue_msg(s, PTYPROXY_MSG_DETACH, NULL, 0) < 0)
		return;
	uint64_t end = ck_now_ns() + RELEASE_WAIT_MS * 1000000ull;
	for (uint64_t now; (now = ck_now_ns()) < end;) {
		if (flush_sock(s) < 0)
			return;
		struct pollfd pfd = {.fd = s->sock, .events = POLLIN | (s->slen ? POLLOUT : 0)};
		int n = poll(&pfd, 1, (int)((end - now) / 1000000u) + 1);
		if (n < 0 && errno != EINTR)
			return;
		if (n > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR)) && from_server(s) >= 0)
			return;
	}
}

static int run_loop(struct cstate *s)
{
	bool in_eof = false;
	for (;;) {
		bool read_in = !in_eof && s->slen <= SEND_HIGH && !s->direct &&
			       (!s->offered || s->welcomed);
		struct pollfd pfd[3] = {
			{.fd = s->sock, .events = POLLIN | (s->slen ? POLLOUT : 0)},
			{.fd = read_in ? s->o->in_fd : -1, .events = POLLIN},
			{.fd = sig_pipe[0], .events = POLLIN},
		};
		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (pfd[2].revents & POLLIN) {
			uint8_t sigs[16];
			ssize_t n = read(sig_pipe[0], sigs, sizeof(sigs));
			for (ssize_t i = 0; i < n; i++) {
				if (sigs[i] != SIGWINCH) {
					if (!s->o->on_signal ||
					    s->o->on_signal(s->o->userdata, sigs[i])) {
						if (s->direct)
							release_tty(s);
						return PTYPROXY_END_SIGNAL;
					}
					continue;
				}
				if (s->tty && send_size(s) < 0)
					return -ENOMEM;
			}
		}
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			int end = from_server(s);
			if (end >= 0)
				return end;
		}
		if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			int end = from_user(s, &in_eof);
			if (end != -1) {
				flush_sock(s);
				return end;
			}
		}
		if (s->slen && flush_sock(s) < 0)
			return PTYPROXY_END_LOST;
	}
}

/* A new open file description of the user's terminal for the server (its O_NONBLOCK is then
 * not ours nor the shell's), when in_fd and out_fd are the same terminal; else -1 (relay). */
static int own_tty(const struct ptyproxy_client_opts *o)
{
	struct stat a, b, c;
	if (fstat(o->in_fd, &a) < 0 || fstat(o->out_fd, &b) < 0 || !S_ISCHR(a.st_mode) ||
	    !S_ISCHR(b.st_mode) || a.st_rdev != b.st_rdev)
		return -1;
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", o->in_fd);
	int fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0 && (fstat(fd, &c) < 0 || c.st_rdev != a.st_rdev || !isatty(fd))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Send the HELLO (already queued alone in s->sbuf) with @fd attached. */
static int send_with_fd(struct cstate *s, int fd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} cm = {0};
	struct iovec iov = {s->sbuf, s->slen};
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b)};
	struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &fd, sizeof(int));
	ssize_t n;
	do
		n = sendmsg(s->sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	memmove(s->sbuf, s->sbuf + n, s->slen - (size_t)n);
	s->slen -= (size_t)n;
	return 0;
}

int ptyproxy_client_run(int sock_fd, const struct ptyproxy_client_opts *o, int *ret_wstatus)
{
	struct cstate s = {.sock = sock_fd, .o = o, .tty = !o->pipes && isatty(o->in_fd)};
	struct termios saved, raw;
	struct sigaction old[CK_ARRAY_SIZE(handled)];
	int r, tty_fd;

	s.rbuf = malloc(RBUF_CAP);
	if (!s.rbuf)
		return -ENOMEM;
	if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		free(s.rbuf);
		return -errno;
	}
	sigset_t hset, old_mask;
	sigemptyset(&hset);
	for (size_t i = 0; i < CK_ARRAY_SIZE(handled); i++) {
		struct sigaction sa = {.sa_handler = on_signal};
		sigemptyset(&sa.sa_mask);
		sigaction(handled[i], &sa, &old[i]);
		sigaddset(&hset, handled[i]);
	}
	/* Handlers first, then unblock: one the caller held pending is taken, not fatal. */
	sigprocmask(SIG_UNBLOCK, &hset, &old_mask);

	struct ptyproxy_hello h = {.flags = (o->read_only ? PTYPROXY_HELLO_READ_ONLY : 0) |
					    (s.tty ? 0 : PTYPROXY_HELLO_PIPES) |
					    (o->no_redraw ? PTYPROXY_HELLO_NO_REDRAW : 0)};
	const char *term = o->term ? o->term : getenv("TERM");
	snprintf(h.term, sizeof(h.term), "%s", term ? term : "");
	if (s.tty) {
		if (ioctl(o->in_fd, TIOCGWINSZ, &h.ws) < 0 || !h.ws.ws_row || !h.ws.ws_col)
			h.ws = (struct winsize){24, 80, 0, 0};
		if (tcgetattr(o->in_fd, &saved) < 0) {
			r = -errno;
			goto out_signals;
		}
		h.flags |= PTYPROXY_HELLO_TERMIOS;
		h.tio = saved;
		raw = saved;
		cfmakeraw(&raw);
		if (tcsetattr(o->in_fd, TCSADRAIN, &raw) < 0) {
			r = -errno;
			goto out_signals;
		}
	}
	/* Only to a server of our own uid: whoever runs it could keep a copy of the terminal and
	 * read what is typed there after the detach (root attaching to a user's job relays). */
	struct ucred peer = {0};
	socklen_t pl = sizeof(peer);
	bool same_uid = getsockopt(sock_fd, SOL_SOCKET, SO_PEERCRED, &peer, &pl) == 0 &&
			peer.uid == geteuid();
	tty_fd = s.tty && !o->relay && same_uid ? own_tty(o) : -1;
	if (tty_fd >= 0) {
		h.flags |= PTYPROXY_HELLO_TTY_FD;
		h.detach_key = o->detach_key < 0 ? PTYPROXY_NO_DETACH_KEY : (uint16_t)o->detach_key;
	}
	uint8_t hb[PTYPROXY_HELLO_MAX];
	size_t hl = ptyproxy_hello_pack(&h, hb, sizeof(hb));
	r = queue_msg(&s, PTYPROXY_MSG_HELLO, hb, hl);
	if (r >= 0 && tty_fd >= 0) {
		r = send_with_fd(&s, tty_fd);
		s.offered = true;
	}
	if (tty_fd >= 0)
		close(tty_fd); /* the server has its own copy now */
	if (r >= 0)
		r = run_loop(&s);

	if (s.tty) {
		char reset[512];
		size_t n = ptyproxy_modes_reset_seq(s.modes.modes, reset, sizeof(reset));
		write_all(o->out_fd, (const uint8_t *)reset, n);
		tcsetattr(o->in_fd, TCSADRAIN, &saved);
	}
out_signals:
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	for (size_t i = 0; i < CK_ARRAY_SIZE(handled); i++)
		sigaction(handled[i], &old[i], NULL);
	close(sig_pipe[0]);
	close(sig_pipe[1]);
	sig_pipe[0] = sig_pipe[1] = -1;
	free(s.rbuf);
	free(s.sbuf);
	if (r == PTYPROXY_END_EXITED && ret_wstatus)
		*ret_wstatus = s.wstatus;
	return r;
}
