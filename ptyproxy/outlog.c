/* The bounded output log: the newest bytes in NAME, the half before in NAME.1. When NAME
 * reaches half the limit it becomes NAME.1 (replacing the older half) and a new NAME starts, so
 * at most `limit` bytes are kept and the oldest go first. Written from a 64 KiB buffer so the
 * fast path pays one write per 64 KiB, not per read. */
#include <limits.h>
#include <sys/stat.h>

#include "ptyproxy-internal.h"

#define OUTLOG_BUF 65536

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
	l->name = strdup(name);
	l->buf = malloc(OUTLOG_BUF);
	if (!l->name || !l->buf) {
		pp_outlog_close(l);
		return -ENOMEM;
	}
	int r = open_cur(l);
	if (r < 0)
		pp_outlog_close(l);
	return r;
}

void pp_outlog_flush(struct pp_outlog *l)
{
	if (l->fd < 0 || !l->len)
		return;
	const uint8_t *p = l->buf;
	size_t n = l->len;
	while (n) {
		uint64_t room = l->limit / 2 > l->size ? l->limit / 2 - l->size : 0;
		if (!room) {
			char old[PATH_MAX];
			snprintf(old, sizeof(old), "%s.1", l->name);
			close(l->fd);
			l->fd = -1;
			if (renameat(l->dirfd, l->name, l->dirfd, old) < 0 || open_cur(l) < 0) {
				ck_debug("ptyproxy: output log rotation failed: %m");
				break;
			}
			continue;
		}
		size_t k = (size_t)CK_MIN((uint64_t)n, room);
		if (ck_write_full(l->fd, p, k) < 0) {
			ck_debug("ptyproxy: output log write failed");
			break;
		}
		l->size += k;
		p += k;
		n -= k;
	}
	l->len = 0;
}

void pp_outlog_append(struct pp_outlog *l, const uint8_t *p, size_t n)
{
	if (l->fd < 0)
		return;
	while (n) {
		size_t k = CK_MIN(n, (size_t)OUTLOG_BUF - l->len);
		memcpy(l->buf + l->len, p, k);
		l->len += k;
		p += k;
		n -= k;
		if (l->len == OUTLOG_BUF)
			pp_outlog_flush(l);
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

static int copy_file(int dirfd, const char *name, int out_fd)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
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
	char old[PATH_MAX];
	if (!name)
		name = "output.log";
	snprintf(old, sizeof(old), "%s.1", name);
	int r = copy_file(dirfd, old, out_fd);
	return r < 0 ? r : copy_file(dirfd, name, out_fd);
}
