/* Attach protocol framing: le16 magic, u8 version, u8 type, le32 length, payload. Every length
 * is bounded per type before anything is read into a buffer of that size. */
#include "ptyproxy-internal.h"

int ptyproxy_msg_header(uint8_t hdr[PTYPROXY_MSG_HDR], uint8_t type, uint32_t len)
{
	if (len > PTYPROXY_MSG_MAX)
		return -EMSGSIZE;
	ck_put_le16(hdr, PTYPROXY_MSG_MAGIC);
	hdr[2] = PTYPROXY_MSG_VERSION;
	hdr[3] = type;
	ck_put_le32(hdr + 4, len);
	return 0;
}

/* The length a type must or may have: [min, max]. */
static bool type_len_ok(uint8_t type, uint32_t len)
{
	switch (type) {
	case PTYPROXY_MSG_HELLO:
		return len >= 12 && len <= PTYPROXY_HELLO_MAX;
	case PTYPROXY_MSG_RESIZE:
		return len == 8;
	case PTYPROXY_MSG_DETACH:
	case PTYPROXY_MSG_INPUT_EOF:
		return len == 0;
	case PTYPROXY_MSG_EXITED:
	case PTYPROXY_MSG_WELCOME:
	case PTYPROXY_MSG_MODES:
	case PTYPROXY_MSG_SYNC:
	case PTYPROXY_MSG_SYNCED:
	case PTYPROXY_MSG_OUTPUT_CLOSED:
		return len == 4;
	case PTYPROXY_MSG_INPUT:
	case PTYPROXY_MSG_OUTPUT:
	case PTYPROXY_MSG_STDERR:
	case PTYPROXY_MSG_REDRAW:
	case PTYPROXY_MSG_NOTICE:
		return len <= PTYPROXY_MSG_MAX;
	default:
		return false;
	}
}

ssize_t ptyproxy_msg_parse(const uint8_t *buf, size_t len, struct ptyproxy_msg *ret)
{
	/* Judge the header as soon as its bytes arrive, so garbage is refused early. */
	if (len >= 2 && ck_get_le16(buf) != PTYPROXY_MSG_MAGIC)
		return -EBADMSG;
	if (len >= 3 && buf[2] != PTYPROXY_MSG_VERSION)
		return -EBADMSG;
	if (len < PTYPROXY_MSG_HDR)
		return 0;
	uint8_t type = buf[3];
	uint32_t plen = ck_get_le32(buf + 4);
	if (!type_len_ok(type, plen))
		return -EBADMSG;
	if (len - PTYPROXY_MSG_HDR < plen)
		return 0;
	ret->type = type;
	ret->len = plen;
	ret->payload = buf + PTYPROXY_MSG_HDR;
	return (ssize_t)(PTYPROXY_MSG_HDR + plen);
}

static void termios_pack(const struct termios *t, uint8_t *b)
{
	ck_put_le32(b, t->c_iflag);
	ck_put_le32(b + 4, t->c_oflag);
	ck_put_le32(b + 8, t->c_cflag);
	ck_put_le32(b + 12, t->c_lflag);
	b[16] = t->c_line;
	b[17] = NCCS;
	memcpy(b + 18, t->c_cc, NCCS);
	ck_put_le32(b + 18 + NCCS, (uint32_t)cfgetispeed(t));
	ck_put_le32(b + 22 + NCCS, (uint32_t)cfgetospeed(t));
}

static int termios_unpack(const uint8_t *b, struct termios *ret)
{
	struct termios t = {
		.c_iflag = ck_get_le32(b),
		.c_oflag = ck_get_le32(b + 4),
		.c_cflag = ck_get_le32(b + 8),
		.c_lflag = ck_get_le32(b + 12),
		.c_line = b[16],
	};
	if (b[17] != NCCS)
		return -EBADMSG;
	memcpy(t.c_cc, b + 18, NCCS);
	if (cfsetispeed(&t, (speed_t)ck_get_le32(b + 18 + NCCS)) < 0 ||
	    cfsetospeed(&t, (speed_t)ck_get_le32(b + 22 + NCCS)) < 0)
		return -EBADMSG;
	*ret = t;
	return 0;
}

