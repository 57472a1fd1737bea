/* Saved terminal state (pty.state): modes, termios, window size and the screen, for a restore
 * that creates a new pty with the same termios and size and seeds the model with the screen.
 *
 * Format, little-endian:  le32 magic "PTYS", le16 version, le16 reserved (0),
 *   le32 modes, termios (le32 iflag oflag cflag lflag, u8 line, u8 ncc, ncc bytes of c_cc,
 *   le32 ispeed, ospeed), winsize (4 x le16), screen (le16 rows cols crow ccol, then rows*cols
 *   cells: u8 nch, u8 width, le16 attrs, 4+4 colour bytes, nch x le32 code points),
 *   version 2 then: u8 1 and the normal screen (same encoding) when the screen above is the
 *   alternate one and the normal one under it is known, else u8 0;
 *   le64 ck_checksum of everything before it. Version 1 (no normal screen) is still read. */
#include "ptyproxy-internal.h"

#define STATE_MAGIC   0x53595450u /* "PTYS" */
#define STATE_VERSION 2
#define STATE_MAX     (64u << 20)

static void put_color(struct ck_buf *b, const struct pp_color *c)
{
	ck_buf_append(b, &c->kind, 1);
	ck_buf_append(b, c->v, 3);
}

static void put_screen(struct ck_buf *b, const struct pp_screen *sc)
{
	ck_buf_le16(b, sc->rows);
	ck_buf_le16(b, sc->cols);
	ck_buf_le16(b, sc->crow);
	ck_buf_le16(b, sc->ccol);
	for (size_t i = 0; i < (size_t)sc->rows * sc->cols; i++) {
		const struct pp_cell *c = &sc->cells[i];
		ck_buf_append(b, &c->nch, 1);
		ck_buf_append(b, &c->width, 1);
		ck_buf_le16(b, c->attrs);
		put_color(b, &c->fg);
		put_color(b, &c->bg);
		for (unsigned k = 0; k < c->nch; k++)
			ck_buf_le32(b, c->ch[k]);
	}
}

int pp_state_pack(const struct ptyproxy_state *s, struct ck_buf *b)
{
	ck_buf_le32(b, STATE_MAGIC);
	ck_buf_le16(b, STATE_VERSION);
	ck_buf_le16(b, 0);
	ck_buf_le32(b, s->modes);
	ck_buf_le32(b, s->tio.c_iflag);
	ck_buf_le32(b, s->tio.c_oflag);
	ck_buf_le32(b, s->tio.c_cflag);
	ck_buf_le32(b, s->tio.c_lflag);
	uint8_t line = s->tio.c_line, ncc = NCCS;
	ck_buf_append(b, &line, 1);
	ck_buf_append(b, &ncc, 1);
	ck_buf_append(b, s->tio.c_cc, NCCS);
	ck_buf_le32(b, (uint32_t)cfgetispeed(&s->tio));
	ck_buf_le32(b, (uint32_t)cfgetospeed(&s->tio));
	ck_buf_le16(b, s->ws.ws_row);
	ck_buf_le16(b, s->ws.ws_col);
	ck_buf_le16(b, s->ws.ws_xpixel);
	ck_buf_le16(b, s->ws.ws_ypixel);
	put_screen(b, &s->screen);
	uint8_t normal = s->have_normal;
	ck_buf_append(b, &normal, 1);
	if (normal)
		put_screen(b, &s->normal);
	ck_buf_le64(b, b->err ? 0 : ck_checksum(b->data, b->len));
	return b->err;
}

static bool rd_u8(struct ck_rd *r, uint8_t *v)
{
	return ck_rd_bytes(r, v, 1);
}

static bool rd_color(struct ck_rd *r, struct pp_color *c)
{
	return rd_u8(r, &c->kind) && ck_rd_bytes(r, c->v, 3) && c->kind <= 2;
}

/* A screen of @dims (rows, cols, cursor row and column) from @r. 0, -EBADMSG, -ENOMEM; on
 * failure nothing is left allocated. */
static int get_screen(struct ck_rd *r, const uint16_t dims[4], struct pp_screen *sc)
{
	*sc = (struct pp_screen){.rows = dims[0], .cols = dims[1], .crow = dims[2], .ccol = dims[3]};
	if (!sc->rows || !sc->cols || sc->rows > PTYPROXY_DIM_MAX || sc->cols > PTYPROXY_DIM_MAX ||
	    sc->crow >= sc->rows || sc->ccol >= sc->cols)
		return -EBADMSG;
	size_t ncells = (size_t)sc->rows * sc->cols;
	/* Every cell takes at least 12 bytes: refuse counts the file cannot hold before alloc. */
	if (ncells > (r->len - r->off) / 12)
		return -EBADMSG;
	sc->cells = calloc(ncells, sizeof(*sc->cells));
	if (!sc->cells)
		return -ENOMEM;
	for (size_t i = 0; i < ncells; i++) {
		struct pp_cell *c = &sc->cells[i];
		bool ok = rd_u8(r, &c->nch) && rd_u8(r, &c->width) && ck_rd_le16(r, &c->attrs) &&
			  rd_color(r, &c->fg) && rd_color(r, &c->bg) && c->nch <= PP_CELL_CHARS &&
			  (c->width == 1 || c->width == 2) && !(c->attrs & ~PP_ATTR_MASK);
		for (unsigned k = 0; ok && k < c->nch; k++)
			ok = ck_rd_le32(r, &c->ch[k]) && c->ch[k] <= 0x10ffff && c->ch[k];
		if (!ok) {
			pp_screen_free(sc);
			return -EBADMSG;
		}
	}
	return 0;
}

