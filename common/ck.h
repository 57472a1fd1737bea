/* ckptenv common helpers: cleanup attributes, errno-returning I/O, little-endian packing,
 * checksums, atomic file writes. Depends on nothing but libc and libxxhash. */
#ifndef CK_H
#define CK_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define CK_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* Each argument evaluated once: CK_MIN(left, rand() % 7) once called rand() twice and could
 * return more than left. Unique names (__COUNTER__) so that nested uses do not shadow. */
#define CK_CAT_(x, y)	     x##y
#define CK_CAT(x, y)	     CK_CAT_(x, y)
#define CK_PICK_(a, b, op, u)                                                                 \
	({                                                                                     \
		__auto_type CK_CAT(ck_a, u) = (a);                                             \
		__auto_type CK_CAT(ck_b, u) = (b);                                             \
		CK_CAT(ck_a, u) op CK_CAT(ck_b, u) ? CK_CAT(ck_a, u) : CK_CAT(ck_b, u);       \
	})
#define CK_MIN(a, b) CK_PICK_(a, b, <, __COUNTER__)
#define CK_MAX(a, b) CK_PICK_(a, b, >, __COUNTER__)
#define CK_UNUSED	 __attribute__((unused))

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void ck_freep(void *p)
{
	free(*(void **)p);
}

static inline void ck_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

#define _cleanup_free_	_cleanup_(ck_freep)
#define _cleanup_close_ _cleanup_(ck_closep)

/* Hand ownership out of a cleanup-attributed variable. */
#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _ptr_ = (p);                                                         \
		(p) = NULL;                                                                        \
		_ptr_;                                                                             \
	})
#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _fd_ = (fd);                                                                   \
		(fd) = -1;                                                                         \
		_fd_;                                                                              \
	})

/** Read exactly @len bytes at the current offset, retrying EINTR and short reads.
 *  Returns bytes read (< len only at end of file) or -errno. */
ssize_t ck_read_full(int fd, void *buf, size_t len);
/** Write all @len bytes, retrying EINTR and short writes. Returns 0 or -errno. */
int ck_write_full(int fd, const void *buf, size_t len);
/** pread/pwrite counterparts of the above. */
ssize_t ck_pread_full(int fd, void *buf, size_t len, off_t off);
int ck_pwrite_full(int fd, const void *buf, size_t len, off_t off);

/** Read a whole file (at most @max bytes) into a malloc'd buffer, NUL-terminated for
 *  convenience; reads to end of file, so /proc files (st_size 0) work too. -EFBIG when larger
 *  than @max, -EINVAL when not a regular file (a FIFO in its place is not waited for). */
int ck_read_file_at(int dirfd, const char *path, size_t max, char **ret_buf, size_t *ret_len);
/** Read the start of a small file (up to @len - 1 bytes: more is cut off) into @buf,
 *  NUL-terminated; reads to end of file, so /proc files work too. Returns the length read or
 *  -errno. */
ssize_t ck_read_small(const char *path, char *buf, size_t len);

/** Atomically replace @path (relative to @dirfd) with @len bytes of @buf: write to a temporary
 *  name, fsync, rename, fsync the directory. The file gets @mode. A crash leaves either the old
 *  or the new content, never a mix. Returns 0 or -errno. */
int ck_write_file_atomic(int dirfd, const char *path, const void *buf, size_t len, mode_t mode);

/** fsync a directory by path relative to @dirfd. */
int ck_fsync_dir_at(int dirfd, const char *path);

/** mkdir -p with @mode for every created component. */
int ck_mkdir_p(const char *path, mode_t mode);

/** Remove a tree (like rm -rf) below @dirfd/@path. Missing path is not an error. */
int ck_rm_rf_at(int dirfd, const char *path);

/** Close every fd >= @from except the @n in @keep (any order, duplicates allowed), with
 *  close_range: system calls only, so a child forked from a threaded process may call it. */
void ck_close_all_but(int from, const int *keep, size_t n);

/** 64-bit checksum (XXH3) used by every on-disk and wire format. */
uint64_t ck_checksum(const void *buf, size_t len);

/* Explicit little-endian packing: formats never write native structs. */
static inline void ck_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void ck_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void ck_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t ck_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t ck_get_le32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}
static inline uint64_t ck_get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* A growable byte buffer for building formats. On allocation failure it records -ENOMEM
 * in ->err and ignores further appends, so callers check once at the end. */
struct ck_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	int err;
};

void ck_buf_free(struct ck_buf *b);
int ck_buf_reserve(struct ck_buf *b, size_t extra);
void ck_buf_append(struct ck_buf *b, const void *p, size_t n);
void ck_buf_le16(struct ck_buf *b, uint16_t v);
void ck_buf_le32(struct ck_buf *b, uint32_t v);
void ck_buf_le64(struct ck_buf *b, uint64_t v);
/** Append a length-prefixed (le32) byte string. */
void ck_buf_str(struct ck_buf *b, const char *s, size_t n);

/* A bounds-checked reader over untrusted bytes: every get fails (returns false and sets ->err
 * to -EBADMSG) instead of reading past the end. */
struct ck_rd {
	const uint8_t *p;
	size_t len;
	size_t off;
	int err;
};

bool ck_rd_bytes(struct ck_rd *r, void *dst, size_t n);
bool ck_rd_le16(struct ck_rd *r, uint16_t *v);
bool ck_rd_le32(struct ck_rd *r, uint32_t *v);
bool ck_rd_le64(struct ck_rd *r, uint64_t *v);
/** Read a length-prefixed string of at most @max bytes; *ret points into the buffer (not
 *  NUL-terminated), *ret_len is its length. */
bool ck_rd_str(struct ck_rd *r, size_t max, const char **ret, size_t *ret_len);

/* Logging: libraries log at debug level only (CK_LOG_DEBUG set in the environment); the CLI and
 * the supervisor log once at their boundary. */
void ck_log_set_file(int fd);
void ck_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ck_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Monotonic clock in nanoseconds. */
uint64_t ck_now_ns(void);

/** Send @nfds file descriptors plus @len bytes over a unix socket (SCM_RIGHTS). */
int ck_send_fds(int sock, const void *buf, size_t len, const int *fds, size_t nfds);
/** Receive up to @max_fds descriptors (made O_CLOEXEC) plus at most @len bytes. Returns bytes
 *  received (0 at end of stream) and sets *ret_nfds. Extra descriptors are closed. */
ssize_t ck_recv_fds(int sock, void *buf, size_t len, int *fds, size_t max_fds, size_t *ret_nfds);

#endif
