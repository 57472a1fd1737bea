/* Reading /proc files, whose st_size is 0: read until end of file with a growing buffer. */
#include "restore/dump-internal.h"

#include <fcntl.h>

int dump_read_proc(const char *path, size_t max, char **ret_buf, size_t *ret_len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t cap = 4096, len = 0;
	_cleanup_free_ char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (cap - len < 2048) {
			if (cap >= max)
				return -EFBIG;
			cap = CK_MIN(cap * 2, max);
			char *n = realloc(buf, cap);
			if (!n)
				return -ENOMEM;
			buf = n;
		}
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	*ret_len = len;
	*ret_buf = TAKE_PTR(buf);
	return 0;
}
