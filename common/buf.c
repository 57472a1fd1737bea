/* Growable output buffer and bounds-checked input reader for on-disk and wire formats. */
#include "ck.h"

#include <stdarg.h>
#include <stdio.h>
#include <xxhash.h>

void ck_buf_free(struct ck_buf *b)
{
	free(b->data);
	*b = (struct ck_buf){0};
}

int ck_buf_reserve(struct ck_buf *b, size_t extra)
{
	if (b->err)
		return b->err;
	if (b->len + extra <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + extra)
		cap *= 2;
	uint8_t *p = realloc(b->data, cap);
	if (!p) {
		b->err = -ENOMEM;
		return b->err;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

void ck_buf_append(struct ck_buf *b, const void *p, size_t n)
{
	if (n == 0 || ck_buf_reserve(b, n) < 0)
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void ck_buf_le16(struct ck_buf *b, uint16_t v)
{
	uint8_t t[2];
	ck_put_le16(t, v);
	ck_buf_append(b, t, 2);
}

void ck_buf_le32(struct ck_buf *b, uint32_t v)
{
	uint8_t t[4];
	ck_put_le32(t, v);
	ck_buf_append(b, t, 4);
}

void ck_buf_le64(struct ck_buf *b, uint64_t v)
{
	uint8_t t[8];
	ck_put_le64(t, v);
	ck_buf_append(b, t, 8);
}

void ck_buf_str(struct ck_buf *b, const char *s, size_t n)
{
	ck_buf_le32(b, (uint32_t)n);
	ck_buf_append(b, s, n);
}

static bool rd_fail(struct ck_rd *r)
{
	r->err = -EBADMSG;
	return false;
}

bool ck_rd_bytes(struct ck_rd *r, void *dst, size_t n)
{
	if (r->err || n > r->len - r->off)
		return rd_fail(r);
	memcpy(dst, r->p + r->off, n);
	r->off += n;
	return true;
}

bool ck_rd_le16(struct ck_rd *r, uint16_t *v)
{
	uint8_t t[2];
	if (!ck_rd_bytes(r, t, 2))
		return false;
	*v = ck_get_le16(t);
	return true;
}

bool ck_rd_le32(struct ck_rd *r, uint32_t *v)
{
	uint8_t t[4];
	if (!ck_rd_bytes(r, t, 4))
		return false;
	*v = ck_get_le32(t);
	return true;
}

bool ck_rd_le64(struct ck_rd *r, uint64_t *v)
{
	uint8_t t[8];
	if (!ck_rd_bytes(r, t, 8))
		return false;
	*v = ck_get_le64(t);
	return true;
}

bool ck_rd_str(struct ck_rd *r, size_t max, const char **ret, size_t *ret_len)
{
	uint32_t n;
	if (!ck_rd_le32(r, &n))
		return false;
	if (n > max || n > r->len - r->off)
		return rd_fail(r);
	*ret = (const char *)r->p + r->off;
	*ret_len = n;
	r->off += n;
	return true;
}

uint64_t ck_checksum(const void *buf, size_t len)
{
	return XXH3_64bits(buf, len);
}

static int log_fd = 2;

void ck_log_set_file(int fd)
{
	log_fd = fd;
}

static void vlog(const char *fmt, va_list ap)
{
	char line[2048];
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	if (n == 0 || line[n - 1] != '\n')
		line[n++] = '\n';
	(void)ck_write_full(log_fd, line, (size_t)n);
}

void ck_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

void ck_debug(const char *fmt, ...)
{
	static int enabled = -1;
	if (enabled < 0)
		enabled = getenv("CK_LOG_DEBUG") != NULL;
	if (!enabled)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}
