/* The supervisor side: pty master (or pipes) <-> attached clients.
 *
 * Fast path (master readable): read into a 128 KiB buffer until it is full, the fd is empty or
 * a read comes back short (interactive output is not held back), run the mode scanner once
 * (one memchr pass for plain text), copy into the ring and the log buffer, and write the bytes
 * to every client with one sendmsg (header + data for each 64 KiB message) when its queue is
 * empty, else append to its queue. A pty master gives at most ~4 KiB per read: batching the
 * reads of one wakeup saves one sendmsg, one client wakeup and one client write per read. The
 * screen model is NOT fed here: ptyproxy_idle() feeds it from the ring once output has been
 * quiet for IDLE_DELAY_MS, a client attach or a checkpoint catches it up synchronously. When
 * the ring overflows before the model saw the bytes, the oldest are dropped (model_lost counts
 * them): a flood repaints the screen anyway, the modes come from the scanner which saw every
 * byte, and the alternate screen is re-synchronised into the model after such a gap. The log
 * is written off the fast path too (outlog.c: on quiet, at most LOG_DELAY_MS late).
 *
 * Direct clients (HELLO_TTY_FD): the client hands over its terminal and the server reads the
 * keystrokes from it and writes the output to it itself, as tmux's server does; the client
 * process is out of both paths and only waits on the socket for MODES (what to reset if the
 * server dies), DETACH and EXITED. The server cuts the detach key out of the input. Before it
 * sends DETACH or EXITED it closes its terminal fd, so the client's reset sequence always comes
 * after the last byte the server wrote.
 *
 * Backpressure: while a writer client's queue is above QUEUE_HIGH, the master (or the pipes)
 * is not read, so the job blocks as on a slow terminal. A read-only client never slows the job:
 * past QUEUE_DROP it is disconnected. Input to the job is queued up to INPUT_HIGH, beyond
 * which writer clients are not read. */
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "ptyproxy-internal.h"

#define READ_BUF      (128u << 10)
#define READ_ROOM     4096 /* a batch ends when less room than this is left */
#define SMALL_READ    512  /* a read shorter than this ends a batch (interactive output) */
#define SEND_MSGS     (READ_BUF / PTYPROXY_MSG_MAX + 1) /* messages per sendmsg */
#define QUEUE_HIGH    (256u << 10)
#define QUEUE_DROP    (8u << 20)
#define INPUT_HIGH    (1u << 20)
#define IDLE_DELAY_MS 10
#define FEED_CHUNK    (32u << 10)
#define RBUF_CAP      (PTYPROXY_MSG_HDR + PTYPROXY_MSG_MAX)
#define LOG_DELAY_MS  250 /* the log is at most this late while output flows */
#define TTY_READ      4096

struct pp_queue {
	uint8_t *buf;
	size_t off, len, cap; /* pending bytes are buf[off .. off+len) */
};

struct pp_client {
	struct pp_client *next;
	int fd;			/* the attach connection */
	uint32_t watched;
	uint64_t attach_seq; /* 0 until HELLO */
	bool read_only, pipes;
	bool closing;	   /* no more output; closed once `out` is sent */
	bool exit_pending; /* direct: EXITED goes out once `tq` is written */
	struct winsize ws;
	pid_t pid;
	uint8_t *rbuf;
	size_t rlen;
	struct pp_queue out; /* bytes for the connection */
	/* Direct clients only: */
	int tty;		/* the user's terminal (nonblocking); -1 when relayed or let go */
	int pending_fd;		/* received with the HELLO bytes, not yet claimed by it */
	uint32_t tty_watched;
	struct pp_queue tq;	/* output not yet written to tty */
	int detach_key;		/* -1: none */
	uint32_t modes_sent;	/* what the client was last told (MODES) */
};

struct ptyproxy {
	struct ptyproxy_ops ops;
	void *ud;
	bool pipes;
	int master;		    /* pty mode */
	int fds[3];		    /* pipe mode: job stdin (write), stdout, stderr (read) */
	uint32_t w_master, w_fds[3]; /* events registered */
	bool master_hup, input_eof, pipes_released, hold, exited, adopt_termios;
	int wstatus;
	struct pp_queue inq;
	struct ptyproxy_modes modes;
	struct pp_model *model;
	uint8_t *ring;
	size_t ring_size;
	uint64_t head, fed, lost;
	bool resync_alt;
	uint64_t last_output_ns;
	struct pp_outlog log;
	bool have_log;
	struct pp_client *clients;
	uint64_t attach_seq;
	struct winsize ws;
	uint8_t rbuf[READ_BUF];
};

/* ---- small pieces ---- */

static void q_free(struct pp_queue *q)
{
	free(q->buf);
	*q = (struct pp_queue){0};
}

static int q_append(struct pp_queue *q, const void *p, size_t n)
{
	if (q->off && q->off + q->len + n > q->cap) {
		memmove(q->buf, q->buf + q->off, q->len);
		q->off = 0;
	}
	if (q->len + n > q->cap) {
		size_t cap = CK_MAX(q->cap * 2, q->len + n);
		cap = CK_MAX(cap, (size_t)4096);
		uint8_t *nb = realloc(q->buf, cap);
		if (!nb)
			return -ENOMEM;
		q->buf = nb;
		q->cap = cap;
	}
	memcpy(q->buf + q->off + q->len, p, n);
	q->len += n;
	return 0;
}

static void q_consume(struct pp_queue *q, size_t n)
{
	q->off += n;
	q->len -= n;
	if (!q->len)
		q->off = 0;
}

