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
};
int pp_state_pack(const struct ptyproxy_state *s, struct ck_buf *b);
int pp_state_unpack(const uint8_t *buf, size_t len, struct ptyproxy_state *ret);

#endif
