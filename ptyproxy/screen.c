/* The screen model (libvterm) and the redraw encoder. The model is fed from the ring off the
 * output path; a snapshot copies its cells into our own pp_cell form, which is both what a
 * redraw is encoded from and what the saved state holds, so a restore seeds a new model by
 * feeding it the redraw of the saved screen. */
#include "ptyproxy-internal.h"

static int on_settermprop(VTermProp prop, VTermValue *val, void *user)
{
	struct pp_model *m = user;
	if (prop == VTERM_PROP_ALTSCREEN)
		m->alt = val->boolean;
	return 1;
}

static const VTermScreenCallbacks screen_cbs = {
	.settermprop = on_settermprop,
};

static void on_output(const char *s, size_t len, void *user)
{
	struct pp_model *m = user;
	if (m->reply)
		m->reply(m->ud, s, len);
}

int pp_model_new(uint16_t rows, uint16_t cols, struct pp_model **ret)
{
	struct pp_model *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->vt = vterm_new(rows ? rows : 24, cols ? cols : 80);
	if (!m->vt) {
		free(m);
		return -ENOMEM;
	}
	vterm_set_utf8(m->vt, 1);
	vterm_output_set_callback(m->vt, on_output, m);
	m->vs = vterm_obtain_screen(m->vt);
	m->st = vterm_obtain_state(m->vt);
	vterm_screen_set_callbacks(m->vs, &screen_cbs, m);
	vterm_screen_enable_altscreen(m->vs, 1);
	vterm_screen_reset(m->vs, 1);
	*ret = m;
	return 0;
}

void pp_model_free(struct pp_model *m)
{
	if (!m)
		return;
	vterm_free(m->vt);
	free(m);
}

void pp_model_feed(struct pp_model *m, const uint8_t *buf, size_t len)
{
	if (len)
		vterm_input_write(m->vt, (const char *)buf, len);
}

void pp_model_resize(struct pp_model *m, uint16_t rows, uint16_t cols)
{
	int r, c;
	vterm_get_size(m->vt, &r, &c);
	if (r != rows || c != cols)
		vterm_set_size(m->vt, rows, cols);
}

static void color_from(const VTermColor *v, bool fg, struct pp_color *c)
{
	memset(c, 0, sizeof(*c));
	if (fg ? VTERM_COLOR_IS_DEFAULT_FG(v) : VTERM_COLOR_IS_DEFAULT_BG(v))
		return;
	if (VTERM_COLOR_IS_INDEXED(v)) {
		c->kind = 1;
		c->v[0] = v->indexed.idx;
	} else {
		c->kind = 2;
		c->v[0] = v->rgb.red;
		c->v[1] = v->rgb.green;
		c->v[2] = v->rgb.blue;
	}
}

int pp_model_snapshot(struct pp_model *m, struct pp_screen *ret)
{
	int rows, cols;
	vterm_get_size(m->vt, &rows, &cols);
	struct pp_cell *cells = calloc((size_t)rows * (size_t)cols, sizeof(*cells));
	if (!cells)
		return -ENOMEM;
	for (int r = 0; r < rows; r++)
		for (int c = 0; c < cols; c++) {
			VTermScreenCell vc;
			struct pp_cell *pc = &cells[(size_t)r * (size_t)cols + (size_t)c];
			if (!vterm_screen_get_cell(m->vs, (VTermPos){r, c}, &vc))
				continue;
			unsigned n = 0;
			while (n < PP_CELL_CHARS && vc.chars[n] && vc.chars[n] != (uint32_t)-1)
				n++;
			memcpy(pc->ch, vc.chars, n * sizeof(uint32_t));
			pc->nch = (uint8_t)n;
			if (n == 1 && pc->ch[0] == ' ') /* a space and an erased cell look the same */
				pc->nch = 0, pc->ch[0] = 0;
			pc->width = vc.width == 2 ? 2 : 1;
			pc->attrs = (uint16_t)((vc.attrs.bold ? PP_ATTR_BOLD : 0) |
					       (vc.attrs.underline << PP_ATTR_UL_SHIFT) |
					       (vc.attrs.italic ? PP_ATTR_ITALIC : 0) |
					       (vc.attrs.blink ? PP_ATTR_BLINK : 0) |
					       (vc.attrs.reverse ? PP_ATTR_REVERSE : 0) |
					       (vc.attrs.strike ? PP_ATTR_STRIKE : 0) |
					       (vc.attrs.font << PP_ATTR_FONT_SHIFT));
			color_from(&vc.fg, true, &pc->fg);
			color_from(&vc.bg, false, &pc->bg);
		}
	VTermPos cur;
	vterm_state_get_cursorpos(m->st, &cur);
	*ret = (struct pp_screen){
		.rows = (uint16_t)rows,
		.cols = (uint16_t)cols,
		.crow = (uint16_t)CK_MIN(CK_MAX(cur.row, 0), rows - 1),
		.ccol = (uint16_t)CK_MIN(CK_MAX(cur.col, 0), cols - 1),
		.cells = cells,
	};
	return 0;
}