static void plog(struct ptyproxy *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void plog(struct ptyproxy *p, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (p->ops.log)
		p->ops.log(p->ud, line);
	else
		ck_debug("%s", line);
}

static void set_watch(struct ptyproxy *p, int fd, uint32_t *cur, uint32_t want)
{
	if (fd < 0 || *cur == want)
		return;
	if (p->ops.watch(p->ud, fd, want) == 0)
		*cur = want;
}

static size_t queued(const struct pp_client *c)
{
	return c->out.len + c->tq.len;
}

static bool writers_backed_up(const struct ptyproxy *p)
{
	for (const struct pp_client *c = p->clients; c; c = c->next)
		if (c->attach_seq && !c->read_only && queued(c) > QUEUE_HIGH)
			return true;
	return false;
}

static unsigned count_clients(const struct ptyproxy *p, bool writers_only)
{
	unsigned n = 0;
	for (const struct pp_client *c = p->clients; c; c = c->next)
		if (c->attach_seq && !c->closing && (!writers_only || !c->read_only))
			n++;
	return n;
}

/* Recompute what every fd should be watched for. */
static void update_watches(struct ptyproxy *p)
{
	bool paused = writers_backed_up(p);
	bool want_in = !p->hold && p->inq.len;
	if (!p->pipes) {
		uint32_t ev = (!paused && !p->master_hup ? EPOLLIN : 0) | (want_in ? EPOLLOUT : 0);
		set_watch(p, p->master, &p->w_master, ev);
	} else {
		bool read_out = !paused && (p->pipes_released || count_clients(p, false));
		set_watch(p, p->fds[0], &p->w_fds[0], want_in ? EPOLLOUT : 0);
		for (int i = 1; i < 3; i++)
			set_watch(p, p->fds[i], &p->w_fds[i], read_out ? EPOLLIN : 0);
	}
	bool input_full = p->inq.len > INPUT_HIGH;
	for (struct pp_client *c = p->clients; c; c = c->next) {
		bool held = input_full && c->attach_seq && !c->read_only;
		/* A direct client's keystrokes come from its terminal; its connection is always
		 * read (RESIZE, DETACH, and its end). */
		bool rd = !c->closing && (c->tty >= 0 || !held);
		set_watch(p, c->fd, &c->watched, (rd ? EPOLLIN : 0) | (c->out.len ? EPOLLOUT : 0));
		if (c->tty >= 0)
			set_watch(p, c->tty, &c->tty_watched,
				  (!c->closing && !held ? EPOLLIN : 0) | (c->tq.len ? EPOLLOUT : 0));
	}
}

/* ---- clients ---- */

/* Let go of a direct client's terminal (unwatched, closed, unsent output dropped). */
static void tty_release(struct ptyproxy *p, struct pp_client *c)
{
	if (c->tty < 0)
		return;
	if (c->tty_watched)
		p->ops.watch(p->ud, c->tty, 0);
	close(c->tty);
	c->tty = -1;
	c->tty_watched = 0;
	q_free(&c->tq);
}

static void client_close(struct ptyproxy *p, struct pp_client *c)
{
	struct pp_client **pp = &p->clients;
	while (*pp && *pp != c)
		pp = &(*pp)->next;
	if (*pp)
		*pp = c->next;
	tty_release(p, c);
	if (c->pending_fd >= 0)
		close(c->pending_fd);
	if (c->watched)
		p->ops.watch(p->ud, c->fd, 0);
	close(c->fd);
	q_free(&c->out);
	free(c->rbuf);
	free(c);
}

/* The client that @fd belongs to (its connection, or its terminal: *ret_tty). */
static struct pp_client *client_find(struct ptyproxy *p, int fd, bool *ret_tty)
{
	for (struct pp_client *c = p->clients; c; c = c->next)
		if (c->fd == fd || c->tty == fd) {
			*ret_tty = c->tty == fd;
			return c;
		}
	return NULL;
}

/* Write what is queued; returns -errno when the client is gone. */
static int client_flush(struct pp_client *c)
{
	while (c->out.len) {
		ssize_t n = send(c->fd, c->out.buf + c->out.off, c->out.len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		q_consume(&c->out, (size_t)n);
	}
	return 0;
}

/* Send @len bytes as messages of @type (split at PTYPROXY_MSG_MAX): up to SEND_MSGS messages
 * go out in one sendmsg (header and data iovecs) when nothing is queued; the rest is queued. */
static int client_send(struct pp_client *c, uint8_t type, const void *data, size_t len)
{
	const uint8_t *d = data;
	size_t off = 0;
	do {
		uint8_t hdr[SEND_MSGS][PTYPROXY_MSG_HDR];
		struct iovec iov[2 * SEND_MSGS];
		size_t niov = 0;
		for (size_t m = 0; m < SEND_MSGS && (off < len || !m); m++) {
			size_t k = CK_MIN(len - off, (size_t)PTYPROXY_MSG_MAX);
			int r = ptyproxy_msg_header(hdr[m], type, (uint32_t)k);
			if (r < 0)
				return r;
			iov[niov++] = (struct iovec){hdr[m], PTYPROXY_MSG_HDR};
			if (k)
				iov[niov++] = (struct iovec){(void *)(d + off), k};
			off += k;
		}
		size_t done = 0;
		if (!c->out.len) {
			struct msghdr mh = {.msg_iov = iov, .msg_iovlen = niov};
			ssize_t n;
			do
				n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
			while (n < 0 && errno == EINTR);
			if (n < 0 && errno != EAGAIN)
				return -errno;
			done = n < 0 ? 0 : (size_t)n;
		}
		for (size_t i = 0; i < niov; i++) {
			size_t skip = CK_MIN(done, iov[i].iov_len);
			done -= skip;
			if (skip < iov[i].iov_len) {
				int r = q_append(&c->out, (uint8_t *)iov[i].iov_base + skip,
						 iov[i].iov_len - skip);
				if (r < 0)
					return r;
			}
		}
	} while (off < len);
	return 0;
}

/* Write to a direct client's terminal what was queued for it. -errno when it is gone. */
static int tty_flush(struct pp_client *c)
{
	while (c->tq.len) {
		ssize_t n = write(c->tty, c->tq.buf + c->tq.off, c->tq.len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		q_consume(&c->tq, (size_t)n);
	}
	return 0;
}

/* Output for a direct client: straight to its terminal, the rest queued. */
static int tty_write(struct pp_client *c, const uint8_t *data, size_t len)
{
	while (!c->tq.len && len) {
		ssize_t n = write(c->tty, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0)
			return -errno;
		data += n;
		len -= (size_t)n;
	}
	return len ? q_append(&c->tq, data, len) : 0;
}

/* Output or a redraw: to the terminal of a direct client, else as a message. */
static int client_out(struct pp_client *c, uint8_t type, const void *data, size_t len)
{
	return c->tty >= 0 ? tty_write(c, data, len) : client_send(c, type, data, len);
}

/* Tell a direct client which modes its terminal may be in, should it have to reset it without
 * us (kill -9 of the supervisor). Sent before the bytes that turn a mode on are written. */
static int announce_modes(struct pp_client *c, uint32_t modes)
{
	if (modes == c->modes_sent)
		return 0;
	uint8_t b[4];
	ck_put_le32(b, modes);
	c->modes_sent = modes;
	return client_send(c, PTYPROXY_MSG_MODES, b, 4);
}

/* A direct client's session ends (@type DETACH or EXITED, @payload of 4 bytes for EXITED):
 * let go of its terminal first, then say so; the connection closes once that is sent. */
static void direct_end(struct ptyproxy *p, struct pp_client *c, uint8_t type, const void *payload)
{
	tty_release(p, c);
	c->exit_pending = false;
	c->closing = true;
	if (announce_modes(c, p->modes.modes) < 0 ||
	    client_send(c, type, payload, payload ? 4 : 0) < 0)
		client_close(p, c);
}

static void client_fail(struct ptyproxy *p, struct pp_client *c, const char *why)
{
	plog(p, "ptyproxy: attach client (fd %d): %s; closed", c->fd, why);
	client_close(p, c);
}

/* The window size follows the most recently attached writer client. */
static const struct pp_client *size_owner(const struct ptyproxy *p)
{
	const struct pp_client *best = NULL;
	for (struct pp_client *c = p->clients; c; c = c->next)
		if (c->attach_seq && !c->read_only && !c->pipes && !c->closing &&
		    (!best || c->attach_seq > best->attach_seq))
			best = c;
	return best;
}

static void feed_model(struct ptyproxy *p, size_t max);

static void apply_size(struct ptyproxy *p, const struct winsize *ws, bool nudge)
{
	if (p->pipes)
		return;
	struct winsize cur = {0};
	ioctl(p->master, TIOCGWINSZ, &cur);
	bool same = cur.ws_row == ws->ws_row && cur.ws_col == ws->ws_col;
	if (same && !nudge)
		return;
	/* The bytes already read were laid out for the old size: let the model see them first. */
	feed_model(p, SIZE_MAX);
	if (same) {
		/* The kernel sends no SIGWINCH for an unchanged size: go through rows-1. */
		struct winsize tmp = *ws;
		tmp.ws_row = ws->ws_row > 1 ? ws->ws_row - 1 : ws->ws_row + 1;
		ioctl(p->master, TIOCSWINSZ, &tmp);
	}
	ioctl(p->master, TIOCSWINSZ, ws);
	p->ws = *ws;
	pp_model_resize(p->model, ws->ws_row, ws->ws_col);
}

static int send_redraw(struct ptyproxy *p, struct pp_client *c)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r = ptyproxy_redraw(p, &buf, &len);
	return r < 0 || !len ? r : client_out(c, PTYPROXY_MSG_REDRAW, buf, len);
}

static void job_input(struct ptyproxy *p, const uint8_t *data, size_t len)
{
	if ((p->pipes && (p->fds[0] < 0 || p->input_eof)) || q_append(&p->inq, data, len) < 0)
		return;
}

/* One message from a client. Returns <0 (with a reason in *why) to close it. */
static int client_msg(struct ptyproxy *p, struct pp_client *c, const struct ptyproxy_msg *m,
		      const char **why)
{
	if (!c->attach_seq && m->type != PTYPROXY_MSG_HELLO) {
		*why = "message before hello";
		return -EBADMSG;
	}
	switch (m->type) {
	case PTYPROXY_MSG_HELLO: {
		struct ptyproxy_hello h;
		if (c->attach_seq || ptyproxy_hello_unpack(m, &h) < 0) {
			*why = c->attach_seq ? "second hello" : "malformed hello";
			return -EBADMSG;
		}
		if (!(h.flags & PTYPROXY_HELLO_TTY_FD) != (c->pending_fd < 0)) {
			*why = c->pending_fd < 0 ? "hello without its terminal descriptor"
						 : "descriptor sent without HELLO_TTY_FD";
			return -EBADMSG;
		}
		c->attach_seq = ++p->attach_seq;
		c->read_only = h.flags & PTYPROXY_HELLO_READ_ONLY;
		c->pipes = h.flags & PTYPROXY_HELLO_PIPES;
		c->ws = h.ws;
		if (c->pending_fd >= 0) {
			/* Served directly only on a pty job; otherwise the client relays. */
			int fd = TAKE_FD(c->pending_fd), fl = fcntl(fd, F_GETFL);
			if (!isatty(fd)) {
				close(fd);
				*why = "the descriptor sent is not a terminal";
				return -EBADMSG;
			}
			if (p->pipes || c->pipes || fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
				close(fd);
			} else {
				c->tty = fd;
				c->detach_key = h.detach_key == PTYPROXY_NO_DETACH_KEY ? -1
											: h.detach_key;
			}
		}
		/* From now on the job's output is read even if this client goes away (log only). */
		p->pipes_released = true;
		uint8_t w[4];
		ck_put_le32(w, (p->pipes ? PTYPROXY_WELCOME_PIPES : 0) |
				       (c->tty >= 0 ? PTYPROXY_WELCOME_TTY : 0));
		int r = client_send(c, PTYPROXY_MSG_WELCOME, w, 4);
		if (r >= 0 && c->tty >= 0)
			r = announce_modes(c, p->modes.modes);
		if (r >= 0 && !p->pipes && !c->pipes) {
			if (!c->read_only && p->adopt_termios) {
				p->adopt_termios = false;
				if ((h.flags & PTYPROXY_HELLO_TERMIOS) &&
				    tcsetattr(p->master, TCSANOW, &h.tio) < 0)
					plog(p, "ptyproxy: cannot take the client's terminal modes: %m");
			}
			if (!c->read_only)
				apply_size(p, &c->ws, true);
			if (!(h.flags & PTYPROXY_HELLO_NO_REDRAW))
				r = send_redraw(p, c);
		}
		if (r < 0)
			*why = "cannot send the screen";
		return r;
	}
	case PTYPROXY_MSG_INPUT:
		if (!c->read_only)
			job_input(p, m->payload, m->len);
		return 0;
	case PTYPROXY_MSG_INPUT_EOF:
		if (!c->read_only && p->pipes)
			p->input_eof = true;
		return 0;
	case PTYPROXY_MSG_RESIZE: {
		struct winsize ws;
		if (ptyproxy_winsize_unpack(m, &ws) < 0) {
			*why = "malformed resize";
			return -EBADMSG;
		}
		c->ws = ws;
		if (size_owner(p) == c)
			apply_size(p, &ws, false);
		return 0;
	}
	case PTYPROXY_MSG_DETACH:
		*why = NULL;
		return -ECONNRESET;
	case PTYPROXY_MSG_REDRAW:
		if (m->len || p->pipes) {
			*why = "malformed redraw request";
			return -EBADMSG;
		}
		return send_redraw(p, c);
	default:
		*why = "message type not accepted from a client";
		return -EBADMSG;
	}
}

/* recv, taking a terminal fd that comes with the HELLO bytes (SCM_RIGHTS) into pending_fd.
 * Any other descriptor is closed and fails the client (-EBADMSG). */
static ssize_t client_recv(struct pp_client *c, size_t room)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(4 * sizeof(int))];
	} cm;
	struct iovec iov = {c->rbuf + c->rlen, room};
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b)};
	ssize_t n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -errno;
	bool bad = mh.msg_flags & MSG_CTRUNC;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
			if (!bad && !c->attach_seq && c->pending_fd < 0) {
				c->pending_fd = fd;
			} else {
				close(fd);
				bad = true;
			}
		}
	}
	return bad ? -EBADMSG : n;
}