size_t ptyproxy_hello_pack(const struct ptyproxy_hello *h, uint8_t *buf, size_t cap)
{
	size_t tl = strnlen(h->term, PTYPROXY_TERM_MAX);
	size_t tio = h->flags & PTYPROXY_HELLO_TERMIOS ? PTYPROXY_TERMIOS_LEN : 0;
	size_t key = h->flags & PTYPROXY_HELLO_TTY_FD ? 2 : 0;
	if (cap < 12 + tio + key + tl)
		return 0;
	ck_put_le32(buf, h->flags);
	ptyproxy_winsize_pack(&h->ws, buf + 4);
	if (tio)
		termios_pack(&h->tio, buf + 12);
	if (key)
		ck_put_le16(buf + 12 + tio, h->detach_key);
	memcpy(buf + 12 + tio + key, h->term, tl);
	return 12 + tio + key + tl;
}

int ptyproxy_hello_unpack(const struct ptyproxy_msg *m, struct ptyproxy_hello *ret)
{
	if (m->type != PTYPROXY_MSG_HELLO || m->len < 12 || m->len > PTYPROXY_HELLO_MAX)
		return -EBADMSG;
	struct ptyproxy_hello h = {.flags = ck_get_le32(m->payload)};
	if (h.flags & ~(PTYPROXY_HELLO_READ_ONLY | PTYPROXY_HELLO_PIPES | PTYPROXY_HELLO_NO_REDRAW |
			PTYPROXY_HELLO_TERMIOS | PTYPROXY_HELLO_TTY_FD))
		return -EBADMSG;
	struct ptyproxy_msg ws = {.type = PTYPROXY_MSG_RESIZE, .len = 8, .payload = m->payload + 4};
	int r = ptyproxy_winsize_unpack(&ws, &h.ws);
	/* A pipe client has no window: 0x0 is fine there. */
	if (r < 0 && !(h.flags & PTYPROXY_HELLO_PIPES))
		return r;
	size_t off = 12;
	if (h.flags & PTYPROXY_HELLO_TERMIOS) {
		if (m->len < off + PTYPROXY_TERMIOS_LEN ||
		    termios_unpack(m->payload + off, &h.tio) < 0)
			return -EBADMSG;
		off += PTYPROXY_TERMIOS_LEN;
	}
	h.detach_key = PTYPROXY_NO_DETACH_KEY;
	if (h.flags & PTYPROXY_HELLO_TTY_FD) {
		if (m->len < off + 2)
			return -EBADMSG;
		h.detach_key = ck_get_le16(m->payload + off);
		if (h.detach_key > 255 && h.detach_key != PTYPROXY_NO_DETACH_KEY)
			return -EBADMSG;
		off += 2;
	}
	size_t tl = m->len - off;
	if (tl > PTYPROXY_TERM_MAX || memchr(m->payload + off, 0, tl))
		return -EBADMSG;
	memcpy(h.term, m->payload + off, tl);
	h.term[tl] = 0;
	*ret = h;
	return 0;
}

void ptyproxy_winsize_pack(const struct winsize *ws, uint8_t buf[8])
{
	ck_put_le16(buf, ws->ws_row);
	ck_put_le16(buf + 2, ws->ws_col);
	ck_put_le16(buf + 4, ws->ws_xpixel);
	ck_put_le16(buf + 6, ws->ws_ypixel);
}

int ptyproxy_winsize_unpack(const struct ptyproxy_msg *m, struct winsize *ret)
{
	if (m->len != 8)
		return -EBADMSG;
	struct winsize ws = {
		.ws_row = ck_get_le16(m->payload),
		.ws_col = ck_get_le16(m->payload + 2),
		.ws_xpixel = ck_get_le16(m->payload + 4),
		.ws_ypixel = ck_get_le16(m->payload + 6),
	};
	if (ws.ws_row == 0 || ws.ws_col == 0 || ws.ws_row > PTYPROXY_DIM_MAX ||
	    ws.ws_col > PTYPROXY_DIM_MAX)
		return -EBADMSG;
	*ret = ws;
	return 0;
}

int ptyproxy_send_msg(int fd, uint8_t type, const void *payload, size_t len)
{
	uint8_t hdr[PTYPROXY_MSG_HDR];
	int r = ptyproxy_msg_header(hdr, type, (uint32_t)len);
	if (r < 0)
		return r;
	struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)payload, len}};
	size_t total = sizeof(hdr) + len, done = 0;
	while (done < total) {
		ssize_t n = writev(fd, iov, 2);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd pfd = {.fd = fd, .events = POLLOUT};
				poll(&pfd, 1, -1);
				continue;
			}
			return -errno;
		}
		done += (size_t)n;
		for (int i = 0; i < 2 && n > 0; i++) {
			size_t k = CK_MIN((size_t)n, iov[i].iov_len);
			iov[i].iov_base = (uint8_t *)iov[i].iov_base + k;
			iov[i].iov_len -= k;
			n -= (ssize_t)k;
		}
	}
	return 0;
}
