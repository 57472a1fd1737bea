/* Image reader. Nothing read from disk is trusted: sizes are checked against the file before
 * allocation, every section is bounded and checksummed before it is parsed, and the parsed model
 * is checked for consistency (runs inside vmas, runs tiling pages.img exactly). Every failure
 * produces one line naming the file. */
#include "restore/image-internal.h"

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

static int fail(struct restore_err *err, int r, const char *id, const char *file, const char *fmt,
		...) __attribute__((format(printf, 5, 6)));

static int fail(struct restore_err *err, int r, const char *id, const char *file, const char *fmt,
		...)
{
	if (!err)
		return r;
	char what[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(err->msg, sizeof(err->msg), "%s/%s %s", id, file, what);
	return r;
}

int img_run_corrupt(struct restore_err *err, const char *id, const struct restore_page_run *p)
{
	return fail(err, -EBADMSG, id, IMG_PAGES_NAME, "is corrupt (checksum of pages at 0x%llx)",
		    (unsigned long long)p->addr);
}

void restore_image_free(struct restore_image *img)
{
	if (!img)
		return;
	img_proc_clear(&img->proc);
	img_timers_clear(&img->timers);
	for (size_t i = 0; i < img->nthreads; i++)
		img_thread_clear(&img->threads[i]);
	free(img->threads);
	for (size_t i = 0; i < img->nvmas; i++) {
		free(img->vmas[i].path);
		free(img->vmas[i].vmflags);
	}
	free(img->vmas);
	for (size_t i = 0; i < img->nfds; i++) {
		free(img->fds[i].target);
		free(img->fds[i].fdinfo);
		img_fdstate_clear(&img->fds[i].st);
	}
	free(img->fds);
	free(img->runs);
	if (img->pages_fd >= 0)
		close(img->pages_fd);
	free(img);
}

/* Check a file header; on success *ret_body_len / *ret_body_sum are the header's claims and
 * the file size has been checked to be exactly header_len + body_len. */
static int check_header(const uint8_t *h, uint64_t fsize, const char *magic, uint32_t hdr_len,
			uint64_t *ret_body_len, uint64_t *ret_body_sum, const char *id,
			const char *file, struct restore_err *err)
{
	if (fsize < IMG_HDR_LEN)
		return fail(err, -EBADMSG, id, file, "is truncated (%llu bytes, header needs %u)",
			    (unsigned long long)fsize, IMG_HDR_LEN);
	if (memcmp(h, magic, IMG_MAGIC_LEN) != 0)
		return fail(err, -EBADMSG, id, file, "is not a ckptenv image (bad magic)");
	uint32_t version = ck_get_le32(h + 8);
	if (version > RESTORE_IMAGE_VERSION)
		return fail(err, -EPROTONOSUPPORT, id, file,
			    "has format version %u; this build reads up to %u", version,
			    RESTORE_IMAGE_VERSION);
	if (version == 0)
		return fail(err, -EBADMSG, id, file, "is corrupt (version 0)");
	if (ck_get_le64(h + 32) != ck_checksum(h, 32))
		return fail(err, -EBADMSG, id, file, "is corrupt (header checksum mismatch)");
	if (ck_get_le32(h + 12) != hdr_len)
		return fail(err, -EBADMSG, id, file, "is corrupt (header length %u)",
			    ck_get_le32(h + 12));
	uint64_t blen = ck_get_le64(h + 16);
	if (blen > UINT64_MAX - hdr_len || fsize != hdr_len + blen)
		return fail(err, -EBADMSG, id, file,
			    "is truncated (%llu bytes expected, %llu found)",
			    (unsigned long long)(hdr_len + blen), (unsigned long long)fsize);
	*ret_body_len = blen;
	*ret_body_sum = ck_get_le64(h + 24);
	return 0;
}

static int parse_sections(const uint8_t *p, size_t len, struct restore_image *img, const char *id,
			  struct restore_err *err)
{
	size_t off = 0, tcap = 0;
	unsigned seen[IMG_SEC_RUNS + 1] = {0}, fdstate_seen = 0;
	bool seen_timers = false;
	while (off < len) {
		if (len - off < IMG_SEC_HDR_LEN)
			return fail(err, -EBADMSG, id, IMG_CORE_NAME,
				    "is corrupt (cut section header)");
		uint32_t type = ck_get_le32(p + off), flags = ck_get_le32(p + off + 4);
		uint64_t slen = ck_get_le64(p + off + 8), sum = ck_get_le64(p + off + 16);
		off += IMG_SEC_HDR_LEN;
		if (slen > IMG_SEC_MAX_LEN || slen > len - off)
			return fail(err, -EBADMSG, id, IMG_CORE_NAME,
				    "is corrupt (section %u of %llu bytes overruns the file)", type,
				    (unsigned long long)slen);
		if (ck_checksum(p + off, slen) != sum)
			return fail(err, -EBADMSG, id, IMG_CORE_NAME,
				    "is corrupt (checksum of section %u)", type);
		struct ck_rd rd = {.p = p + off, .len = slen};
		off += slen;
		if (type == IMG_SEC_TIMERS) {
			if (seen_timers)
				return fail(err, -EBADMSG, id, IMG_CORE_NAME,
					    "is corrupt (section %u twice)", type);
			seen_timers = true;
			int r = img_unpack_timers(&rd, &img->timers);
			if (r == -ENOMEM)
				return r;
			if (r < 0)
				return fail(err, -EBADMSG, id, IMG_CORE_NAME,
					    "is corrupt (section %u does not parse)", type);
			continue;
		}
		if (type == IMG_SEC_FDSTATE) { /* optional, once, after FDS */
			if (seen[IMG_SEC_FDS] != 1 || fdstate_seen++)
				return fail(err, -EBADMSG, id, IMG_CORE_NAME,
					    "is corrupt (section %u out of place)", type);
			int r = img_unpack_fdstate(&rd, img);
			if (r == -ENOMEM)
				return r;
			if (r < 0)
				return fail(err, -EBADMSG, id, IMG_CORE_NAME,
					    "is corrupt (section %u does not parse)", type);
			continue;
		}
		if (type == 0 || type > IMG_SEC_RUNS) {
			if (flags & IMG_SEC_F_OPTIONAL)
				continue;
			return fail(err, -EPROTONOSUPPORT, id, IMG_CORE_NAME,
				    "has an unknown required section %u (newer format?)", type);
		}
		if (type != IMG_SEC_THREAD && seen[type])
			return fail(err, -EBADMSG, id, IMG_CORE_NAME,
				    "is corrupt (section %u twice)", type);
		seen[type]++;
		int r = 0;
		switch (type) {
		case IMG_SEC_PROC:
			r = img_unpack_proc(&rd, &img->proc);
			break;
		case IMG_SEC_THREAD:
			if (img->nthreads == IMG_MAX_THREADS)
				return fail(err, -EBADMSG, id, IMG_CORE_NAME,
					    "has too many threads");
			if (img->nthreads == tcap) {
				size_t nc = tcap ? tcap * 2 : 8;
				struct restore_thread *t = realloc(img->threads, nc * sizeof(*t));
				if (!t)
					return -ENOMEM;
				img->threads = t;
				tcap = nc;
			}
			img->threads[img->nthreads] = (struct restore_thread){0};
			img->nthreads++;
			r = img_unpack_thread(&rd, &img->threads[img->nthreads - 1]);
			break;
		case IMG_SEC_VMAS:
			r = img_unpack_vmas(&rd, img);
			break;
		case IMG_SEC_FDS:
			r = img_unpack_fds(&rd, img);
			break;
		case IMG_SEC_RUNS:
			r = img_unpack_runs(&rd, img);
			break;
		}
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return fail(err, -EBADMSG, id, IMG_CORE_NAME,
				    "is corrupt (section %u does not parse)", type);
	}
	for (unsigned t = IMG_SEC_PROC; t <= IMG_SEC_RUNS; t++)
		if (!seen[t])
			return fail(err, -EBADMSG, id, IMG_CORE_NAME, "is missing section %u", t);
	return 0;
}

/* Model consistency the restorer relies on. */
static int check_model(const struct restore_image *img, const char *id, struct restore_err *err)
{
	if (img->threads[0].tid != img->proc.pid)
		return fail(err, -EBADMSG, id, IMG_CORE_NAME,
			    "is corrupt (first thread is not the leader)");
	for (size_t i = 0; i < img->nthreads; i++)
		for (size_t j = i + 1; j < img->nthreads; j++)
			if (img->threads[i].tid == img->threads[j].tid)
				return fail(err, -EBADMSG, id, IMG_CORE_NAME,
					    "is corrupt (tid %d twice)", img->threads[i].tid);
	size_t v = 0;
	for (size_t i = 0; i < img->nruns; i++) {
		const struct restore_page_run *p = &img->runs[i];
		uint64_t a = p->addr, end = p->addr + (uint64_t)p->npages * RESTORE_PAGE_SIZE;
		while (v < img->nvmas && img->vmas[v].end <= a)
			v++;
		/* The run must be covered by one vma or by adjacent ones. */
		size_t k = v;
		while (k < img->nvmas && img->vmas[k].start <= a && a < end) {
			a = img->vmas[k].end;
			k++;
			if (k < img->nvmas && img->vmas[k].start != a)
				break;
		}
		if (a < end)
			return fail(err, -EBADMSG, id, IMG_CORE_NAME,
				    "is corrupt (page run at 0x%llx outside every mapping)",
				    (unsigned long long)p->addr);
	}
	return 0;
}

static int load(int dirfd, const char *id, struct restore_image **ret, struct restore_err *err)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/%s", id, IMG_CORE_NAME) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	_cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, -errno, id, IMG_CORE_NAME, "cannot be opened: %s",
			    strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size > IMG_CORE_MAX_LEN + IMG_CORE_HDR_LEN)
		return fail(err, -EBADMSG, id, IMG_CORE_NAME, "is corrupt (%llu bytes)",
			    (unsigned long long)st.st_size);
	size_t fsize = (size_t)st.st_size;
	_cleanup_free_ uint8_t *buf = malloc(fsize ? fsize : 1);
	if (!buf)
		return -ENOMEM;
	ssize_t n = ck_read_full(fd, buf, fsize);
	if (n < 0)
		return fail(err, (int)n, id, IMG_CORE_NAME, "cannot be read: %s",
			    strerror((int)-n));
	uint64_t blen, bsum;
	int r = check_header(buf, (uint64_t)n, IMG_MAGIC_CORE, IMG_CORE_HDR_LEN, &blen, &bsum, id,
			     IMG_CORE_NAME, err);
	if (r < 0)
		return r;
	if (ck_checksum(buf + IMG_CORE_HDR_LEN, blen) != bsum)
		return fail(err, -EBADMSG, id, IMG_CORE_NAME, "is corrupt (checksum mismatch)");

	_cleanup_(image_freep) struct restore_image *img = calloc(1, sizeof(*img));
	if (!img)
		return -ENOMEM;
	img->pages_fd = -1;
	r = parse_sections(buf + IMG_CORE_HDR_LEN, blen, img, id, err);
	if (r < 0)
		return r;
	r = check_model(img, id, err);
	if (r < 0)
		return r;

	snprintf(path, sizeof(path), "%s/%s", id, IMG_PAGES_NAME);
	img->pages_fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (img->pages_fd < 0)
		return fail(err, -errno, id, IMG_PAGES_NAME, "cannot be opened: %s",
			    strerror(errno));
	if (fstat(img->pages_fd, &st) < 0)
		return -errno;
	uint8_t h[IMG_PAGES_HDR_LEN];
	n = ck_pread_full(img->pages_fd, h, sizeof(h), 0);
	if (n < 0)
		return fail(err, (int)n, id, IMG_PAGES_NAME, "cannot be read");
	/* A file shorter than its header page is truncated whatever the header claims. */
	r = check_header(h, n < (ssize_t)IMG_PAGES_HDR_LEN ? (uint64_t)n : (uint64_t)st.st_size,
			 IMG_MAGIC_PAGES, IMG_PAGES_HDR_LEN, &blen, &bsum, id, IMG_PAGES_NAME, err);
	if (r == 0 && n < (ssize_t)IMG_PAGES_HDR_LEN)
		r = fail(err, -EBADMSG, id, IMG_PAGES_NAME, "is truncated");
	if (r < 0)
		return r;
	if ((uint64_t)st.st_size != img->pages_size)
		return fail(err, -EBADMSG, id, IMG_PAGES_NAME,
			    "is truncated (%llu bytes expected, %llu found)",
			    (unsigned long long)img->pages_size, (unsigned long long)st.st_size);
	for (size_t i = IMG_HDR_LEN; i < IMG_PAGES_HDR_LEN; i++)
		if (h[i])
			return fail(err, -EBADMSG, id, IMG_PAGES_NAME,
				    "is corrupt (header padding)");
	*ret = TAKE_PTR(img);
	return 0;
}