static void client_readable(struct ptyproxy *p, struct pp_client *c)
{
	for (int rounds = 0; rounds < 4; rounds++) {
		size_t room = RBUF_CAP - c->rlen;
		ssize_t n = client_recv(c, room);
		if (n == -EINTR)
			continue;
		if (n == -EAGAIN)
			return;
		if (n == -EBADMSG) {
			client_fail(p, c, "unexpected file descriptors");
			return;
		}
		if (n <= 0) {
			client_close(p, c); /* gone, or reset: no log, this is a normal end */
			return;
		}
		c->rlen += (size_t)n;
		size_t off = 0;
		for (;;) {
			struct ptyproxy_msg m;
			ssize_t k = ptyproxy_msg_parse(c->rbuf + off, c->rlen - off, &m);
			if (k < 0) {
				client_fail(p, c, "malformed message header");
				return;
			}
			if (k == 0)
				break;
			const char *why = NULL;
			if (client_msg(p, c, &m, &why) < 0) {
				if (why)
					client_fail(p, c, why);
				else
					client_close(p, c);
				return;
			}
			off += (size_t)k;
		}
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
		/* A short read took all there was: the input goes to the job now, without one more
		 * recv for EAGAIN first (epoll is level-triggered). */
		if ((size_t)n < room || p->inq.len > INPUT_HIGH)
			return;
	}
}

