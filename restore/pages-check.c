/* The page check of a restore, run by the restoring child's parent while the child's blob
 * fills the pages (restore_process_opts.check_fd): each run's checksum is computed on the
 * pages as they landed in the child's memory, so that pages.img is read once, by the blob, and
 * the hashing runs on another CPU than the reading. Nothing of the job runs before the verdict:
 * the blob waits for it before it sets the final protections. */
#include "restore/image-internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "restore/blob/blob.h"

/* Exactly @len bytes at @addr of @pid, or from the file when the kernel will not let us read
 * the child (a Yama or LSM policy): slower, a second read of the pages, but still a check. */
static int read_run(pid_t pid, int pages_fd, const struct restore_page_run *p, uint8_t *buf,
		    size_t len, bool *from_file)
{
	size_t got = 0;
	while (!*from_file && got < len) {
		struct iovec l = {buf + got, len - got};
		struct iovec r = {(void *)(uintptr_t)(p->addr + got), len - got};
		ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);
		if (n > 0)
			got += (size_t)n;
		else if (n < 0 && (errno == EPERM || errno == ENOSYS))
			*from_file = true;
		else
			return n < 0 ? -errno : -EFAULT;
	}
	if (*from_file) {
		ssize_t n = ck_pread_full(pages_fd, buf, len, (off_t)p->file_off);
		if (n < 0)
			return (int)n;
		if ((size_t)n != len)
			return -EBADMSG;
	}
	return 0;
}

static int read_report(int fd, uint64_t *ret)
{
	size_t got = 0;
	while (got < sizeof(*ret)) {
		ssize_t n = read(fd, (char *)ret + got, sizeof(*ret) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EPIPE;
		got += (size_t)n;
	}
	return 0;
}

static void verdict(int fd, const char *line)
{
	/* The whole line, newline included: the blob reads until it. */
	size_t len = strlen(line);
	while (len) {
		ssize_t n = send(fd, line, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* the child is gone: nothing to tell */
		line += n;
		len -= (size_t)n;
	}
}

static int refuse(int fd, int r, struct restore_err *err)
{
	char line[sizeof(err->msg) + 64];
	snprintf(line, sizeof(line), "%s%s\n", RESTORE_CHECK_REFUSED,
		 err->msg[0] ? err->msg : strerror(-r));
	verdict(fd, line);
	return r;
}

int restore_pages_check(int dirfd, const char *id, pid_t pid, int check_fd,
			struct restore_err *err)
{
	_cleanup_(image_freep) struct restore_image *img = NULL;
	int r = restore_image_load(dirfd, id, &img, err);
	if (r < 0)
		return refuse(check_fd, r, err);
	_cleanup_free_ uint8_t *buf = malloc((size_t)IMG_MAX_RUN_PAGES * RESTORE_PAGE_SIZE);
	if (!buf)
		return refuse(check_fd, -ENOMEM, err);
	uint64_t filled = 0, checked = 0;
	bool from_file = false;
	size_t i = 0;
	for (;;) {
		r = read_report(check_fd, &filled);
		if (r < 0)
			return r;
		/* Every run wholly filled: hash it where it landed. */
		for (; i < img->nruns; i++) {
			const struct restore_page_run *p = &img->runs[i];
			size_t len = (size_t)p->npages * RESTORE_PAGE_SIZE;
			if (filled != CKR_CHECK_END && checked + len > filled)
				break;
			r = read_run(pid, img->pages_fd, p, buf, len, &from_file);
			if (r < 0 && r != -EBADMSG)
				return r; /* the child is gone or broken: its own words tell */
			if (r < 0 || ck_checksum(buf, len) != p->checksum)
				return refuse(check_fd, img_run_corrupt(err, id, p), err);
			checked += len;
		}
		if (filled == CKR_CHECK_END)
			break;
	}
	char go[2] = {CKR_CHECK_GO, 0};
	verdict(check_fd, go);
	return 0;
}
