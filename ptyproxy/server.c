/* The supervisor side: pty master (or pipes) <-> attached clients.
 *
 * Fast path (master readable): read up to 128 KiB straight into the ring, until that is full,
 * the fd is empty or a read comes back short (interactive output is not held back), run the
 * mode scanner once (one memchr pass for plain text), copy into the log buffer, write the bytes
 * to every client's terminal (direct clients) or with one sendmsg (header + data for each
 * 64 KiB message) when its queue is empty, else append to its queue. A pty master gives at most
 * ~4 KiB per read: batching the reads of one wakeup saves writes and client wakeups. The
 * screen model is NOT fed here: ptyproxy_idle() feeds it from the ring once output has been
 * quiet for IDLE_DELAY_MS, a client attach or a checkpoint catches it up synchronously. When
 * the ring overflows before the model saw the bytes, the oldest are dropped (model_lost counts
 * them): a flood repaints the screen anyway, the modes come from the scanner which saw every
 * byte, and the alternate screen is re-synchronised into the model after such a gap. The log
 * is written off the fast path too (outlog.c: on quiet, at most LOG_DELAY_MS late).
 *
 * The attach connections, relayed and direct (the server writes the user's terminal itself),
 * are clients.c.
 *
 * Backpressure: while a writer client's queue is above PP_QUEUE_HIGH, the master (or the
 * pipes) is not read, so the job blocks as on a slow terminal. Input to the job is queued up to
 * PP_INPUT_HIGH, beyond which writer clients are not read. */
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "ptyproxy-internal.h"

#define READ_ROOM     4096 /* a batch ends when less room than this is left */
#define SMALL_READ    512  /* a read shorter than this ends a batch (interactive output) */
#define IDLE_DELAY_MS 10
#define FEED_CHUNK    (32u << 10)
#define FLOOD_DELAY_MS 100 /* the model is PP_FLOOD_LAG behind: a longer quiet first */
#define LOG_DELAY_MS  250 /* the log is at most this late while output flows */

/* ---- small pieces ---- */

void pp_log(struct ptyproxy *p, const char *fmt, ...)
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

void pp_set_watch(struct ptyproxy *p, int fd, uint32_t *cur, uint32_t want)
{
	if (fd < 0 || *cur == want)
		return;
	if (p->ops.watch(p->ud, fd, want) == 0)
		*cur = want;
}

/* Recompute what every fd should be watched for. */
void pp_update_watches(struct ptyproxy *p)
{
	bool paused = pp_writers_backed_up(p);
	bool want_in = !p->hold && p->inq.len;
	if (!p->pipes) {
		uint32_t ev = (!paused && !p->master_hup ? EPOLLIN : 0) | (want_in ? EPOLLOUT : 0);
		pp_set_watch(p, p->master, &p->w_master, ev);
	} else {
		bool read_out = !paused && (p->pipes_released || pp_count_clients(p, false));
		pp_set_watch(p, p->fds[0], &p->w_fds[0], want_in ? EPOLLOUT : 0);
		for (int i = 1; i < 3; i++)
			pp_set_watch(p, p->fds[i], &p->w_fds[i], read_out ? EPOLLIN : 0);
	}
	pp_clients_watch(p);
}

/* ---- output path ---- */

/* @n bytes were read into the ring at head (drain_fd). */
static void ring_advance(struct ptyproxy *p, size_t n)
{
	p->head += n;
	if (p->head - p->fed > p->ring_size) {
		p->lost += p->head - p->ring_size - p->fed;
		p->fed = p->head - p->ring_size;
		p->resync_alt = true;
		p->gap = true;
	}
}

static void deliver(struct ptyproxy *p, uint8_t type, const uint8_t *data, size_t n)
{
	uint32_t before = p->modes.modes;
	p->modes.seen = 0;
	if (!p->pipes) {
		ptyproxy_modes_scan(&p->modes, data, n);
		ring_advance(p, n);
	}
	/* Every mode the terminal may pass through while these bytes are written. */
	uint32_t during = before | p->modes.seen | p->modes.modes;
	if (p->have_log)
		pp_outlog_append(&p->log, data, n);
	p->last_output_ns = ck_now_ns();
	pp_clients_output(p, type, data, n, during);
}

/* Read a job-side fd in batches (see the top of the file), each delivered at once. @all: go on
 * until the fd is empty (else one batch, epoll is level-triggered). Returns PTYPROXY_HUP at end,
 * 0, or -errno. A pty is read straight into the ring, where the screen model will look for the
 * bytes (a batch ends at the ring's end), so they are never copied there; pipes into rbuf. */