int restore_image_load(int dirfd, const char *id, struct restore_image **ret,
		       struct restore_err *err)
{
	if (!*id || strchr(id, '/'))
		return -EINVAL;
	return load(dirfd, id, ret, err);
}

#define VERIFY_AHEAD (64ull << 20)

int restore_image_verify(int dirfd, const char *id, struct restore_err *err)
{
	_cleanup_(image_freep) struct restore_image *img = NULL;
	int r = restore_image_load(dirfd, id, &img, err);
	if (r < 0)
		return r;
	size_t cap = (size_t)IMG_MAX_RUN_PAGES * RESTORE_PAGE_SIZE;
	_cleanup_free_ uint8_t *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	/* A cold image is read from the disk: keep the disk busy while we hash, by asking for
	 * the next VERIFY_AHEAD bytes before each read (WILLNEED starts the reads, does not
	 * wait); the default readahead window alone left it idle during the checksums. */
	(void)posix_fadvise(img->pages_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	uint64_t ahead = 0;
	for (size_t i = 0; i < img->nruns; i++) {
		const struct restore_page_run *p = &img->runs[i];
		size_t len = (size_t)p->npages * RESTORE_PAGE_SIZE;
		if (ahead < p->file_off + len + VERIFY_AHEAD / 2) {
			uint64_t to = CK_MIN(p->file_off + len + VERIFY_AHEAD, img->pages_size);
			if (to > ahead && to > p->file_off)
				(void)posix_fadvise(img->pages_fd,
						    (off_t)CK_MAX(ahead, p->file_off),
						    (off_t)(to - CK_MAX(ahead, p->file_off)),
						    POSIX_FADV_WILLNEED);
			ahead = to;
		}
		ssize_t n = ck_pread_full(img->pages_fd, buf, len, (off_t)p->file_off);
		if (n < 0)
			return fail(err, (int)n, id, IMG_PAGES_NAME, "cannot be read");
		if ((size_t)n != len)
			return fail(err, -EBADMSG, id, IMG_PAGES_NAME, "is truncated");
		if (ck_checksum(buf, len) != p->checksum)
			return img_run_corrupt(err, id, p);
	}
	return 0;
}

int restore_image_read_page(const struct restore_image *img, uint64_t addr, void *buf)
{
	if (addr % RESTORE_PAGE_SIZE)
		return -EINVAL;
	size_t lo = 0, hi = img->nruns;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct restore_page_run *p = &img->runs[mid];
		if (addr < p->addr) {
			hi = mid;
		} else if (addr >= p->addr + (uint64_t)p->npages * RESTORE_PAGE_SIZE) {
			lo = mid + 1;
		} else {
			ssize_t n = ck_pread_full(img->pages_fd, buf, RESTORE_PAGE_SIZE,
						  (off_t)(p->file_off + (addr - p->addr)));
			if (n < 0)
				return (int)n;
			return n == RESTORE_PAGE_SIZE ? 1 : -EBADMSG;
		}
	}
	return 0;
}

