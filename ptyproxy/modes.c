/* Mode scanner for the output fast path. It looks for ESC with memchr and only then runs a
 * small state machine, so plain text costs one memchr pass. State survives between calls, so a
 * sequence split at any byte boundary is still seen. Only the DEC private modes we replay or
 * reset are tracked, plus DECKPAM/DECKPNM, RIS and DECSTR. */
#include "ptyproxy-internal.h"

enum { ST_GROUND, ST_ESC, ST_CSI, ST_CSI_IGNORE, ST_CSI_BANG };

void ptyproxy_modes_init(struct ptyproxy_modes *m, uint32_t modes)
{
	memset(m, 0, sizeof(*m));
	m->modes = modes;
	m->alt_initial = modes & PTYPROXY_MODE_ALTSCREEN;
}

static void alt_switched(struct ptyproxy_modes *m, bool on)
{
	unsigned i = m->nalt % PTYPROXY_ALT_LOG;
	m->alt_at[i] = m->cur;
	m->alt_on = (uint8_t)((m->alt_on & ~(1u << i)) | ((unsigned)on << i));
	m->nalt++;
}

bool ptyproxy_modes_alt_switch(const struct ptyproxy_modes *m, uint32_t k, uint64_t *at, bool *on)
{
	if (k >= CK_MIN(m->nalt, (uint32_t)PTYPROXY_ALT_LOG))
		return false;
	unsigned i = (m->nalt - 1 - k) % PTYPROXY_ALT_LOG;
	*at = m->alt_at[i];
	*on = m->alt_on & (1u << i);
	return true;
}

bool ptyproxy_modes_alt_at(const struct ptyproxy_modes *m, uint64_t pos, bool *known)
{
	uint64_t at;
	bool on;
	for (uint32_t k = 0; ptyproxy_modes_alt_switch(m, k, &at, &on); k++) /* newest first */
		if (at <= pos) {
			*known = true;
			return on;
		}
	*known = m->nalt <= PTYPROXY_ALT_LOG;
	return m->alt_initial;
}

static uint32_t mode_bit(uint32_t n)
{
	switch (n) {
	case 1: return PTYPROXY_MODE_CURSOR_KEYS;
	case 9: return PTYPROXY_MODE_MOUSE_X10;
	case 25: return PTYPROXY_MODE_CURSOR_HIDDEN;
	case 47: case 1047: case 1049: return PTYPROXY_MODE_ALTSCREEN;
	case 66: return PTYPROXY_MODE_KEYPAD;
	case 1000: return PTYPROXY_MODE_MOUSE_VT200;
	case 1002: return PTYPROXY_MODE_MOUSE_BTN;
	case 1003: return PTYPROXY_MODE_MOUSE_ANY;
	case 1004: return PTYPROXY_MODE_FOCUS;
	case 1005: return PTYPROXY_MODE_MOUSE_UTF8;
	case 1006: return PTYPROXY_MODE_MOUSE_SGR;
	case 1015: return PTYPROXY_MODE_MOUSE_URXVT;
	case 2004: return PTYPROXY_MODE_PASTE;
	default: return 0;
	}
}

static void csi_final(struct ptyproxy_modes *m, uint8_t c)
{
	if (!m->priv || (c != 'h' && c != 'l'))
		return;
	for (unsigned i = 0; i < m->nparam; i++) {
		uint32_t bit = mode_bit(m->param[i]);
		/* ?25 is "cursor visible": set clears our HIDDEN bit. */
		bool on = (c == 'h') != (bit == PTYPROXY_MODE_CURSOR_HIDDEN);
		if (bit == PTYPROXY_MODE_ALTSCREEN && on != !!(m->modes & bit))
			alt_switched(m, on);
		if (on) {
			m->modes |= bit;
			m->seen |= bit;
		} else {
			m->modes &= ~bit;
		}
	}
}