static int drain_fd(struct ptyproxy *p, int fd, uint8_t type, bool all)
{
	for (;;) {
		uint8_t *buf = p->rbuf;
		size_t cap = sizeof(p->rbuf), len = 0;
		if (!p->pipes) {
			size_t at = (size_t)(p->head & (p->ring_size - 1));
			buf = p->ring + at;
			cap = CK_MIN(cap, p->ring_size - at);
			if (p->head + cap > p->fed + p->ring_size) /* unfed bytes to be overwritten */
				pp_keep_alt_entry(p, p->head + cap - p->ring_size);
		}
		int ret = 0;
		bool empty = false;
		while (!len || len + READ_ROOM <= cap) {
			ssize_t n = read(fd, buf + len, cap - len);
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
			deliver(p, type, buf, len);
		if (ret || empty || !all || pp_writers_backed_up(p))
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
			pp_q_consume(&p->inq, p->inq.len);
			break;
		}
		pp_q_consume(&p->inq, (size_t)n);
	}
	if (p->pipes && p->input_eof && !p->inq.len && p->fds[0] >= 0) {
		pp_set_watch(p, p->fds[0], &p->w_fds[0], 0);
		close(p->fds[0]);
		p->fds[0] = -1;
	}
}

void pp_pipe_out_closed(struct ptyproxy *p, int i)
{
	pp_set_watch(p, p->fds[i], &p->w_fds[i], 0);
	close(p->fds[i]);
	p->fds[i] = -1;
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
				pp_pipe_out_closed(p, i);
			ret = r < 0 ? r : 0;
			if (p->fds[1] < 0 && p->fds[2] < 0)
				ret = PTYPROXY_HUP;
		}
	} else {
		if (pp_client_event(p, fd, events) < 0)
			return -ENOENT;
		input_flush(p);
	}
	pp_clients_finish(p); /* also those a failed terminal write ended (deliver) */
	pp_update_watches(p);
	return ret;
}

/* ---- screen model ---- */

static void model_reply(void *ud, const char *s, size_t len)
{
	struct ptyproxy *p = ud;
	/* Answer terminal queries (DA, DSR) only while no terminal is there to answer them. */
	if (!pp_count_clients(p, true))
		pp_q_append(&p->inq, s, len);
}

