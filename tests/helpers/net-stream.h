/* A reproducible byte stream for network tests: the byte at offset i depends only on (seed, i),
 * so a writer and a checker that resume at any offset agree without sharing state. */
#ifndef NET_STREAM_H
#define NET_STREAM_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

static inline uint64_t ns_word(uint64_t seed, uint64_t k)
{
	uint64_t z = seed + (k + 1) * 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Fill @buf with stream bytes [off, off + len). */
static inline void ns_fill(uint64_t seed, uint64_t off, void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len) {
		uint64_t w = ns_word(seed, off / 8);
		if (off % 8 == 0 && len >= 8) { /* little-endian: the word's bytes in order */
			memcpy(p, &w, 8);
			p += 8;
			off += 8;
			len -= 8;
			continue;
		}
		size_t at = (size_t)(off % 8), n = 8 - at < len ? 8 - at : len;
		for (size_t i = 0; i < n; i++)
			p[i] = (uint8_t)(w >> (8 * (at + i)));
		p += n;
		off += n;
		len -= n;
	}
}

/* 1 when @buf equals stream bytes [off, off + len). */
static inline int ns_check(uint64_t seed, uint64_t off, const void *buf, size_t len)
{
	uint8_t tmp[4096];
	const uint8_t *p = buf;
	while (len) {
		size_t n = len < sizeof(tmp) ? len : sizeof(tmp);
		ns_fill(seed, off, tmp, n);
		if (memcmp(tmp, p, n) != 0)
			return 0;
		p += n;
		off += n;
		len -= n;
	}
	return 1;
}

/* A peer that sends stream @seed_out and checks stream @seed_in, both @total bytes long, on a
 * socket, resuming at ->sent / ->recvd. Non-blocking; half-closes after sending everything.
 * Returns 0 when both directions are complete, 1 once both passed @freeze_at (if not 0; the
 * counters exact, no syscall in progress), or a negative code naming what failed (-8: not a
 * byte either way for NS_STALL_S seconds, rather than hanging until a test's timeout). The peer
 * stops itself: a test that watched the counters from another thread to stop it could be
 * descheduled until the transfer was over. */
struct ns_peer {
	int fd;
	uint64_t total, sent, recvd;
	uint64_t seed_out, seed_in;
	uint64_t freeze_at;
};

#define NS_STALL_S 60

static inline int64_t ns_now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec;
}

static inline int ns_peer_run(struct ns_peer *p)
{
	enum { CHUNK = 256 << 10 };
	int64_t moved_at = ns_now_s();
	static __thread uint8_t buf[CHUNK];
	bool shut = false, eof = false;
	int fl = fcntl(p->fd, F_GETFL);
	if (fl < 0 || fcntl(p->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	while (!(shut && eof)) {
		if (p->freeze_at && p->sent >= p->freeze_at && p->recvd >= p->freeze_at)
			return 1;
		if (p->sent == p->total && !shut) {
			if (shutdown(p->fd, SHUT_WR) < 0)
				return -2;
			shut = true;
		}
		struct pollfd pf = {.fd = p->fd, .events = (short)(eof ? 0 : POLLIN)};
		if (!shut)
			pf.events |= POLLOUT;
		if (poll(&pf, 1, 100) < 0 && errno != EINTR)
			return -3;
		uint64_t before = p->sent + p->recvd;
		if (!shut && (pf.revents & (POLLOUT | POLLERR))) {
			size_t n =
				p->total - p->sent < CHUNK ? (size_t)(p->total - p->sent) : CHUNK;
			ns_fill(p->seed_out, p->sent, buf, n);
			ssize_t k = send(p->fd, buf, n, MSG_NOSIGNAL);
			if (k < 0 && errno != EAGAIN)
				return -4;
			if (k > 0)
				p->sent += (uint64_t)k;
		}
		if (!eof && (pf.revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t k = recv(p->fd, buf, CHUNK, 0);
			if (k < 0 && errno != EAGAIN)
				return -5;
			if (k == 0) {
				if (p->recvd != p->total)
					return -6; /* early EOF */
				eof = true;
			} else if (k > 0) {
				if (p->recvd + (uint64_t)k > p->total ||
				    !ns_check(p->seed_in, p->recvd, buf, (size_t)k))
					return -7; /* a byte lost, repeated or wrong */
				p->recvd += (uint64_t)k;
			}
		}
		if (p->sent + p->recvd != before)
			moved_at = ns_now_s();
		else if (ns_now_s() - moved_at > NS_STALL_S)
			return -8;
	}
	return 0;
}

#endif
