/* Image corruption helpers shared by the suites: every case copies a good checkpoint, damages
 * one file, and asserts the reader refuses it (or, for re-checksummed structural damage, at
 * least never crashes and never returns anything but success or the two refusal codes). */
#ifndef RESTORE_FUZZ_H
#define RESTORE_FUZZ_H

#include "fixture.h"

static inline void fz_copy(int dirfd, const char *from, const char *to)
{
	ck_assert_int_eq(ck_rm_rf_at(dirfd, to), 0);
	ck_assert_int_eq(mkdirat(dirfd, to, 0700), 0);
	const char *files[] = {"core.img", "pages.img"};
	for (int i = 0; i < 2; i++) {
		char a[PATH_MAX], b[PATH_MAX];
		snprintf(a, sizeof(a), "%s/%s", from, files[i]);
		snprintf(b, sizeof(b), "%s/%s", to, files[i]);
		char *buf = NULL;
		size_t len = 0;
		int fd = openat(dirfd, a, O_RDONLY | O_CLOEXEC);
		ck_assert_int_ge(fd, 0);
		struct stat st;
		ck_assert_int_eq(fstat(fd, &st), 0);
		len = (size_t)st.st_size;
		buf = malloc(len + 1);
		ck_assert_int_eq(ck_read_full(fd, buf, len), (ssize_t)len);
		close(fd);
		fd = openat(dirfd, b, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(ck_write_full(fd, buf, len), 0);
		close(fd);
		free(buf);
	}
}

static inline uint64_t fz_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static inline void fz_expect_refused(int dirfd, const char *id, const char *file, const char *how)
{
	struct restore_err err = {0};
	int r = restore_image_verify(dirfd, id, &err);
	ck_assert_msg(r == -EBADMSG || r == -EPROTONOSUPPORT, "%s %s: verify returned %d (%s)",
		      file, how, r, err.msg);
	ck_assert_msg(strstr(err.msg, file) != NULL, "message does not name %s: %s", file, err.msg);
	ck_assert_msg(!strchr(err.msg, '\n'), "message is not one line: %s", err.msg);
}

/* Truncate and flip bytes of every file of checkpoint @good at @cases random offsets each. */
static inline void fz_run(int dirfd, const char *good, int cases, uint64_t seed)
{
	const char *files[] = {"core.img", "pages.img"};
	for (int f = 0; f < 2; f++) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "fz/%s", files[f]);
		for (int c = 0; c < cases; c++) {
			fz_copy(dirfd, good, "fz");
			int fd = openat(dirfd, path, O_RDWR | O_CLOEXEC);
			ck_assert_int_ge(fd, 0);
			struct stat st;
			ck_assert_int_eq(fstat(fd, &st), 0);
			ck_assert_int_gt(st.st_size, 0);
			uint64_t off = fz_rand(&seed) % (uint64_t)st.st_size;
			const char *how;
			if (c % 2 == 0) {
				ck_assert_int_eq(ftruncate(fd, (off_t)off), 0);
				how = "truncated";
			} else {
				uint8_t b;
				ck_assert_int_eq(pread(fd, &b, 1, (off_t)off), 1);
				b ^= (uint8_t)(1 + fz_rand(&seed) % 255);
				ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)off), 1);
				how = "flipped";
			}
			close(fd);
			fz_expect_refused(dirfd, "fz", files[f], how);
		}
	}
}

/* Structural fuzz of core.img: damage a section payload and fix every checksum, so the parser
 * itself meets the damage. Success is allowed (a register value may be anything); a crash or
 * another error code is not. */
static inline void fz_structural(int dirfd, const char *good, int cases, uint64_t seed)
{
	for (int c = 0; c < cases; c++) {
		fz_copy(dirfd, good, "fz");
		int fd = openat(dirfd, "fz/core.img", O_RDWR | O_CLOEXEC);
		ck_assert_int_ge(fd, 0);
		struct stat st;
		ck_assert_int_eq(fstat(fd, &st), 0);
		size_t len = (size_t)st.st_size;
		uint8_t *b = malloc(len);
		ck_assert_int_eq(ck_read_full(fd, b, len), (ssize_t)len);
		/* Pick a random section, then a random byte (header fields included). */
		size_t offs[4096], n = 0;
		for (size_t o = 40; o + 24 <= len && n < 4096;) {
			offs[n++] = o;
			o += 24 + (size_t)ck_get_le64(b + o + 8);
		}
		size_t s = offs[fz_rand(&seed) % n];
		uint64_t slen = ck_get_le64(b + s + 8);
		size_t at = s + (size_t)(fz_rand(&seed) % (slen + 24));
		int flips = 1 + (int)(fz_rand(&seed) % 3);
		for (int k = 0; k < flips; k++)
			b[CK_MIN(at + (size_t)k, len - 1)] ^= (uint8_t)(1 + fz_rand(&seed) % 255);
		slen = ck_get_le64(b + s + 8);
		if (s + 24 + slen <= len)
			ck_put_le64(b + s + 16, ck_checksum(b + s + 24, (size_t)slen));
		ck_put_le64(b + 24, ck_checksum(b + 40, len - 40));
		ck_put_le64(b + 32, ck_checksum(b, 32));
		ck_assert_int_eq(ck_pwrite_full(fd, b, len, 0), 0);
		close(fd);
		free(b);
		struct restore_err err = {0};
		int r = restore_image_verify(dirfd, "fz", &err);
		ck_assert_msg(r == 0 || r == -EBADMSG || r == -EPROTONOSUPPORT,
			      "structural case %d: %d (%s)", c, r, err.msg);
		if (r == 0) {
			struct restore_image *img = NULL;
			ck_assert_int_eq(restore_image_load(dirfd, "fz", &img, &err), 0);
			restore_image_free(img);
		}
	}
}

#endif
