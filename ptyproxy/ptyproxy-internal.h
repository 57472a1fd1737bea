/* ptyproxy private declarations shared between its files. */
#ifndef PTYPROXY_INTERNAL_H
#define PTYPROXY_INTERNAL_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <vterm.h>

#include "common/ck.h"
#include "ptyproxy/ptyproxy.h"

#define PTYPROXY_DIM_MAX 4096 /* rows, cols bound (protocol and saved state) */
#define PP_CELL_CHARS	 6

/** Blocking send of one message (header + payload) on @fd; waits on EAGAIN. */
int ptyproxy_send_msg(int fd, uint8_t type, const void *payload, size_t len);

/* A colour as saved and redrawn: kind 0 default, 1 indexed (v[0]), 2 rgb (v[0..2]). */
struct pp_color {
	uint8_t kind;
	uint8_t v[3];
};

enum {
	PP_ATTR_BOLD = 1u << 0,
	PP_ATTR_UL_SHIFT = 1, /* 2 bits: 1 single, 2 double, 3 curly */
	PP_ATTR_ITALIC = 1u << 3,
	PP_ATTR_BLINK = 1u << 4,
	PP_ATTR_REVERSE = 1u << 5,
	PP_ATTR_STRIKE = 1u << 6,
	PP_ATTR_FONT_SHIFT = 7, /* 4 bits */
	PP_ATTR_MASK = 0x7ff,
};

/* One screen cell. nch == 0 is a blank (erased cell or a space). */
struct pp_cell {
	uint32_t ch[PP_CELL_CHARS];
	uint8_t nch;
	uint8_t width; /* 1 or 2; the cell right of a width-2 cell is not drawn */
	uint16_t attrs;
	struct pp_color fg, bg;
};

/* A snapshot of a screen: rows*cols cells, row-major, plus the cursor. */
struct pp_screen {
	uint16_t rows, cols;
	uint16_t crow, ccol;
	struct pp_cell *cells;
};
void pp_screen_free(struct pp_screen *s);
/** @src at another size: its bottom rows (as a terminal keeps them when it shrinks), its
 *  columns cut or padded, the cursor kept inside. Returns 0 or -ENOMEM. */
int pp_screen_fit(const struct pp_screen *src, uint16_t rows, uint16_t cols,
		  struct pp_screen *ret);
bool pp_cell_equal(const struct pp_cell *a, const struct pp_cell *b);

/** Append to @b the bytes that redraw @s on a terminal with modes @modes recorded. */
void pp_screen_encode(const struct pp_screen *s, uint32_t modes, struct ck_buf *b);

/* The libvterm screen model. */
struct pp_model {
	VTerm *vt;
	VTermScreen *vs;
	VTermState *st;
	bool alt; /* the model's own idea of the alternate screen (settermprop) */
	void (*reply)(void *ud, const char *s, size_t len);
	void *ud;
};
int pp_model_new(uint16_t rows, uint16_t cols, struct pp_model **ret);
void pp_model_free(struct pp_model *m);
void pp_model_feed(struct pp_model *m, const uint8_t *buf, size_t len);
void pp_model_resize(struct pp_model *m, uint16_t rows, uint16_t cols);
int pp_model_snapshot(struct pp_model *m, struct pp_screen *ret);

/* Bounded output log: NAME and NAME.1, each up to half the limit. Appends go to a ring in
 * memory (pend bytes since the last flush; only the newest cap of them are kept, which is all
 * a flush can need when cap >= limit); pp_outlog_flush() writes them. */
struct pp_outlog {
	int dirfd; /* not owned */
	int fd;
	char *name;
	uint64_t limit, size; /* size: of NAME */
	uint8_t *buf;
	size_t cap;
	uint64_t head, pend; /* bytes appended ever, and since the last flush */
	uint64_t since_ns;   /* when the oldest pending byte came */
	bool cut;	     /* NAME.cut made: bytes were dropped from the front */
};
int pp_outlog_open(struct pp_outlog *l, int dirfd, const char *name, uint64_t limit);
void pp_outlog_append(struct pp_outlog *l, const uint8_t *p, size_t n);
void pp_outlog_flush(struct pp_outlog *l);
void pp_outlog_close(struct pp_outlog *l);

/* Saved state. */
struct ptyproxy_state {
	uint32_t modes;
	struct termios tio;
	struct winsize ws;
	struct pp_screen screen;
	bool have_normal;	  /* screen is the alternate one; this one is under it */
	struct pp_screen normal;
};
int pp_state_pack(const struct ptyproxy_state *s, struct ck_buf *b);
int pp_state_unpack(const uint8_t *buf, size_t len, struct ptyproxy_state *ret);