int pp_screen_fit(const struct pp_screen *src, uint16_t rows, uint16_t cols,
		  struct pp_screen *ret)
{
	size_t n = (size_t)rows * cols;
	struct pp_cell *cells = calloc(n ? n : 1, sizeof(*cells));
	if (!cells)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		cells[i].width = 1;
	unsigned skip = src->rows > rows ? src->rows - rows : 0; /* rows lost at the top */
	unsigned w = CK_MIN(src->cols, cols);
	for (unsigned r = skip; r < src->rows; r++) {
		struct pp_cell *to = &cells[(size_t)(r - skip) * cols];
		memcpy(to, &src->cells[(size_t)r * src->cols], w * sizeof(*to));
		if (w && w < src->cols && to[w - 1].width == 2) /* half a wide character */
			to[w - 1] = (struct pp_cell){.width = 1};
	}
	*ret = (struct pp_screen){.rows = rows,
				  .cols = cols,
				  .crow = (uint16_t)CK_MIN((unsigned)(src->crow > skip ? src->crow - skip : 0),
							   rows ? rows - 1u : 0u),
				  .ccol = (uint16_t)CK_MIN(src->ccol, cols ? cols - 1u : 0u),
				  .cells = cells};
	return 0;
}

void pp_screen_free(struct pp_screen *s)
{
	free(s->cells);
	s->cells = NULL;
}

static bool cell_is_plain_blank(const struct pp_cell *c)
{
	return c->nch == 0 && c->bg.kind == 0 &&
	       !(c->attrs & (PP_ATTR_REVERSE | PP_ATTR_STRIKE | (3u << PP_ATTR_UL_SHIFT)));
}

/* Equal as seen on a terminal: blanks with nothing visible are equal whatever their fg. */
bool pp_cell_equal(const struct pp_cell *a, const struct pp_cell *b)
{
	if (cell_is_plain_blank(a) && cell_is_plain_blank(b))
		return a->width == b->width;
	return a->nch == b->nch && !memcmp(a->ch, b->ch, a->nch * sizeof(uint32_t)) &&
	       a->width == b->width && a->attrs == b->attrs && !memcmp(&a->fg, &b->fg, 4) &&
	       !memcmp(&a->bg, &b->bg, 4);
}

static void put_utf8(struct ck_buf *b, uint32_t c)
{
	uint8_t u[4];
	size_t n;
	if (c < 0x80)
		u[0] = (uint8_t)c, n = 1;
	else if (c < 0x800)
		u[0] = (uint8_t)(0xc0 | (c >> 6)), u[1] = (uint8_t)(0x80 | (c & 0x3f)), n = 2;
	else if (c < 0x10000)
		u[0] = (uint8_t)(0xe0 | (c >> 12)), u[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3f)),
		u[2] = (uint8_t)(0x80 | (c & 0x3f)), n = 3;
	else if (c < 0x110000)
		u[0] = (uint8_t)(0xf0 | (c >> 18)), u[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3f)),
		u[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3f)), u[3] = (uint8_t)(0x80 | (c & 0x3f)),
		n = 4;
	else
		u[0] = '?', n = 1;
	ck_buf_append(b, u, n);
}

