/* The server's attach connections: HELLO and the other client messages, the window size
 * (the most recently attached writer's), output to relayed clients (OUTPUT messages, one
 * sendmsg per batch) and to direct ones.
 *
 * Direct clients (HELLO_TTY_FD): the client hands over its terminal and the server reads the
 * keystrokes from it and writes the output to it itself, as tmux's server does; the client
 * process is out of both paths and only waits on the socket for MODES (what to reset if the
 * server dies), DETACH and EXITED. The server cuts the detach key out of the input. Before it
 * sends DETACH or EXITED it closes its terminal fd, so the client's reset sequence always comes
 * after the last byte the server wrote.
 *
 * A client is closed, with one log line, for anything malformed: a bad header, a message
 * before HELLO, a second HELLO, a type a client may not send, descriptors it should not send.
 * A read-only client never slows the job: past QUEUE_DROP bytes behind it is disconnected. */
#include <sys/epoll.h>
#include <sys/socket.h>

#include "ptyproxy-internal.h"

#define SEND_MSGS  (PP_READ_BUF / PTYPROXY_MSG_MAX + 1) /* messages per sendmsg */
#define QUEUE_DROP (8u << 20)
#define RBUF_CAP   (PTYPROXY_MSG_HDR + PTYPROXY_MSG_MAX)
#define TTY_READ   4096
/* A batch this big (two full reads of a pty master, or more) is a flood: relayed, see
 * pp_clients_output. Echoes and prompts are far smaller. */
#define BULK_OUT   (8u << 10)

static size_t queued(const struct pp_client *c)
{
	return c->out.len + c->tq.len;
}

bool pp_writers_backed_up(const struct ptyproxy *p)
{
	for (const struct pp_client *c = p->clients; c; c = c->next)
		if (c->attach_seq && !c->read_only && queued(c) > PP_QUEUE_HIGH)
			return true;
	return false;
}

unsigned pp_count_clients(const struct ptyproxy *p, bool writers_only)
{
	unsigned n = 0;
	for (const struct pp_client *c = p->clients; c; c = c->next)
		if (c->attach_seq && !c->closing && (!writers_only || !c->read_only))
			n++;
	return n;
}

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
	pp_q_free(&c->tq);
}