int pp_state_unpack(const uint8_t *buf, size_t len, struct ptyproxy_state *ret)
{
	if (len < 8 + 4 || ck_get_le64(buf + len - 8) != ck_checksum(buf, len - 8))
		return -EBADMSG;
	struct ck_rd r = {.p = buf, .len = len - 8};
	uint32_t magic, v32[6];
	uint16_t version, rsv, v16[8];
	uint8_t line, ncc;
	struct ptyproxy_state s = {0};
	if (!ck_rd_le32(&r, &magic) || magic != STATE_MAGIC || !ck_rd_le16(&r, &version) ||
	    version == 0 || version > STATE_VERSION || !ck_rd_le16(&r, &rsv) || !ck_rd_le32(&r, &s.modes))
		return -EBADMSG;
	for (int i = 0; i < 4; i++)
		if (!ck_rd_le32(&r, &v32[i]))
			return -EBADMSG;
	if (!rd_u8(&r, &line) || !rd_u8(&r, &ncc) || ncc > 64)
		return -EBADMSG;
	uint8_t cc[64];
	if (!ck_rd_bytes(&r, cc, ncc) || !ck_rd_le32(&r, &v32[4]) || !ck_rd_le32(&r, &v32[5]))
		return -EBADMSG;
	s.tio.c_iflag = v32[0], s.tio.c_oflag = v32[1], s.tio.c_cflag = v32[2];
	s.tio.c_lflag = v32[3], s.tio.c_line = line;
	memcpy(s.tio.c_cc, cc, CK_MIN((size_t)ncc, sizeof(s.tio.c_cc)));
	cfsetispeed(&s.tio, (speed_t)v32[4]);
	cfsetospeed(&s.tio, (speed_t)v32[5]);
	for (int i = 0; i < 8; i++)
		if (!ck_rd_le16(&r, &v16[i]))
			return -EBADMSG;
	s.ws = (struct winsize){v16[0], v16[1], v16[2], v16[3]};
	/* The size the restored pty and its screen model get: at most what a client may set (a
	 * 65535 x 65535 one had libvterm allocate 150 GiB and the supervisor die); 0 (a job's
	 * `stty rows 0`) falls back to 24 x 80. */
	if (s.ws.ws_row > PTYPROXY_DIM_MAX || s.ws.ws_col > PTYPROXY_DIM_MAX)
		return -EBADMSG;
	uint16_t dims[4] = {v16[4], v16[5], v16[6], v16[7]};
	int e = get_screen(&r, dims, &s.screen);
	if (e < 0)
		return e;
	uint8_t normal = 0;
	if (version >= 2 && (!rd_u8(&r, &normal) || normal > 1))
		goto bad;
	if (normal) {
		for (int i = 0; i < 4; i++)
			if (!ck_rd_le16(&r, &dims[i]))
				goto bad;
		if ((e = get_screen(&r, dims, &s.normal)) < 0) {
			pp_screen_free(&s.screen);
			return e;
		}
		s.have_normal = true;
	}
	if (r.off != r.len)
		goto bad;
	*ret = s;
	return 0;
bad:
	pp_screen_free(&s.screen);
	if (s.have_normal)
		pp_screen_free(&s.normal);
	return -EBADMSG;
}

int ptyproxy_state_load(int dirfd, struct ptyproxy_state **ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = ck_read_file_at(dirfd, PTYPROXY_STATE_FILE, STATE_MAX, &buf, &len);
	if (r < 0)
		return r == -EFBIG ? -EBADMSG : r;
	struct ptyproxy_state *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	r = pp_state_unpack((const uint8_t *)buf, len, s);
	if (r < 0) {
		free(s);
		return r;
	}
	*ret = s;
	return 0;
}

void ptyproxy_state_free(struct ptyproxy_state *s)
{
	if (!s)
		return;
	pp_screen_free(&s->screen);
	if (s->have_normal)
		pp_screen_free(&s->normal);
	free(s);
}

const struct termios *ptyproxy_state_termios(const struct ptyproxy_state *s)
{
	return &s->tio;
}

const struct winsize *ptyproxy_state_winsize(const struct ptyproxy_state *s)
{
	return &s->ws;
}

uint32_t ptyproxy_state_modes(const struct ptyproxy_state *s)
{
	return s->modes;
}