int ptyproxy_client_add(struct ptyproxy *p, int fd)
{
	int fl = fcntl(fd, F_GETFL);
	struct ucred cred = {0};
	socklen_t cl = sizeof(cred);
	struct pp_client *c = calloc(1, sizeof(*c));
	if (!c || fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    !(c->rbuf = malloc(RBUF_CAP))) {
		int r = c ? -errno : -ENOMEM;
		if (c)
			free(c->rbuf);
		free(c);
		close(fd);
		return r ? r : -ENOMEM;
	}
	c->fd = fd;
	c->tty = c->pending_fd = -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
		c->pid = cred.pid;
	c->next = p->clients;
	p->clients = c;
	update_watches(p);
	return 0;
}

/* ---- output path ---- */

static void ring_append(struct ptyproxy *p, const uint8_t *data, size_t n)
{
	if (n >= p->ring_size) {
		data += n - p->ring_size;
		p->head += n - p->ring_size;
		n = p->ring_size;
	}
	size_t at = (size_t)(p->head & (p->ring_size - 1));
	size_t k = CK_MIN(n, p->ring_size - at);
	memcpy(p->ring + at, data, k);
	memcpy(p->ring, data + k, n - k);
	p->head += n;
	if (p->head - p->fed > p->ring_size) {
		p->lost += p->head - p->ring_size - p->fed;
		p->fed = p->head - p->ring_size;
		p->resync_alt = true;
	}
}