static void put_color(char *sgr, size_t cap, size_t *off, const struct pp_color *c, bool fg)
{
	int n = 0;
	if (c->kind == 1 && c->v[0] < 8)
		n = snprintf(sgr + *off, cap - *off, ";%d", (fg ? 30 : 40) + c->v[0]);
	else if (c->kind == 1 && c->v[0] < 16)
		n = snprintf(sgr + *off, cap - *off, ";%d", (fg ? 90 : 100) + c->v[0] - 8);
	else if (c->kind == 1)
		n = snprintf(sgr + *off, cap - *off, ";%d;5;%d", fg ? 38 : 48, c->v[0]);
	else if (c->kind == 2)
		n = snprintf(sgr + *off, cap - *off, ";%d;2;%d;%d;%d", fg ? 38 : 48, c->v[0],
			     c->v[1], c->v[2]);
	*off += (size_t)n;
}

/* Full SGR for a cell's attributes, starting from a reset. */
static void put_sgr(struct ck_buf *b, const struct pp_cell *c)
{
	static const char *ul[4] = {"", ";4", ";21", ";4:3"};
	char sgr[96] = "\033[0";
	size_t off = 3;
	unsigned a = c->attrs;
	off += (size_t)snprintf(sgr + off, sizeof(sgr) - off, "%s%s%s%s%s%s",
				a & PP_ATTR_BOLD ? ";1" : "", a & PP_ATTR_ITALIC ? ";3" : "",
				ul[(a >> PP_ATTR_UL_SHIFT) & 3], a & PP_ATTR_BLINK ? ";5" : "",
				a & PP_ATTR_REVERSE ? ";7" : "", a & PP_ATTR_STRIKE ? ";9" : "");
	unsigned font = (a >> PP_ATTR_FONT_SHIFT) & 15;
	if (font)
		off += (size_t)snprintf(sgr + off, sizeof(sgr) - off, ";%u", 10 + font);
	put_color(sgr, sizeof(sgr), &off, &c->fg, true);
	put_color(sgr, sizeof(sgr), &off, &c->bg, false);
	snprintf(sgr + off, sizeof(sgr) - off, "m");
	ck_buf_append(b, sgr, strlen(sgr));
}

void pp_screen_encode(const struct pp_screen *s, uint32_t modes, struct ck_buf *b)
{
	char tmp[256];
	/* Alternate screen first: the cells must be drawn into it, leaving the client's normal
	 * screen alone. Then reset scroll region, origin mode and attributes, and clear. */
	const char *pre = (modes & PTYPROXY_MODE_ALTSCREEN) ? "\033[0m\033[?1049h" : "\033[0m";
	ck_buf_append(b, pre, strlen(pre));
	const char *clr = "\033[r\033[?6l\033[?7h\033[H\033[2J";
	ck_buf_append(b, clr, strlen(clr));
	static const struct pp_cell plain = {.width = 1};
	for (unsigned r = 0; r < s->rows; r++) {
		const struct pp_cell *row = &s->cells[(size_t)r * s->cols];
		unsigned end = s->cols;
		while (end > 0 && cell_is_plain_blank(&row[end - 1]))
			end--;
		if (!end)
			continue;
		int n = snprintf(tmp, sizeof(tmp), "\033[%u;1H", r + 1);
		ck_buf_append(b, tmp, (size_t)n);
		const struct pp_cell *cur = &plain;
		for (unsigned c = 0; c < end; c++) {
			const struct pp_cell *cell = &row[c];
			if (cell->attrs != cur->attrs || memcmp(&cell->fg, &cur->fg, 4) ||
			    memcmp(&cell->bg, &cur->bg, 4)) {
				put_sgr(b, cell);
				cur = cell;
			}
			if (cell->nch == 0)
				ck_buf_append(b, " ", 1);
			for (unsigned i = 0; i < cell->nch; i++)
				put_utf8(b, cell->ch[i]);
			if (cell->width == 2)
				c++;
		}
		if (cur != &plain)
			ck_buf_append(b, "\033[0m", 4);
	}
	size_t n = ptyproxy_modes_apply_seq(modes & ~(uint32_t)(PTYPROXY_MODE_ALTSCREEN |
								 PTYPROXY_MODE_CURSOR_HIDDEN),
					    tmp, sizeof(tmp));
	ck_buf_append(b, tmp, n);
	n = (size_t)snprintf(tmp, sizeof(tmp), "\033[%u;%uH%s", s->crow + 1u, s->ccol + 1u,
			     (modes & PTYPROXY_MODE_CURSOR_HIDDEN) ? "\033[?25l" : "\033[?25h");
	ck_buf_append(b, tmp, n);
}
