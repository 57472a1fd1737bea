/* Looping, EINTR-safe I/O and atomic whole-file replacement. */
#include "ck.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>

ssize_t ck_read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int ck_write_full(int fd, const void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	return 0;
}

ssize_t ck_pread_full(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, off + (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int ck_pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, off + (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	return 0;
}

ssize_t ck_read_small(const char *path, char *buf, size_t len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = ck_read_full(fd, buf, len - 1);
	if (n < 0)
		return n;
	buf[n] = 0;
	return n;
}

int ck_read_file_at(int dirfd, const char *path, size_t max, char **ret_buf, size_t *ret_len)
{
	/* O_NONBLOCK: a FIFO put in a file's place must not hang the reader in open() */
	_cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if ((uint64_t)st.st_size > max)
		return -EFBIG;
	/* st_size is only a first guess: /proc files say 0, and a file may grow. */
	size_t cap = CK_MAX((size_t)st.st_size + 1, (size_t)4096), len = 0;
	cap = CK_MIN(cap, max + 1);
	_cleanup_free_ char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (len == cap - 1) {
			if (cap > max) {
				/* Exactly @max bytes is fine; one more is not. */
				char probe;
				ssize_t m = ck_read_full(fd, &probe, 1);
				if (m < 0)
					return (int)m;
				if (m > 0)
					return -EFBIG;
				break;
			}
			size_t nc = CK_MIN(cap * 2, max + 1);
			char *n = realloc(buf, nc);
			if (!n)
				return -ENOMEM;
			buf = n;
			cap = nc;
		}
		ssize_t n = ck_read_full(fd, buf + len, cap - 1 - len);
		if (n < 0)
			return (int)n;
		len += (size_t)n;
		if (len < cap - 1)
			break;
	}
	buf[len] = 0;
	*ret_len = len;
	*ret_buf = TAKE_PTR(buf);
	return 0;
}

int ck_fsync_dir_at(int dirfd, const char *path)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		return -errno;
	return 0;
}

int ck_write_file_atomic(int dirfd, const char *path, const void *buf, size_t len, mode_t mode)
{
	char tmp[PATH_MAX];
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	if (slash) {
		size_t dl = (size_t)(slash - path);
		if (dl >= sizeof(dir))
			return -ENAMETOOLONG;
		memcpy(dir, path, dl);
		dir[dl] = 0;
		if (dl == 0)
			strcpy(dir, "/");
	} else {
		strcpy(dir, ".");
	}
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	int r = ck_write_full(fd, buf, len);
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(dirfd, tmp, dirfd, path) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dirfd, tmp, 0);
		return r;
	}
	return ck_fsync_dir_at(dirfd, dir);
}

int ck_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int ck_rm_rf_at(int dirfd, const char *path)
{
	int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno == ENOTDIR || errno == ELOOP)
			return unlinkat(dirfd, path, 0) < 0 && errno != ENOENT ? -errno : 0;
		return -errno;
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		int r = -errno;
		close(fd);
		return r;
	}
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		int q;
		if (de->d_type == DT_DIR)
			q = ck_rm_rf_at(fd, de->d_name);
		else
			q = unlinkat(fd, de->d_name, 0) < 0 && errno != ENOENT ? -errno : 0;
		if (q == -EISDIR)
			q = ck_rm_rf_at(fd, de->d_name);
		if (q < 0 && r == 0)
			r = q;
	}
	closedir(d);
	if (unlinkat(dirfd, path, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
		r = -errno;
	return r;
}

uint64_t ck_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int ck_send_fds(int sock, const void *buf, size_t len, const int *fds, size_t nfds)
{
	char dummy = 0;
	struct iovec iov = {.iov_base = len ? (void *)buf : &dummy, .iov_len = len ? len : 1};
	union {
		char buf[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds > 16)
		return -EINVAL;
	if (nfds > 0) {
		memset(&u, 0, sizeof(u));
		msg.msg_control = u.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	for (;;) {
		ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if ((size_t)n < iov.iov_len) {
			/* The descriptors went with the first byte; send the rest plainly. */
			const char *rest = (const char *)iov.iov_base + n;
			size_t left = iov.iov_len - (size_t)n;
			while (left) {
				ssize_t m = send(sock, rest, left, MSG_NOSIGNAL);
				if (m < 0 && errno == EINTR)
					continue;
				if (m < 0)
					return -errno;
				rest += m;
				left -= (size_t)m;
			}
		}
		return 0;
	}
}

ssize_t ck_recv_fds(int sock, void *buf, size_t len, int *fds, size_t max_fds, size_t *ret_nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf)};
	ssize_t n;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	size_t got = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *in = (int *)CMSG_DATA(c);
		for (size_t i = 0; i < k; i++) {
			if (got < max_fds)
				fds[got++] = in[i];
			else
				close(in[i]);
		}
	}
	*ret_nfds = got;
	return n;
}

void ck_close_all_but(int from, const int *keep, size_t n)
{
	unsigned lo = from < 0 ? 0u : (unsigned)from;
	for (;;) {
		/* The lowest kept fd at or above lo (n is small: a scan per step). */
		long next = -1;
		for (size_t i = 0; i < n; i++)
			if (keep[i] >= 0 && (unsigned)keep[i] >= lo && (next < 0 || keep[i] < next))
				next = keep[i];
		if (next < 0)
			break;
		if ((unsigned)next > lo)
			syscall(SYS_close_range, lo, (unsigned)next - 1, 0u);
		lo = (unsigned)next + 1;
	}
	syscall(SYS_close_range, lo, ~0u, 0u);
}
