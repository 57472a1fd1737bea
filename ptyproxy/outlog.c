/* The bounded output log: the newest bytes in NAME, the half before in NAME.1. When NAME
 * reaches half the limit it becomes NAME.1 (replacing the older half) and a new NAME starts, so
 * at most `limit` bytes are kept and the oldest go first.
 *
 * Off the fast path: appends only copy into a ring (one memcpy, two at the wrap); the caller
 * flushes when output goes quiet, at most a fraction of a second late, and at the end. With a
 * ring of at least `limit` bytes, a flush after a flood writes only what survives the
 * rotations (at most `limit` bytes) and leaves the files exactly as writing every byte would
 * have: the skipped bytes would have been rotated away. */
#include <limits.h>
#include <sys/stat.h>

#include "ptyproxy-internal.h"

#define OUTLOG_RING_MAX (4u << 20)

static int open_cur(struct pp_outlog *l)
{
	l->fd = openat(l->dirfd, l->name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (l->fd < 0)
		return -errno;
	struct stat st;
	if (fstat(l->fd, &st) < 0)
		return -errno;
	l->size = (uint64_t)st.st_size;
	return 0;
}

int pp_outlog_open(struct pp_outlog *l, int dirfd, const char *name, uint64_t limit)
{
	*l = (struct pp_outlog){.dirfd = dirfd, .fd = -1, .limit = limit < 2 ? 2 : limit};
	l->cap = (size_t)CK_MIN(l->limit, (uint64_t)OUTLOG_RING_MAX);
	l->name = strdup(name);
	l->buf = malloc(l->cap);
	if (!l->name || !l->buf) {
		pp_outlog_close(l);
		return -ENOMEM;
	}
	int r = open_cur(l);
	if (r < 0)
		pp_outlog_close(l);
	return r;
}

/* Bytes were dropped from the front: NAME.cut says so, for ptyproxy_log_dump. */
static void mark_cut(struct pp_outlog *l)
{
	if (l->cut)
		return;
	char cut[PATH_MAX];
	snprintf(cut, sizeof(cut), "%s.cut", l->name);
	int fd = openat(l->dirfd, cut, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	l->cut = fd >= 0;
}

/* NAME becomes NAME.1 and a new NAME starts. */
static int rotate(struct pp_outlog *l)
{
	char old[PATH_MAX];
	snprintf(old, sizeof(old), "%s.1", l->name);
	if (faccessat(l->dirfd, old, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		mark_cut(l); /* the older half goes */
	close(l->fd);
	l->fd = -1;
	if (renameat(l->dirfd, l->name, l->dirfd, old) < 0 || open_cur(l) < 0) {
		ck_debug("ptyproxy: output log rotation failed: %m");
		return -EIO;
	}
	return 0;
}

static int write_out(struct pp_outlog *l, const uint8_t *p, size_t n)
{
	while (n) {
		uint64_t room = l->limit / 2 > l->size ? l->limit / 2 - l->size : 0;
		if (!room) {
			if (rotate(l) < 0)
				return -EIO;
			continue;
		}
		size_t k = (size_t)CK_MIN((uint64_t)n, room);
		if (ck_write_full(l->fd, p, k) < 0) {
			ck_debug("ptyproxy: output log write failed");
			return -EIO;
		}
		l->size += k;
		p += k;
		n -= k;
	}
	return 0;
}

/* Write the @n pending bytes that start @back bytes before the newest (all still in the ring). */
static int write_ring(struct pp_outlog *l, uint64_t back, uint64_t n)
{
	size_t at = (size_t)((l->head - back) % l->cap);
	size_t k = (size_t)CK_MIN(n, (uint64_t)(l->cap - at));
	int r = write_out(l, l->buf + at, k);
	return r < 0 ? r : write_out(l, l->buf, (size_t)n - k);
}

void pp_outlog_flush(struct pp_outlog *l)
{
	if (l->fd < 0 || !l->pend)
		return;
	/* Writing all pend bytes would leave NAME starting at the last multiple f of half below
	 * the end (positions from the start of NAME) and NAME.1 holding [f - half, f): nothing
	 * before f - half survives. If that is past what NAME holds, the bytes only files made
	 * and dropped within this flush would hold are skipped. NAME itself is filled up first
	 * (when the ring still has those bytes): a `log -f` follower holds it open and reads
	 * them, then goes on with NAME.1 and NAME. */
	uint64_t half = l->limit / 2, end = l->size + l->pend;
	uint64_t f = (end - 1) / half * half, from = l->size;
	if (f > l->size + half) {
		uint64_t fill = half - l->size;
		if (fill && l->pend <= l->cap && write_ring(l, l->pend, fill) < 0)
			goto out;
		from = f - half;
		mark_cut(l);
		if (rotate(l) < 0)
			goto out;
	}
	uint64_t need = end - from; /* <= min(pend, cap): see the top of the file */
	write_ring(l, need, need);
out:
	l->pend = 0;
}

void pp_outlog_append(struct pp_outlog *l, const uint8_t *p, size_t n)
{
	if (l->fd < 0)
		return;
	if (!l->pend)
		l->since_ns = ck_now_ns();
	bool drop = l->cap >= l->limit; /* the ring holds all a flush can need */
	while (n) {
		if (!drop && l->pend == l->cap)
			pp_outlog_flush(l);
		size_t k = drop ? n : (size_t)CK_MIN((uint64_t)n, l->cap - l->pend);
		if (k > l->cap) { /* only the newest cap bytes can matter */
			l->head += k - l->cap;
			l->pend += k - l->cap;
			p += k - l->cap;
			n -= k - l->cap;
			k = l->cap;
		}
		size_t at = (size_t)(l->head % l->cap), k1 = CK_MIN(k, l->cap - at);
		memcpy(l->buf + at, p, k1);
		memcpy(l->buf, p + k1, k - k1);
		l->head += k;
		l->pend += k;
		p += k;
		n -= k;
	}
}

void pp_outlog_close(struct pp_outlog *l)
{
	pp_outlog_flush(l);
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	free(l->name);
	free(l->buf);
	l->name = NULL;
	l->buf = NULL;
}

static int copy_file(int dirfd, const char *name, int out_fd, size_t skip)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (skip && lseek(fd, (off_t)skip, SEEK_SET) < 0)
		return -errno;
	uint8_t buf[65536];
	for (;;) {
		ssize_t n = ck_read_full(fd, buf, sizeof(buf));
		if (n < 0)
			return (int)n;
		if (n == 0)
			return 0;
		int r = ck_write_full(out_fd, buf, (size_t)n);
		if (r < 0)
			return r;
	}
}

int ptyproxy_log_dump(int dirfd, const char *name, int out_fd)
{
	char old[PATH_MAX], cut[PATH_MAX];
	if (!name)
		name = "output.log";
	snprintf(old, sizeof(old), "%s.1", name);
	snprintf(cut, sizeof(cut), "%s.cut", name);
	/* The oldest bytes were dropped: start at a line, not in the middle of one (within the
	 * first 4 KiB; output without newlines is shown whole). */
	size_t skip = 0;
	if (faccessat(dirfd, cut, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		_cleanup_close_ int fd = openat(dirfd, old, O_RDONLY | O_CLOEXEC);
		char head[4096];
		ssize_t n = fd >= 0 ? ck_read_full(fd, head, sizeof(head)) : -1;
		const char *nl = n > 0 ? memchr(head, '\n', (size_t)n) : NULL;
		skip = nl ? (size_t)(nl - head) + 1 : 0;
	}
	int r = copy_file(dirfd, old, out_fd, skip);
	return r < 0 ? r : copy_file(dirfd, name, out_fd, 0);
}