static void scan(struct ptyproxy_modes *m, const uint8_t *buf, size_t len)
{
	const uint8_t *p = buf, *end = buf + len;
	while (p < end) {
		if (m->st == ST_GROUND) {
			p = memchr(p, 0x1b, (size_t)(end - p));
			if (!p)
				return;
			p++;
			m->st = ST_ESC;
			continue;
		}
		uint8_t c = *p++;
		m->cur = m->pos + (uint64_t)(p - buf);
		if (c == 0x1b) { /* ESC restarts a sequence anywhere (also aborts the current one) */
			m->st = ST_ESC;
			continue;
		}
		if (c == 0x18 || c == 0x1a) { /* CAN, SUB abort */
			m->st = ST_GROUND;
			continue;
		}
		switch (m->st) {
		case ST_ESC:
			m->st = ST_GROUND;
			if (c == '[') {
				m->st = ST_CSI;
				m->nparam = 0;
				m->priv = 0;
				m->param[0] = 0;
			} else if (c == '=') {
				m->modes |= PTYPROXY_MODE_KEYPAD;
				m->seen |= PTYPROXY_MODE_KEYPAD;
			} else if (c == '>') {
				m->modes &= ~PTYPROXY_MODE_KEYPAD;
			} else if (c == 'c') { /* RIS: everything back to defaults */
				if (m->modes & PTYPROXY_MODE_ALTSCREEN)
					alt_switched(m, false);
				m->modes = 0;
			}
			break;
		case ST_CSI:
			if (c >= '0' && c <= '9') {
				if (m->nparam == 0)
					m->nparam = 1;
				uint32_t *v = &m->param[m->nparam - 1];
				if (*v < 100000)
					*v = *v * 10 + (uint32_t)(c - '0');
			} else if (c == ';') {
				if (m->nparam == 0)
					m->nparam = 1;
				if (m->nparam < CK_ARRAY_SIZE(m->param))
					m->param[m->nparam++] = 0;
				else
					m->st = ST_CSI_IGNORE;
			} else if (c == '?' && m->nparam == 0 && !m->priv) {
				m->priv = 1;
			} else if (c == '!' && m->nparam == 0 && !m->priv) {
				m->st = ST_CSI_BANG;
			} else if (c >= 0x40 && c <= 0x7e) {
				csi_final(m, c);
				m->st = ST_GROUND;
			} else if (c < 0x20) {
				/* C0 controls inside CSI are executed and do not end it. */
			} else {
				m->st = ST_CSI_IGNORE; /* other intermediates / private markers */
			}
			break;
		case ST_CSI_BANG:
			if (c == 'p') /* DECSTR soft reset */
				m->modes &= ~(PTYPROXY_MODE_CURSOR_KEYS | PTYPROXY_MODE_KEYPAD |
					      PTYPROXY_MODE_CURSOR_HIDDEN);
			m->st = (c >= 0x40 && c <= 0x7e) ? ST_GROUND : ST_CSI_IGNORE;
			break;
		case ST_CSI_IGNORE:
			if (c >= 0x40 && c <= 0x7e)
				m->st = ST_GROUND;
			break;
		}
	}
}

struct seq {
	uint32_t bit;
	const char *on, *off;
};
/* Order matters when applying: the alternate screen first (a redraw draws into it). */
static const struct seq seqs[] = {
	{PTYPROXY_MODE_ALTSCREEN, "\033[?1049h", "\033[?1049l"},
	{PTYPROXY_MODE_MOUSE_X10, "\033[?9h", "\033[?9l"},
	{PTYPROXY_MODE_MOUSE_VT200, "\033[?1000h", "\033[?1000l"},
	{PTYPROXY_MODE_MOUSE_BTN, "\033[?1002h", "\033[?1002l"},
	{PTYPROXY_MODE_MOUSE_ANY, "\033[?1003h", "\033[?1003l"},
	{PTYPROXY_MODE_MOUSE_UTF8, "\033[?1005h", "\033[?1005l"},
	{PTYPROXY_MODE_MOUSE_SGR, "\033[?1006h", "\033[?1006l"},
	{PTYPROXY_MODE_MOUSE_URXVT, "\033[?1015h", "\033[?1015l"},
	{PTYPROXY_MODE_FOCUS, "\033[?1004h", "\033[?1004l"},
	{PTYPROXY_MODE_PASTE, "\033[?2004h", "\033[?2004l"},
	{PTYPROXY_MODE_CURSOR_KEYS, "\033[?1h", "\033[?1l"},
	{PTYPROXY_MODE_CURSOR_HIDDEN, "\033[?25l", "\033[?25h"},
	{PTYPROXY_MODE_KEYPAD, "\033=", "\033>"},
};

static size_t put(char *buf, size_t cap, size_t off, const char *s)
{
	size_t n = strlen(s);
	if (off + n < cap)
		memcpy(buf + off, s, n);
	return off + n;
}

size_t ptyproxy_modes_apply_seq(uint32_t modes, char *buf, size_t cap)
{
	size_t off = 0;
	for (size_t i = 0; i < CK_ARRAY_SIZE(seqs); i++)
		if (modes & seqs[i].bit)
			off = put(buf, cap, off, seqs[i].on);
	if (off >= cap)
		return 0;
	buf[off] = 0;
	return off;
}

size_t ptyproxy_modes_reset_seq(uint32_t modes, char *buf, size_t cap)
{
	size_t off = put(buf, cap, 0, "\033[0m");
	/* Reverse order: leave the alternate screen last, after everything drawn there is reset. */
	for (size_t i = CK_ARRAY_SIZE(seqs); i-- > 0;)
		if ((modes & seqs[i].bit) && seqs[i].bit != PTYPROXY_MODE_CURSOR_HIDDEN)
			off = put(buf, cap, off, seqs[i].off);
	/* Showing the cursor is harmless even when it was never hidden. */
	off = put(buf, cap, off, "\033[?25h");
	if (off >= cap)
		return 0;
	buf[off] = 0;
	return off;
}

void ptyproxy_modes_scan(struct ptyproxy_modes *m, const uint8_t *buf, size_t len)
{
	scan(m, buf, len);
	m->pos += len;
}
