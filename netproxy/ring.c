/* Byte ring over absolute stream offsets. The offsets are the stream positions of the session
 * (bytes since the connection started), so a detach can name "everything from offset D on"
 * and the ring still holds it as long as mid - D <= keep. */
#include "netproxy/netproxy-internal.h"

int np_ring_init(struct np_ring *r, size_t cap, size_t keep, uint64_t off)
{
	/* The buffer comes with the first byte (relay.c peeks before it reads): a connection
	 * that carries nothing costs no memory. */
	*r = (struct np_ring){
		.data = NULL, .cap = cap, .lo = off, .mid = off, .hi = off, .keep = keep};
	return 0;
}

void np_ring_free(struct np_ring *r)
{
	free(r->data);
	r->data = NULL;
}

size_t np_ring_space(struct np_ring *r)
{
	uint64_t keep_from = r->mid > r->keep ? r->mid - r->keep : 0;
	if (r->lo < keep_from)
		r->lo = keep_from;
	return r->cap - (size_t)(r->hi - r->lo);
}

static int span(const struct np_ring *r, uint64_t from, size_t len, struct iovec iov[2])
{
	if (len == 0)
		return 0;
	size_t at = (size_t)(from % r->cap);
	size_t first = CK_MIN(len, r->cap - at);
	iov[0] = (struct iovec){r->data + at, first};
	if (first == len)
		return 1;
	iov[1] = (struct iovec){r->data, len - first};
	return 2;
}

int np_ring_in_iov(struct np_ring *r, struct iovec iov[2])
{
	if (!r->data && !(r->data = malloc(r->cap)))
		return -ENOMEM;
	return span(r, r->hi, np_ring_space(r), iov);
}

int np_ring_out_iov(const struct np_ring *r, struct iovec iov[2])
{
	return span(r, r->mid, np_ring_pending(r), iov);
}

void np_ring_copy_out(const struct np_ring *r, uint64_t off, void *dst, size_t len)
{
	struct iovec iov[2];
	int n = span(r, off, len, iov);
	uint8_t *p = dst;
	for (int i = 0; i < n; i++) {
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
}

int np_ring_grow(struct np_ring *r, size_t cap)
{
	if (cap <= r->cap)
		return 0;
	uint8_t *d = malloc(cap);
	if (!d)
		return -ENOMEM;
	size_t len = (size_t)(r->hi - r->lo);
	struct np_ring n = *r;
	n.data = d;
	n.cap = cap;
	/* Re-lay the held bytes at their offsets modulo the new capacity. */
	struct iovec iov[2];
	int k = span(&n, r->lo, len, iov);
	uint64_t off = r->lo;
	for (int i = 0; i < k; i++) {
		np_ring_copy_out(r, off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	free(r->data);
	*r = n;
	return 0;
}

int np_ring_append(struct np_ring *r, const void *src, size_t len)
{
	if (np_ring_space(r) < len) {
		int g = np_ring_grow(r, (size_t)(r->hi - r->lo) + len);
		if (g < 0)
			return g;
	}
	const uint8_t *p = src;
	while (len) {
		struct iovec iov[2];
		int n = np_ring_in_iov(r, iov);
		if (n <= 0)
			return n < 0 ? n : -ENOSPC; /* cannot happen: grown above */
		size_t k = CK_MIN(len, iov[0].iov_len);
		memcpy(iov[0].iov_base, p, k);
		r->hi += k;
		p += k;
		len -= k;
	}
	return 0;
}