static void deliver(struct ptyproxy *p, uint8_t type, const uint8_t *data, size_t n)
{
	uint32_t before = p->modes.modes;
	p->modes.seen = 0;
	if (!p->pipes) {
		ptyproxy_modes_scan(&p->modes, data, n);
		ring_append(p, data, n);
	}
	/* Every mode the terminal may pass through while these bytes are written. */
	uint32_t during = before | p->modes.seen | p->modes.modes;
	if (p->have_log)
		pp_outlog_append(&p->log, data, n);
	p->last_output_ns = ck_now_ns();
	for (struct pp_client *c = p->clients, *next; c; c = next) {
		next = c->next;
		if (!c->attach_seq || c->closing)
			continue;
		int r = 0;
		if (c->tty >= 0) {
			r = announce_modes(c, during | (c->tq.len ? c->modes_sent : 0));
			if (r >= 0)
				r = tty_write(c, data, n);
			if (r >= 0 && !c->tq.len)
				r = announce_modes(c, p->modes.modes);
			if (r < 0 && r != -ENOMEM) { /* the terminal is gone (hung up) */
				direct_end(p, c, PTYPROXY_MSG_DETACH, NULL);
				continue;
			}
		} else {
			r = client_send(c, type, data, n);
		}
		if (r < 0)
			client_close(p, c);
		else if (c->read_only && queued(c) > QUEUE_DROP)
			client_fail(p, c, "read-only client too far behind");
	}
}

/* Read a job-side fd in batches (see the top of the file), each delivered at once. @all: go on
 * until the fd is empty (else one batch, epoll is level-triggered). Returns PTYPROXY_HUP at end,
 * 0, or -errno. */
static int drain_fd(struct ptyproxy *p, int fd, uint8_t type, bool all)
{
	for (;;) {
		size_t len = 0;
		int ret = 0;
		bool empty = false;
		while (len + READ_ROOM <= sizeof(p->rbuf)) {
			ssize_t n = read(fd, p->rbuf + len, sizeof(p->rbuf) - len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN) {
				empty = true;
			} else if (n == 0 || (n < 0 && errno == EIO)) {
				ret = PTYPROXY_HUP; /* pty: every slave fd closed; pipe: EOF */
			} else if (n < 0) {
				ret = -errno;
			} else {
				len += (size_t)n;
				if (n >= SMALL_READ)
					continue;
			}
			break;
		}
		if (len)
			deliver(p, type, p->rbuf, len);
		if (ret || empty || !all || writers_backed_up(p))
			return ret;
	}
}

static void input_flush(struct ptyproxy *p)
{
	int fd = p->pipes ? p->fds[0] : p->master;
	while (!p->hold && p->inq.len && fd >= 0) {
		ssize_t n = write(fd, p->inq.buf + p->inq.off, p->inq.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) { /* the job closed its stdin (EPIPE) or hung up: drop the input */
			q_consume(&p->inq, p->inq.len);
			break;
		}
		q_consume(&p->inq, (size_t)n);
	}
	if (p->pipes && p->input_eof && !p->inq.len && p->fds[0] >= 0) {
		set_watch(p, p->fds[0], &p->w_fds[0], 0);
		close(p->fds[0]);
		p->fds[0] = -1;
	}
}

static void pipe_out_closed(struct ptyproxy *p, int i)
{
	set_watch(p, p->fds[i], &p->w_fds[i], 0);
	close(p->fds[i]);
	p->fds[i] = -1;
}

/* Close the clients that were told their session is over, once that is sent. */
static void finish_exited_clients(struct ptyproxy *p)
{
	for (struct pp_client *c = p->clients, *next; c; c = next) {
		next = c->next;
		if (c->closing && !c->exit_pending && !c->out.len)
			client_close(p, c);
	}
}

static void send_exited(struct ptyproxy *p, struct pp_client *c)
{
	uint8_t st[4];
	ck_put_le32(st, (uint32_t)p->wstatus);
	if (c->tty >= 0) {
		direct_end(p, c, PTYPROXY_MSG_EXITED, st);
	} else if (client_send(c, PTYPROXY_MSG_EXITED, st, 4) < 0) {
		client_close(p, c);
	} else {
		c->closing = true;
	}
}

/* Keystrokes typed on a direct client's terminal (the detach key cut out). */
static void tty_readable(struct ptyproxy *p, struct pp_client *c)
{
	uint8_t buf[TTY_READ];
	ssize_t n;
	do
		n = read(c->tty, buf, sizeof(buf));
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) { /* hung up (EIO) or gone: as a detach, the client sees SIGHUP anyway */
		direct_end(p, c, PTYPROXY_MSG_DETACH, NULL);
		return;
	}
	size_t len = (size_t)n;
	uint8_t *k = c->detach_key >= 0 ? memchr(buf, c->detach_key, len) : NULL;
	if (k)
		len = (size_t)(k - buf);
	if (len && !c->read_only)
		job_input(p, buf, len);
	if (k)
		direct_end(p, c, PTYPROXY_MSG_DETACH, NULL);
}