void pp_client_close(struct ptyproxy *p, struct pp_client *c)
{
	struct pp_client **pp = &p->clients;
	while (*pp && *pp != c)
		pp = &(*pp)->next;
	if (*pp)
		*pp = c->next;
	/* The size goes back to the newest writer still attached, as with tmux (a no-op unless
	 * @c had it). */
	if (!p->exited && p->master >= 0)
		pp_clients_size(p);
	tty_release(p, c);
	if (c->pending_fd >= 0)
		close(c->pending_fd);
	if (c->watched)
		p->ops.watch(p->ud, c->fd, 0);
	close(c->fd);
	pp_q_free(&c->out);
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
		pp_q_consume(&c->out, (size_t)n);
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
				int r = pp_q_append(&c->out, (uint8_t *)iov[i].iov_base + skip,
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
		pp_q_consume(&c->tq, (size_t)n);
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
	return len ? pp_q_append(&c->tq, data, len) : 0;
}

/* Output or a redraw: to the terminal of a direct client, else as a message. */
static int client_out(struct pp_client *c, uint8_t type, const void *data, size_t len)
{
	if (c->tty >= 0 && !c->relay_out)
		return tty_write(c, data, len);
	if (c->tty >= 0)
		c->sync_wait = 0; /* relayed after the SYNC out: its answer no longer covers all */
	return client_send(c, type, data, len);
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
		pp_client_close(p, c);
}

static void client_fail(struct ptyproxy *p, struct pp_client *c, const char *why)
{
	pp_log(p, "ptyproxy: attach client (fd %d): %s; closed", c->fd, why);
	pp_client_close(p, c);
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
	pp_feed_model(p, SIZE_MAX);
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

void pp_clients_size(struct ptyproxy *p)
{
	const struct pp_client *o = size_owner(p);
	if (o && o->ws.ws_row && o->ws.ws_col)
		apply_size(p, &o->ws, false);
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
	if ((p->pipes && (p->fds[0] < 0 || p->input_eof)) || pp_q_append(&p->inq, data, len) < 0)
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
			if (p->pipes || c->pipes || fl < 0 ||
			    fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
				close(fd);
			} else {
				c->tty = fd;
				c->detach_key =
					h.detach_key == PTYPROXY_NO_DETACH_KEY ? -1 : h.detach_key;
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
					pp_log(p, "ptyproxy: cannot take the client's terminal "
						  "modes: %m");
			}
			if (!c->read_only)
				apply_size(p, &c->ws, true);
			if (!(h.flags & PTYPROXY_HELLO_NO_REDRAW))
				r = send_redraw(p, c);
		}
		if (r >= 0 && p->attach_notice) {
			const uint8_t *t = (const uint8_t *)p->attach_notice;
			size_t n = strlen(p->attach_notice);
			r = c->tty >= 0 ? tty_write(c, t, n)
					: client_send(c, p->pipes ? PTYPROXY_MSG_NOTICE : PTYPROXY_MSG_OUTPUT,
						      t, n);
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
	case PTYPROXY_MSG_OUTPUT_CLOSED: {
		uint32_t i = ck_get_le32(m->payload);
		if (!p->pipes || (i != 1 && i != 2)) {
			*why = "malformed output-closed";
			return -EBADMSG;
		}
		if (!c->read_only && p->fds[i] >= 0)
			pp_pipe_out_closed(p, (int)i);
		return 0;
	}
	case PTYPROXY_MSG_SYNCED:
		if (c->tty >= 0 && c->relay_out && c->sync_wait &&
		    ck_get_le32(m->payload) == c->sync_wait) {
			/* The client wrote all we relayed: write the terminal ourselves again. It
			 * scanned that output for modes itself; tell it ours. */
			c->relay_out = false;
			c->sync_wait = 0;
			c->modes_sent = ~p->modes.modes;
			return announce_modes(c, p->modes.modes);
		}
		return 0; /* a stale answer (more was relayed since), or no longer direct */
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
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cm.b,
			    .msg_controllen = sizeof(cm.b)};
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
			pp_client_close(p, c); /* gone, or reset: no log, this is a normal end */
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
					pp_client_close(p, c);
				return;
			}
			off += (size_t)k;
		}
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
		/* A short read took all there was: the input goes to the job now, without one more
		 * recv for EAGAIN first (epoll is level-triggered). */
		if ((size_t)n < room || p->inq.len > PP_INPUT_HIGH)
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
	pp_update_watches(p);
	return 0;
}

/* Close the clients that were told their session is over, once that is sent. */
void pp_clients_finish(struct ptyproxy *p)
{
	for (struct pp_client *c = p->clients, *next; c; c = next) {
		next = c->next;
		if (c->closing && !c->exit_pending && !c->out.len)
			pp_client_close(p, c);
	}
}

static void send_exited(struct ptyproxy *p, struct pp_client *c)
{
	uint8_t st[4];
	ck_put_le32(st, (uint32_t)p->wstatus);
	if (c->tty >= 0) {
		direct_end(p, c, PTYPROXY_MSG_EXITED, st);
	} else if (client_send(c, PTYPROXY_MSG_EXITED, st, 4) < 0) {
		pp_client_close(p, c);
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
			pp_client_close(p, c);
			return;
		}
	}
	if (!c->closing && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		tty_readable(p, c);
}

size_t ptyproxy_list_clients(const struct ptyproxy *p, struct ptyproxy_client_info *ret, size_t cap)
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