int restore_image_latest(int dirfd, char *buf, size_t len)
{
	_cleanup_free_ char *s = NULL;
	size_t n;
	int r = ck_read_file_at(dirfd, IMG_LATEST_NAME, NAME_MAX + 2, &s, &n);
	if (r == -EFBIG)
		return -EBADMSG;
	if (r < 0)
		return r;
	if (n < 2 || s[n - 1] != '\n' || memchr(s, '/', n) || memchr(s, 0, n) || s[0] == '.')
		return -EBADMSG;
	if (n > len)
		return -ENAMETOOLONG;
	memcpy(buf, s, n - 1);
	buf[n - 1] = 0;
	return 0;
}

static const char *const vma_kinds[] = {
	[RESTORE_VMA_ANON_PRIVATE] = "anon-private",
	[RESTORE_VMA_ANON_SHARED] = "anon-shared",
	[RESTORE_VMA_FILE_PRIVATE] = "file-private",
	[RESTORE_VMA_FILE_SHARED] = "file-shared",
	[RESTORE_VMA_MEMFD] = "memfd",
	[RESTORE_VMA_STACK] = "stack",
	[RESTORE_VMA_HEAP] = "heap",
	[RESTORE_VMA_VVAR] = "vvar",
	[RESTORE_VMA_VVAR_VCLOCK] = "vvar_vclock",
	[RESTORE_VMA_VDSO] = "vdso",
};

static const char *const fd_kinds[] = {
	[RESTORE_FD_REGULAR] = "regular file",
	[RESTORE_FD_DIR] = "directory",
	[RESTORE_FD_PIPE] = "pipe",
	[RESTORE_FD_SOCKET] = "socket",
	[RESTORE_FD_EVENTFD] = "eventfd",
	[RESTORE_FD_TIMERFD] = "timerfd",
	[RESTORE_FD_SIGNALFD] = "signalfd",
	[RESTORE_FD_EPOLL] = "epoll",
	[RESTORE_FD_INOTIFY] = "inotify",
	[RESTORE_FD_TTY] = "tty",
	[RESTORE_FD_CHR] = "character device",
	[RESTORE_FD_OTHER] = "other",
};

const char *restore_vma_kind_name(uint32_t kind)
{
	return kind < CK_ARRAY_SIZE(vma_kinds) && vma_kinds[kind] ? vma_kinds[kind] : "?";
}

const char *restore_fd_kind_name(uint32_t kind)
{
	return kind < CK_ARRAY_SIZE(fd_kinds) && fd_kinds[kind] ? fd_kinds[kind] : "?";
}