int ptyproxy_idle(struct ptyproxy *p)
{
	int timeout = -1;
	if (!p->pipes && p->fed < p->head) {
		uint64_t quiet = (ck_now_ns() - p->last_output_ns) / 1000000;
		uint64_t delay = p->head - p->fed > PP_FLOOD_LAG ? FLOOD_DELAY_MS : IDLE_DELAY_MS;
		if (quiet >= delay) {
			pp_feed_model(p, FEED_CHUNK);
			timeout = p->fed < p->head ? 0 : -1;
		} else {
			timeout = (int)(delay - quiet);
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
	if (pp_clients_quiet(p, false)) { /* back to writing their terminals once quiet */
		uint64_t quiet = (ck_now_ns() - p->last_output_ns) / 1000000;
		if (quiet >= IDLE_DELAY_MS) {
			pp_clients_quiet(p, true);
		} else {
			int t = (int)(IDLE_DELAY_MS - quiet);
			timeout = timeout < 0 ? t : CK_MIN(timeout, t);
		}
	}
	input_flush(p); /* model replies */
	pp_update_watches(p);
	return timeout;
}

int ptyproxy_redraw(struct ptyproxy *p, char **ret, size_t *ret_len)
{
	if (p->pipes)
		return -ENOTTY;
	pp_feed_model(p, SIZE_MAX);
	struct pp_screen s;
	int r = pp_model_snapshot(p->model, &s);
	if (r < 0)
		return r;
	struct ck_buf b = {0};
	/* In the alternate screen: the normal one first (as it was when the program entered
	 * the alternate one: what it returns to), so the client has it after vim's :q. */
	if (p->model->alt && p->have_normal && (p->modes.modes & PTYPROXY_MODE_ALTSCREEN)) {
		struct pp_screen fit; /* the size may have changed since (this attach's) */
		uint32_t modes = p->modes.modes & ~(uint32_t)PTYPROXY_MODE_ALTSCREEN;
		if (p->normal.rows == s.rows && p->normal.cols == s.cols) {
			pp_screen_encode(&p->normal, modes, &b);
		} else if (pp_screen_fit(&p->normal, s.rows, s.cols, &fit) == 0) {
			pp_screen_encode(&fit, modes, &b);
			pp_screen_free(&fit);
		}
	}
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

/* Hooks p's fresh screen model up to p and sets the modes; with a saved state, seeds the model by
 * drawing the saved screen into it at its saved size, then sizes it to p's window. The job sees
 * nothing. */
static int model_attach(struct ptyproxy *p, const struct ptyproxy_state *state)
{
	p->model->reply = model_reply;
	p->model->ud = p;
	ptyproxy_modes_init(&p->modes, state ? state->modes : 0);
	p->modes.pos = p->head; /* its switch log counts in the ring's stream positions */
	if (!state)
		return 0;
	struct ck_buf b = {0};
	struct pp_screen s = state->screen;
	if (state->have_normal && (state->modes & PTYPROXY_MODE_ALTSCREEN)) {
		/* The normal screen first, then the alternate one over it (its encoding enters
		 * it), and the copy an attach draws under the alternate one (feed.c). */
		pp_model_resize(p->model, state->normal.rows, state->normal.cols);
		pp_screen_encode(&state->normal, state->modes & ~(uint32_t)PTYPROXY_MODE_ALTSCREEN,
				 &b);
		if (!b.err)
			pp_model_feed(p->model, b.data, b.len);
		b.len = 0;
		if (p->have_normal)
			pp_screen_free(&p->normal);
		p->have_normal = pp_screen_fit(&state->normal, state->normal.rows,
					       state->normal.cols, &p->normal) == 0;
	}
	pp_model_resize(p->model, s.rows, s.cols);
	pp_screen_encode(&s, state->modes, &b);
	if (!b.err)
		pp_model_feed(p->model, b.data, b.len);
	int r = b.err;
	ck_buf_free(&b);
	pp_model_resize(p->model, p->ws.ws_row, p->ws.ws_col);
	return r;
}

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
	r = model_attach(p, state);
	if (r < 0)
		goto fail;
	p->last_output_ns = ck_now_ns();
	pp_update_watches(p);
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

static void note_stdin(struct ptyproxy *p);

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
	note_stdin(p);
	pp_update_watches(p);
	*ret = p;
	return 0;
}

void ptyproxy_pipes_release(struct ptyproxy *p)
{
	p->pipes_released = true;
	pp_update_watches(p);
}

void ptyproxy_free(struct ptyproxy *p)
{
	if (!p)
		return;
	while (p->clients)
		pp_client_close(p, p->clients);
	free(p->attach_notice);
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
	if (p->have_normal)
		pp_screen_free(&p->normal);
	p->have_normal = false;
	pp_q_free(&p->inq);
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
				pp_pipe_out_closed(p, i);
	}
	p->exited = true;
	p->wstatus = wstatus;
	pp_clients_exited(p);
	if (p->have_log)
		pp_outlog_flush(&p->log);
	pp_update_watches(p);
}

static void note_stdin(struct ptyproxy *p)
{
	struct stat st;
	p->in_dev = 0;
	p->in_ino = 0;
	if (p->fds[0] >= 0 && fstat(p->fds[0], &st) == 0) {
		p->in_dev = st.st_dev;
		p->in_ino = st.st_ino;
	}
}

int ptyproxy_pipe_ident(const struct ptyproxy *p, int k, dev_t *ret_dev, ino_t *ret_ino)
{
	struct stat st;
	if (!p->pipes || k < 0 || k > 2 || p->fds[k] < 0)
		return -ENOENT;
	if (fstat(p->fds[k], &st) < 0)
		return -errno;
	*ret_dev = st.st_dev;
	*ret_ino = st.st_ino;
	return 0;
}

ssize_t ptyproxy_take_unread_input(struct ptyproxy *p, int rfd)
{
	if (!p->pipes)
		return -EINVAL;
	struct stat a; /* the job's stdin may be another file by now */
	if (!p->in_ino || fstat(rfd, &a) < 0 || a.st_ino != p->in_ino || a.st_dev != p->in_dev)
		return 0;
	struct pp_queue q = {0};
	uint8_t buf[65536];
	ssize_t n;
	while ((n = read(rfd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0 && pp_q_append(&q, buf, (size_t)n) < 0) {
			pp_q_free(&q);
			return -ENOMEM; /* what was read is lost with the job, as before */
		}
	ssize_t moved = (ssize_t)q.len;
	if (moved && p->inq.len && pp_q_append(&q, p->inq.buf + p->inq.off, p->inq.len) < 0) {
		pp_q_free(&q);
		return -ENOMEM;
	}
	if (moved) {
		pp_q_free(&p->inq);
		p->inq = q;
		pp_update_watches(p);
	}
	return moved;
}

void ptyproxy_hold_input(struct ptyproxy *p, bool hold)
{
	p->hold = hold;
	if (!hold)
		input_flush(p);
	pp_update_watches(p);
}

int ptyproxy_catch_up(struct ptyproxy *p)
{
	int r = 0;
	if (!p->pipes && !p->master_hup) {
		r = drain_fd(p, p->master, PTYPROXY_MSG_OUTPUT, true);
		if (r == PTYPROXY_HUP)
			p->master_hup = true;
	}
	pp_feed_model(p, SIZE_MAX);
	if (p->have_log)
		pp_outlog_flush(&p->log);
	pp_update_watches(p);
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
		.clients = pp_count_clients(p, false),
		.writers = pp_count_clients(p, true),
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
	/* The pty's own size: the job may have set it (`stty cols 50`) since a client did. */
	struct winsize ws;
	if (ioctl(p->master, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col &&
	    ws.ws_row <= PTYPROXY_DIM_MAX && ws.ws_col <= PTYPROXY_DIM_MAX)
		s.ws = ws;
	pp_feed_model(p, SIZE_MAX);
	int r = pp_model_snapshot(p->model, &s.screen);
	if (r < 0)
		return r;
	/* In vim or less: the normal screen the program returns to, which a restore by a new
	 * supervisor (its ring gone) has nowhere else (borrowed, not freed here). */
	if (p->model->alt && p->have_normal && (p->modes.modes & PTYPROXY_MODE_ALTSCREEN)) {
		s.have_normal = true;
		s.normal = p->normal;
	}
	struct ck_buf b = {0};
	r = pp_state_pack(&s, &b);
	pp_screen_free(&s.screen);
	if (r >= 0)
		r = ck_write_file_atomic(dirfd, PTYPROXY_STATE_FILE, b.data, b.len, 0600);
	ck_buf_free(&b);
	return r;
}

/* ---- restart on a new job side (a restore while the supervisor lives) ---- */

void ptyproxy_notice(struct ptyproxy *p, const char *text)
{
	/* Clients only: the model and the log keep the job's own output; a restart redraws.
	 * In pipe mode a message of its own, never in the job's stdout. */
	pp_clients_output(p, p->pipes ? PTYPROXY_MSG_NOTICE : PTYPROXY_MSG_OUTPUT,
			  (const uint8_t *)text, strlen(text), p->modes.modes);
	pp_update_watches(p);
}

void ptyproxy_set_attach_notice(struct ptyproxy *p, const char *text)
{
	free(p->attach_notice);
	p->attach_notice = text ? strdup(text) : NULL;
}

void ptyproxy_log_note(struct ptyproxy *p, const char *text)
{
	if (!p->have_log)
		return;
	/* On a line of its own, with the line ends of the mode (a terminal's output is raw). */
	const char *eol = p->pipes ? "\n" : "\r\n";
	pp_outlog_append(&p->log, (const uint8_t *)eol, strlen(eol));
	pp_outlog_append(&p->log, (const uint8_t *)text, strlen(text));
	pp_outlog_append(&p->log, (const uint8_t *)eol, strlen(eol));
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
	if (!p->pipes)
		pp_q_free(&p->inq); /* typed for the job that is gone */
	if (p->pipes) {
		for (int i = 0; i < 3; i++) {
			pp_set_watch(p, p->fds[i], &p->w_fds[i], 0);
			if (p->fds[i] >= 0)
				close(p->fds[i]);
			p->fds[i] = sup_fds[i];
		}
		note_stdin(p);
		/* input_eof stays: a client that ended the stdin ended it for the restored job. */
		pp_update_watches(p);
		return 0;
	}
	pp_set_watch(p, p->master, &p->w_master, 0);
	close(p->master);
	p->master = master_fd;
	p->master_hup = false;
	if (ioctl(master_fd, TIOCGWINSZ, &p->ws) < 0 || !p->ws.ws_row || !p->ws.ws_col)
		p->ws = (struct winsize){24, 80, 0, 0};
	/* The screen of the checkpoint, not what the old job printed after it. */
	p->fed = p->head;
	p->resync_alt = false;
	p->gap = false;
	struct pp_model *m;
	int r = pp_model_new(p->ws.ws_row, p->ws.ws_col, &m);
	if (r < 0)
		return r;
	pp_model_free(p->model);
	if (p->have_normal)
		pp_screen_free(&p->normal);
	p->have_normal = false;
	p->model = m;
	r = model_attach(p, state);
	if (r < 0)
		return r;
	pp_clients_size(p); /* the checkpoint's size, unless a client has another one now */
	pp_clients_redraw(p);
	p->last_output_ns = ck_now_ns();
	pp_update_watches(p);
	return 0;
}
