/* Feeding the screen model from the ring (server.c fills the ring and decides when): a flood
 * is skipped to its last screenful, bytes the ring overwrites before the model saw them are
 * lost, and either gap lands the model on the screen (normal or alternate) the stream was on
 * there, with the normal screen a full-screen program returns to (the scanner's switch log,
 * modes.c). While the model is in the alternate screen, a copy of the normal one as it was
 * entered is kept for redraws (libvterm shows the active buffer only). */
#include "ptyproxy-internal.h"

/* Where the last @rows lines before stream position @pos start (after the newline before
 * them), among the bytes the model has not seen; p->fed when there are not that many. */
static uint64_t lines_before(const struct ptyproxy *p, uint64_t pos, unsigned rows)
{
	while (pos > p->fed) {
		size_t end = (size_t)(((pos - 1) & (p->ring_size - 1)) + 1); /* ring index after pos-1 */
		size_t len = (size_t)CK_MIN(pos - p->fed, (uint64_t)end);
		const uint8_t *seg = p->ring + end - len;
		const uint8_t *nl;
		while ((nl = memrchr(seg, '\n', len))) {
			uint64_t at = pos - (uint64_t)(seg + len - nl); /* stream position of nl */
			if (rows-- == 0)
				return at + 1;
			len = (size_t)(nl - seg);
			pos = at;
		}
		pos -= len;
	}
	return p->fed;
}

/* libvterm shows only the active buffer: keep a copy of the normal screen as the model enters
 * the alternate one, for redraws (ptyproxy_redraw). */
static void keep_normal(struct ptyproxy *p)
{
	if (p->model->alt)
		return;
	if (p->have_normal)
		pp_screen_free(&p->normal);
	p->have_normal = pp_model_snapshot(p->model, &p->normal) == 0;
}

static void model_switch(struct ptyproxy *p, bool alt)
{
	if (alt)
		keep_normal(p);
	pp_model_feed(p->model, (const uint8_t *)(alt ? "\033[?1049h" : "\033[?1049l"), 8);
}

/* Feed the model @n bytes of the stream at position @pos, stopping before the last byte of
 * each entry into the alternate screen to keep the normal one (the switch log knows where). */
static void model_feed_at(struct ptyproxy *p, const uint8_t *buf, size_t n, uint64_t pos)
{
	uint32_t kept = CK_MIN(p->modes.nalt, (uint32_t)PTYPROXY_ALT_LOG);
	for (uint32_t k = kept; k-- > 0;) { /* oldest first */
		uint64_t at;
		bool on;
		if (!ptyproxy_modes_alt_switch(&p->modes, k, &at, &on) || !on || at <= pos ||
		    at > pos + n)
			continue;
		size_t upto = (size_t)(at - 1 - pos); /* before the sequence's final byte */
		pp_model_feed(p->model, buf, upto);
		keep_normal(p);
		buf += upto;
		n -= upto;
		pos += upto;
	}
	pp_model_feed(p->model, buf, n);
}

/* Feed the model the ring's bytes [fed, @end), fed = @end. */
static void feed_to(struct ptyproxy *p, uint64_t end)
{
	while (p->fed < end) {
		size_t i = (size_t)(p->fed & (p->ring_size - 1));
		size_t n = (size_t)CK_MIN(end - p->fed, (uint64_t)(p->ring_size - i));
		model_feed_at(p, p->ring + i, n, p->fed);
		p->fed += n;
	}
}

/* Feed the model the ring's bytes [max(@start, fed), @end) (after a CAN), fed = @end. */
static void feed_range(struct ptyproxy *p, uint64_t start, uint64_t end)
{
	pp_model_feed(p->model, (const uint8_t *)"\030", 1);
	if (start > p->fed) {
		p->lost += start - p->fed;
		p->fed = start;
	}
	feed_to(p, end);
}

/* The ring is about to overwrite unfed bytes up to @lose_to: an entry into the alternate
 * screen among them takes the screenful before it along into the model first (the normal
 * screen that program returns to), as skip_to does for a skip. */
void pp_keep_alt_entry(struct ptyproxy *p, uint64_t lose_to)
{
	uint64_t at;
	bool on;
	for (uint32_t k = 0; ptyproxy_modes_alt_switch(&p->modes, k, &at, &on); k++) {
		if (at <= p->fed)
			return;
		if (on && at <= lose_to) {
			feed_range(p, lines_before(p, at, p->ws.ws_row), at);
			p->resync_alt = true;
			return;
		}
	}
}

/* A flood is skipped up to @from. The alternate screen switches in the skipped part decide what
 * the model must know first: the screenful before the last entry into it (the normal screen a
 * full-screen program returns to, and the entry itself), and a last exit from it. */
static void skip_to(struct ptyproxy *p, uint64_t from)
{
	uint64_t at, on_at = 0, off_at = 0;
	bool on;
	for (uint32_t k = 0; ptyproxy_modes_alt_switch(&p->modes, k, &at, &on); k++) {
		if (at > from)
			continue;
		if (at <= p->fed)
			break;
		if (on) {
			on_at = at;
			break;
		}
		if (!off_at)
			off_at = at;
	}
	if (on_at)
		feed_range(p, lines_before(p, on_at, p->ws.ws_row), on_at);
	if (off_at && p->model->alt)
		model_switch(p, false);
	p->lost += from - p->fed;
	p->fed = from;
}

void pp_feed_model(struct ptyproxy *p, size_t max)
{
	if (p->pipes)
		return;
	if (p->head - p->fed > PP_FLOOD_LAG) {
		uint64_t from = lines_before(p, p->head, p->ws.ws_row);
		if (from > p->fed) {
			skip_to(p, from);
			p->resync_alt = true;
			p->gap = true;
		}
	}
	if (p->gap) {
		/* CAN: whatever sequence the model's parser was in the middle of ends. Then the
		 * screen the skipped bytes had switched to: the lines that follow belong there
		 * (a flood inside vim's or less's alternate screen must not land on the normal
		 * one, nor leave the alternate one blank). */
		p->gap = false;
		pp_model_feed(p->model, (const uint8_t *)"\030", 1);
		bool known, alt = ptyproxy_modes_alt_at(&p->modes, p->fed, &known);
		if (known && alt != p->model->alt)
			model_switch(p, alt);
	}
	feed_to(p, p->fed + CK_MIN(p->head - p->fed, (uint64_t)max));
	if (p->fed == p->head && p->resync_alt) {
		/* A gap in what the model saw: make its screen buffer agree with the scanner. */
		bool want = p->modes.modes & PTYPROXY_MODE_ALTSCREEN;
		if (want != p->model->alt)
			model_switch(p, want);
		p->resync_alt = false;
	}
}