void pp_clients_watch(struct ptyproxy *p)
{
	bool input_full = p->inq.len > PP_INPUT_HIGH;
	for (struct pp_client *c = p->clients; c; c = c->next) {
		bool held = input_full && c->attach_seq && !c->read_only;
		/* A direct client's keystrokes come from its terminal; its connection is always
		 * read (RESIZE, DETACH, and its end). */
		bool rd = !c->closing && (c->tty >= 0 || !held);
		pp_set_watch(p, c->fd, &c->watched,
			     (rd ? EPOLLIN : 0) | (c->out.len ? EPOLLOUT : 0));
		if (c->tty >= 0)
			pp_set_watch(p, c->tty, &c->tty_watched,
				     (!c->closing && !held ? EPOLLIN : 0) |
					     (c->tq.len ? EPOLLOUT : 0));
	}
}

/* Ask a relaying direct client to say when it wrote all it got so far (SYNCED). */
static int send_sync(struct pp_client *c)
{
	uint8_t b[4];
	if (!++c->sync_seq)
		c->sync_seq = 1;
	ck_put_le32(b, c->sync_seq);
	c->sync_wait = c->sync_seq;
	return client_send(c, PTYPROXY_MSG_SYNC, b, 4);
}

bool pp_clients_quiet(struct ptyproxy *p, bool send)
{
	bool waiting = false;
	for (struct pp_client *c = p->clients, *next; c; c = next) {
		next = c->next;
		if (c->tty < 0 || !c->relay_out || c->sync_wait || c->closing)
			continue;
		if (!send)
			waiting = true;
		else if (send_sync(c) < 0)
			pp_client_close(p, c);
	}
	return waiting;
}

void pp_clients_output(struct ptyproxy *p, uint8_t type, const uint8_t *data, size_t n,
		       uint32_t during)
{
	for (struct pp_client *c = p->clients, *next; c; c = next) {
		next = c->next;
		if (!c->attach_seq || c->closing)
			continue;
		int r = 0;
		/* A flood (a big batch): the client writes it, on the other CPU, while we read
		 * the next batch. Switched only with nothing queued for the terminal, so the
		 * order holds; back once output was quiet and the client answered a SYNC sent
		 * then (pp_clients_quiet), not after every small batch: a flood's batches are
		 * small whenever the job falls behind, and a switch back then had us write the
		 * terminal 4 KiB per wakeup, in the middle of the flood. */
		if (c->tty >= 0 && !c->relay_out && n >= BULK_OUT && !c->tq.len)
			c->relay_out = true;
		if (c->tty >= 0 && c->relay_out) {
			r = client_send(c, type, data, n);
			c->sync_wait = 0;
		} else if (c->tty >= 0) {
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
			pp_client_close(p, c);
		else if (c->read_only && queued(c) > QUEUE_DROP)
			client_fail(p, c, "read-only client too far behind");
	}
}

int pp_client_event(struct ptyproxy *p, int fd, uint32_t events)
{
	bool tty = false;
	struct pp_client *c = client_find(p, fd, &tty);
	if (!c)
		return -ENOENT;
	if (tty) {
		tty_event(p, c, events);
		return 0;
	}
	if ((events & EPOLLOUT) && client_flush(c) < 0) {
		pp_client_close(p, c);
		return 0;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		client_readable(p, c);
	return 0;
}

bool ptyproxy_output_pending(const struct ptyproxy *p)
{
	for (const struct pp_client *c = p->clients; c; c = c->next)
		if (c->attach_seq && !c->read_only && (c->out.len || c->tq.len))
			return true;
	return false;
}

void pp_clients_exited(struct ptyproxy *p)
{
	for (struct pp_client *c = p->clients, *next; c; c = next) {
		next = c->next;
		if (!c->attach_seq) {
			pp_client_close(p, c);
		} else if (c->closing) {
			continue; /* told already (detached) */
		} else if (c->tty >= 0 && c->tq.len) {
			c->closing = c->exit_pending =
				true; /* EXITED once its terminal has it all */
		} else {
			send_exited(p, c);
		}
	}
	pp_clients_finish(p);
}

void pp_clients_redraw(struct ptyproxy *p)
{
	for (struct pp_client *c = p->clients, *next; c; c = next) {
		next = c->next;
		if (c->attach_seq && !c->closing && send_redraw(p, c) < 0)
			pp_client_close(p, c);
	}
}