static void tty_event(struct ptyproxy *p, struct pp_client *c, uint32_t events)
{
	if (events & EPOLLOUT) {
		if (tty_flush(c) < 0) {
			if (c->exit_pending)
				send_exited(p, c);
			else
				direct_end(p, c, PTYPROXY_MSG_DETACH, NULL);
			return;
		}
		if (!c->tq.len && c->exit_pending) {
			send_exited(p, c);
			return;
		}
		if (!c->tq.len && announce_modes(c, p->modes.modes) < 0) {
			client_close(p, c);
			return;
		}
	}
	if (!c->closing && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		tty_readable(p, c);
}

int ptyproxy_handle(struct ptyproxy *p, int fd, uint32_t events)
{
	int ret = 0;
	if (!p->pipes && fd == p->master) {
		if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
			int r = drain_fd(p, fd, PTYPROXY_MSG_OUTPUT, false);
			if (r == PTYPROXY_HUP)
				p->master_hup = true;
			ret = r;
		}
		if (events & EPOLLOUT)
			input_flush(p);
	} else if (p->pipes && (fd == p->fds[0] || fd == p->fds[1] || fd == p->fds[2])) {
		if (fd == p->fds[0]) {
			input_flush(p);
		} else {
			int i = fd == p->fds[1] ? 1 : 2;
			int r = drain_fd(p, fd, i == 1 ? PTYPROXY_MSG_OUTPUT : PTYPROXY_MSG_STDERR,
					 false);
			if (r == PTYPROXY_HUP)
				pipe_out_closed(p, i);
			ret = r < 0 ? r : 0;
			if (p->fds[1] < 0 && p->fds[2] < 0)
				ret = PTYPROXY_HUP;
		}
	} else {
		bool tty = false;
		struct pp_client *c = client_find(p, fd, &tty);
		if (!c)
			return -ENOENT;
		if (tty) {
			tty_event(p, c, events);
		} else if (events & EPOLLOUT) {
			if (client_flush(c) < 0) {
				client_close(p, c);
				c = NULL;
			}
		}
		if (c && !tty && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
			client_readable(p, c);
		input_flush(p);
		finish_exited_clients(p);
	}
	update_watches(p);
	return ret;
}

/* ---- screen model ---- */

static void model_reply(void *ud, const char *s, size_t len)
{
	struct ptyproxy *p = ud;
	/* Answer terminal queries (DA, DSR) only while no terminal is there to answer them. */
	if (!count_clients(p, true))
		q_append(&p->inq, s, len);
}

static void feed_model(struct ptyproxy *p, size_t max)
{
	if (p->pipes)
		return;
	while (p->fed < p->head && max) {
		size_t at = (size_t)(p->fed & (p->ring_size - 1));
		size_t n = (size_t)CK_MIN(p->head - p->fed, (uint64_t)(p->ring_size - at));
		n = CK_MIN(n, max);
		pp_model_feed(p->model, p->ring + at, n);
		p->fed += n;
		max -= n;
	}
	if (p->fed == p->head && p->resync_alt) {
		/* A gap in what the model saw: make its screen buffer agree with the scanner. */
		bool want = p->modes.modes & PTYPROXY_MODE_ALTSCREEN;
		if (want != p->model->alt)
			pp_model_feed(p->model, (const uint8_t *)(want ? "\033[?1049h" : "\033[?1049l"),
				      8);
		p->resync_alt = false;
	}
}

int ptyproxy_idle(struct ptyproxy *p)
{
	int timeout = -1;
	if (!p->pipes && p->fed < p->head) {
		uint64_t quiet = (ck_now_ns() - p->last_output_ns) / 1000000;
		if (quiet >= IDLE_DELAY_MS) {
			feed_model(p, FEED_CHUNK);
			timeout = p->fed < p->head ? 0 : -1;
		} else {
			timeout = (int)(IDLE_DELAY_MS - quiet);
		}
	}
	if (p->have_log && p->log.pend) {
		/* Off the fast path: once output is quiet, or at most LOG_DELAY_MS late. */
		uint64_t now = ck_now_ns();
		uint64_t quiet = (now - p->last_output_ns) / 1000000;
		uint64_t age = (now - p->log.since_ns) / 1000000;
		if (quiet >= IDLE_DELAY_MS || age >= LOG_DELAY_MS) {
			pp_outlog_flush(&p->log);
		} else {
			int t = (int)CK_MIN(IDLE_DELAY_MS - quiet, LOG_DELAY_MS - age);
			timeout = timeout < 0 ? t : CK_MIN(timeout, t);
		}
	}
	input_flush(p); /* model replies */
	update_watches(p);
	return timeout;
}

int ptyproxy_redraw(struct ptyproxy *p, char **ret, size_t *ret_len)
{
	if (p->pipes)
		return -ENOTTY;
	feed_model(p, SIZE_MAX);
	struct pp_screen s;
	int r = pp_model_snapshot(p->model, &s);
	if (r < 0)
		return r;
	struct ck_buf b = {0};
	pp_screen_encode(&s, p->modes.modes, &b);
	pp_screen_free(&s);
	if (b.err) {
		r = b.err;
		ck_buf_free(&b);
		return r;
	}
	*ret = (char *)b.data;
	*ret_len = b.len;
	return 0;
}

/* ---- life cycle ---- */

static int proxy_alloc(const struct ptyproxy_config *cfg, struct ptyproxy **ret)
{
	struct ptyproxy *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->ops = *cfg->ops;
	p->ud = cfg->userdata;
	p->master = p->fds[0] = p->fds[1] = p->fds[2] = -1;
	if (cfg->log_dirfd >= 0) {
		int r = pp_outlog_open(&p->log, cfg->log_dirfd,
				       cfg->log_name ? cfg->log_name : "output.log",
				       cfg->log_size ? cfg->log_size : (4u << 20));
		if (r < 0) {
			free(p);
			return r;
		}
		p->have_log = true;
	}
	*ret = p;
	return 0;
}

int ptyproxy_new(const struct ptyproxy_config *cfg, int master_fd,
		 const struct ptyproxy_state *state, struct ptyproxy **ret)
{
	struct ptyproxy *p;
	size_t rs = cfg->ring_size ? cfg->ring_size : (1u << 20);
	if (rs & (rs - 1)) {
		close(master_fd);
		return -EINVAL;
	}
	int r = proxy_alloc(cfg, &p);
	if (r < 0) {
		close(master_fd);
		return r;
	}
	p->master = master_fd;
	p->ring_size = rs;
	p->adopt_termios = cfg->adopt_termios && !state;
	if (ioctl(master_fd, TIOCGWINSZ, &p->ws) < 0 || !p->ws.ws_row || !p->ws.ws_col)
		p->ws = (struct winsize){24, 80, 0, 0};
	p->ring = malloc(rs);
	r = p->ring ? pp_model_new(p->ws.ws_row, p->ws.ws_col, &p->model) : -ENOMEM;
	if (r < 0)
		goto fail;
	p->model->reply = model_reply;
	p->model->ud = p;
	ptyproxy_modes_init(&p->modes, state ? state->modes : 0);
	if (state) {
		/* Seed the model by drawing the saved screen into it. The job sees nothing. */
		struct ck_buf b = {0};
		struct pp_screen s = state->screen;
		pp_model_resize(p->model, s.rows, s.cols);
		pp_screen_encode(&s, state->modes, &b);
		if (!b.err)
			pp_model_feed(p->model, b.data, b.len);
		r = b.err;
		ck_buf_free(&b);
		pp_model_resize(p->model, p->ws.ws_row, p->ws.ws_col);
		if (r < 0)
			goto fail;
	}
	p->last_output_ns = ck_now_ns();
	update_watches(p);
	if (p->w_master != EPOLLIN) {
		r = -EIO;
		goto fail;
	}
	*ret = p;
	return 0;
fail:
	ptyproxy_free(p);
	return r;
}

int ptyproxy_new_pipes(const struct ptyproxy_config *cfg, const int sup_fds[3],
		       struct ptyproxy **ret)
{
	struct ptyproxy *p;
	int r = proxy_alloc(cfg, &p);
	if (r < 0) {
		for (int i = 0; i < 3; i++)
			close(sup_fds[i]);
		return r;
	}
	p->pipes = true;
	for (int i = 0; i < 3; i++)
		p->fds[i] = sup_fds[i];
	update_watches(p);
	*ret = p;
	return 0;
}

void ptyproxy_pipes_release(struct ptyproxy *p)
{
	p->pipes_released = true;
	update_watches(p);
}

void ptyproxy_free(struct ptyproxy *p)
{
	if (!p)
		return;
	while (p->clients)
		client_close(p, p->clients);
	if (p->w_master)
		p->ops.watch(p->ud, p->master, 0);
	if (p->master >= 0)
		close(p->master);
	for (int i = 0; i < 3; i++) {
		if (p->w_fds[i])
			p->ops.watch(p->ud, p->fds[i], 0);
		if (p->fds[i] >= 0)
			close(p->fds[i]);
	}
	if (p->have_log)
		pp_outlog_close(&p->log);
	pp_model_free(p->model);
	q_free(&p->inq);
	free(p->ring);
	free(p);
}

void ptyproxy_job_exited(struct ptyproxy *p, int wstatus)
{
	/* Everything the job wrote before it died is already in the pty or pipe buffers. */
	if (!p->pipes) {
		if (!p->master_hup && drain_fd(p, p->master, PTYPROXY_MSG_OUTPUT, true) ==
					      PTYPROXY_HUP)
			p->master_hup = true;
	} else {
		for (int i = 1; i < 3; i++)
			if (p->fds[i] >= 0 &&
			    drain_fd(p, p->fds[i], i == 1 ? PTYPROXY_MSG_OUTPUT : PTYPROXY_MSG_STDERR,
				     true) == PTYPROXY_HUP)
				pipe_out_closed(p, i);
	}
	p->exited = true;
	p->wstatus = wstatus;
	for (struct pp_client *c = p->clients, *next; c; c = next) {
		next = c->next;
		if (!c->attach_seq) {
			client_close(p, c);
		} else if (c->closing) {
			continue; /* told already (detached) */
		} else if (c->tty >= 0 && c->tq.len) {
			c->closing = c->exit_pending = true; /* EXITED once its terminal has it all */
		} else {
			send_exited(p, c);
		}
	}
	finish_exited_clients(p);
	if (p->have_log)
		pp_outlog_flush(&p->log);
	update_watches(p);
}

void ptyproxy_hold_input(struct ptyproxy *p, bool hold)
{
	p->hold = hold;
	if (!hold)
		input_flush(p);
	update_watches(p);
}

int ptyproxy_catch_up(struct ptyproxy *p)
{
	int r = 0;
	if (!p->pipes && !p->master_hup) {
		r = drain_fd(p, p->master, PTYPROXY_MSG_OUTPUT, true);
		if (r == PTYPROXY_HUP)
			p->master_hup = true;
	}
	feed_model(p, SIZE_MAX);
	if (p->have_log)
		pp_outlog_flush(&p->log);
	update_watches(p);
	return r < 0 ? r : 0;
}

void ptyproxy_get_info(const struct ptyproxy *p, struct ptyproxy_info *ret)
{
	unsigned connected = 0, direct = 0;
	for (const struct pp_client *c = p->clients; c; c = c->next) {
		connected++;
		direct += c->attach_seq && !c->closing && c->tty >= 0;
	}
	*ret = (struct ptyproxy_info){
		.connected = connected,
		.clients = count_clients(p, false),
		.writers = count_clients(p, true),
		.direct = direct,
		.pipes = p->pipes,
		.modes = p->modes.modes,
		.ws = p->ws,
		.output_bytes = p->head,
		.model_lag = p->head - p->fed,
		.model_lost = p->lost,
	};
}

int ptyproxy_state_save(struct ptyproxy *p, int dirfd)
{
	if (p->pipes)
		return -ENOTTY;
	struct ptyproxy_state s = {.modes = p->modes.modes, .ws = p->ws};
	if (tcgetattr(p->master, &s.tio) < 0)
		return -errno;
	feed_model(p, SIZE_MAX);
	int r = pp_model_snapshot(p->model, &s.screen);
	if (r < 0)
		return r;
	struct ck_buf b = {0};
	r = pp_state_pack(&s, &b);
	pp_screen_free(&s.screen);
	if (r >= 0)
		r = ck_write_file_atomic(dirfd, PTYPROXY_STATE_FILE, b.data, b.len, 0600);
	ck_buf_free(&b);
	return r;
}

size_t ptyproxy_list_clients(const struct ptyproxy *p, struct ptyproxy_client_info *ret,
			     size_t cap)
{
	const struct pp_client *owner = size_owner(p);
	size_t n = 0;
	for (const struct pp_client *c = p->clients; c; c = c->next) {
		if (!c->attach_seq || c->closing)
			continue;
		if (n < cap)
			ret[n] = (struct ptyproxy_client_info){
				.read_only = c->read_only,
				.pipes = c->pipes,
				.direct = c->tty >= 0,
				.size_owner = c == owner && !p->pipes,
				.ws = c->ws,
				.pid = c->pid,
			};
		n++;
	}
	return n;
}

/* ---- restart on a new job side (a restore while the supervisor lives) ---- */

void ptyproxy_notice(struct ptyproxy *p, const char *text)
{
	/* Clients only: the model and the log keep the job's own output; a restart redraws.
	 * Never in pipe mode, where the clients relay the job's stdout byte for byte. */
	if (p->pipes)
		return;
	for (struct pp_client *c = p->clients, *next; c; c = next) {
		next = c->next;
		if (c->attach_seq && !c->closing &&
		    client_send(c, PTYPROXY_MSG_OUTPUT, text, strlen(text)) < 0)
			client_close(p, c);
	}
	update_watches(p);
}

int ptyproxy_restart(struct ptyproxy *p, int master_fd, const int sup_fds[3],
		     const struct ptyproxy_state *state)
{
	if (p->exited || p->pipes != (master_fd < 0)) {
		if (master_fd >= 0)
			close(master_fd);
		for (int i = 0; sup_fds && i < 3; i++)
			close(sup_fds[i]);
		return -EINVAL;
	}
	q_free(&p->inq); /* typed for the job that is gone */
	if (p->pipes) {
		for (int i = 0; i < 3; i++) {
			set_watch(p, p->fds[i], &p->w_fds[i], 0);
			if (p->fds[i] >= 0)
				close(p->fds[i]);
			p->fds[i] = sup_fds[i];
		}
		/* input_eof stays: a client that ended the stdin ended it for the restored job. */
		update_watches(p);
		return 0;
	}
	set_watch(p, p->master, &p->w_master, 0);
	close(p->master);
	p->master = master_fd;
	p->master_hup = false;
	if (ioctl(master_fd, TIOCGWINSZ, &p->ws) < 0 || !p->ws.ws_row || !p->ws.ws_col)
		p->ws = (struct winsize){24, 80, 0, 0};
	/* The screen of the checkpoint, not what the old job printed after it. */
	p->fed = p->head;
	p->resync_alt = false;
	struct pp_model *m;
	int r = pp_model_new(p->ws.ws_row, p->ws.ws_col, &m);
	if (r < 0)
		return r;
	pp_model_free(p->model);
	p->model = m;
	p->model->reply = model_reply;
	p->model->ud = p;
	ptyproxy_modes_init(&p->modes, state ? state->modes : 0);
	if (state) {
		struct ck_buf b = {0};
		struct pp_screen s = state->screen;
		pp_model_resize(p->model, s.rows, s.cols);
		pp_screen_encode(&s, state->modes, &b);
		if (!b.err)
			pp_model_feed(p->model, b.data, b.len);
		r = b.err;
		ck_buf_free(&b);
		pp_model_resize(p->model, p->ws.ws_row, p->ws.ws_col);
		if (r < 0)
			return r;
	}
	for (struct pp_client *c = p->clients, *next; c; c = next) {
		next = c->next;
		if (c->attach_seq && !c->closing && send_redraw(p, c) < 0)
			client_close(p, c);
	}
	p->last_output_ns = ck_now_ns();
	update_watches(p);
	return 0;
}