/* ---- The server (server.c: job side, model, life cycle; clients.c: attach connections) ---- */

#define PP_READ_BUF    (128u << 10)
#define PP_QUEUE_HIGH  (256u << 10) /* a writer client queued above this pauses the job side */
#define PP_INPUT_HIGH  (1u << 20)   /* input queued above this pauses the writer clients */

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
	bool relay_out;	   /* direct, in a flood: output goes as OUTPUT messages */
	uint32_t sync_seq, sync_wait; /* last SYNC sent; the one whose SYNCED ends relay_out */
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
	char *attach_notice; /* ptyproxy_set_attach_notice */
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
	bool gap; /* the model skips to p->fed: put it on the screen the stream was on there */
	struct pp_screen normal; /* the normal screen as the model entered the alternate one */
	bool have_normal;	 /* ... valid (a redraw draws it under the alternate one) */
	dev_t in_dev; /* pipe mode: the job's stdin pipe (fds[0] is closed after an EOF) */
	ino_t in_ino;
	uint64_t last_output_ns;
	struct pp_outlog log;
	bool have_log;
	struct pp_client *clients;
	uint64_t attach_seq;
	struct winsize ws;
	uint8_t rbuf[PP_READ_BUF];
};

static inline void pp_q_free(struct pp_queue *q)
{
	free(q->buf);
	*q = (struct pp_queue){0};
}

static inline int pp_q_append(struct pp_queue *q, const void *p, size_t n)
{
	if (!n) /* also when q->buf is still NULL: memcpy of nothing to it is undefined */
		return 0;
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

static inline void pp_q_consume(struct pp_queue *q, size_t n)
{
	q->off += n;
	q->len -= n;
	if (!q->len)
		q->off = 0;
}

/* server.c */
void pp_log(struct ptyproxy *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pp_set_watch(struct ptyproxy *p, int fd, uint32_t *cur, uint32_t want);
/** Recompute what every fd should be watched for. */
void pp_update_watches(struct ptyproxy *p);
/* feed.c */
/* The model this far behind means a flood: it skips to the last screenful of lines, and waits
 * for a longer quiet (on a busy machine a flood has 10 ms gaps). libvterm moves the whole
 * screen for every line it scrolls (~400 KB on 50x200): fed every line of a 200 MB flood, it
 * took more CPU than the forwarding itself. */
#define PP_FLOOD_LAG (64u << 10)
/** Feed the model up to @max bytes of what it has not seen. */
void pp_feed_model(struct ptyproxy *p, size_t max);
/** The ring is about to overwrite unfed bytes up to stream position @lose_to. */
void pp_keep_alt_entry(struct ptyproxy *p, uint64_t lose_to);

/* clients.c */
bool pp_writers_backed_up(const struct ptyproxy *p);
unsigned pp_count_clients(const struct ptyproxy *p, bool writers_only);
void pp_client_close(struct ptyproxy *p, struct pp_client *c);
/** Watches of every client's connection and terminal (part of pp_update_watches). */
void pp_clients_watch(struct ptyproxy *p);
/** Output read from the job to every attached client; @during: the modes the terminal may pass
 *  through while these bytes are written. */
void pp_clients_output(struct ptyproxy *p, uint8_t type, const uint8_t *data, size_t n,
		       uint32_t during);
/** Readiness on a client's connection or terminal. -ENOENT if @fd is no client's. */
int pp_client_event(struct ptyproxy *p, int fd, uint32_t events);
/** Direct clients relaying a flood with no SYNC out: @send: output went quiet, send them one;
 *  else say whether there are any (true: call again once output is quiet). */
bool pp_clients_quiet(struct ptyproxy *p, bool send);
/** The job ended (p->wstatus): EXITED to every client once it has all the output. */
void pp_clients_exited(struct ptyproxy *p);
/** The job's terminal gets the size of the newest attached writer (after a restart, or when
 *  a client leaves). */
void pp_clients_size(struct ptyproxy *p);
/** Send every attached client a redraw of the screen model (after a restart). */
void pp_clients_redraw(struct ptyproxy *p);
/** Close the clients told their session is over, once that is sent. */
void pp_clients_finish(struct ptyproxy *p);
/* Pipe mode: stop reading the job's stdout (1) or stderr (2) and close our end of it. */
void pp_pipe_out_closed(struct ptyproxy *p, int i);

#endif
