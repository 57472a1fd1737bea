/* Shared helpers of the store unit suites (header-only: each suite is one program). */
#ifndef STORE_TEST_H
#define STORE_TEST_H

#include "../check-main.h"
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/ck.h"
#include "vfs/store-internal.h"

static char t_dir[PATH_MAX]; /* per test: a fresh directory; the store is t_dir/store */
static char t_store[PATH_MAX + 16];

static CK_UNUSED void t_setup(void)
{
	const char *base = getenv("CK_TEST_TMPDIR");
	if (!base || !*base)
		base = "/var/tmp";
	ck_mkdir_p(base, 0700);
	snprintf(t_dir, sizeof(t_dir), "%s/store-XXXXXX", base);
	ck_assert_ptr_nonnull(mkdtemp(t_dir));
	snprintf(t_store, sizeof(t_store), "%s/store", t_dir);
}

static CK_UNUSED void t_teardown(void)
{
	ck_rm_rf_at(AT_FDCWD, t_dir);
}

static CK_UNUSED struct vfs_store *t_open_at(uint64_t at, unsigned flags)
{
	struct vfs_store *s = NULL;
	int r = vfs_store_open(t_store, VFS_STORE_CREATE | flags, at, &s);
	ck_assert_msg(r == 0, "open at %llu: %s (%s)", (unsigned long long)at, strerror(-r),
		      vfs_store_open_error());
	return s;
}

static CK_UNUSED struct vfs_store *t_open(void)
{
	return t_open_at(0, 0);
}

static CK_UNUSED uint64_t t_mkfile(struct vfs_store *s, uint64_t dir, const char *name)
{
	struct vfs_attr a;
	int r = vfs_store_mknod(s, dir, name, S_IFREG | 0644, 0, 0, 0, NULL, &a);
	ck_assert_msg(r == 0, "mknod %s: %s", name, strerror(-r));
	return a.ino;
}

static CK_UNUSED uint64_t t_mkdir(struct vfs_store *s, uint64_t dir, const char *name)
{
	struct vfs_attr a;
	int r = vfs_store_mknod(s, dir, name, S_IFDIR | 0755, 0, 0, 0, NULL, &a);
	ck_assert_msg(r == 0, "mkdir %s: %s", name, strerror(-r));
	return a.ino;
}

static CK_UNUSED uint64_t t_lookup(struct vfs_store *s, uint64_t dir, const char *name)
{
	struct vfs_attr a;
	int r = vfs_store_lookup(s, dir, name, &a);
	return r == 0 ? a.ino : 0;
}

static CK_UNUSED void t_write(struct vfs_store *s, uint64_t ino, const void *buf, size_t len,
			      off_t off)
{
	ssize_t n = vfs_store_write(s, ino, buf, len, off, 0);
	ck_assert_msg(n == (ssize_t)len, "write: %zd", n);
}

static CK_UNUSED void t_write_str(struct vfs_store *s, uint64_t ino, const char *str)
{
	t_write(s, ino, str, strlen(str), 0);
	struct vfs_attr a = {.size = strlen(str)};
	ck_assert_int_eq(vfs_store_setattr(s, ino, &a, VFS_SET_SIZE, NULL), 0);
}

/* Compare file @ino with @want (@len bytes) by reading all of it. */
static CK_UNUSED void t_expect(struct vfs_store *s, uint64_t ino, const void *want, size_t len)
{
	struct vfs_attr a;
	ck_assert_int_eq(vfs_store_getattr(s, ino, &a), 0);
	ck_assert_uint_eq(a.size, len);
	char *buf = malloc(len + 100);
	ssize_t n = vfs_store_read(s, ino, buf, len + 100, 0);
	ck_assert_int_eq(n, (ssize_t)len);
	ck_assert_msg(memcmp(buf, want, len) == 0, "content differs");
	free(buf);
}

static CK_UNUSED void t_expect_str(struct vfs_store *s, uint64_t ino, const char *str)
{
	t_expect(s, ino, str, strlen(str));
}

static CK_UNUSED uint64_t t_commit(struct vfs_store *s, const char *ref)
{
	struct vfs_store_commit *c;
	int r = vfs_store_commit_prepare(s, &c);
	ck_assert_msg(r == 0, "prepare: %s (%s)", strerror(-r), vfs_store_last_error(s));
	uint64_t e = vfs_store_commit_epoch(c);
	r = vfs_store_commit_finish(s, c, ref);
	ck_assert_msg(r == 0, "finish: %s (%s)", strerror(-r), vfs_store_last_error(s));
	return e;
}

/* 512-byte blocks used by all files under @path (du). */
static CK_UNUSED uint64_t t_du(const char *path)
{
	char cmd[PATH_MAX + 64];
	if ((size_t)snprintf(cmd, sizeof(cmd), "du -s -B512 '%s'", path) >= sizeof(cmd))
		return 0;
	FILE *f = popen(cmd, "r");
	unsigned long long v = 0;
	if (f) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		pclose(f);
	}
	return v;
}

static uint64_t t_rand_state = 88172645463325252ull;
static CK_UNUSED uint64_t t_rand(void)
{
	t_rand_state ^= t_rand_state << 13;
	t_rand_state ^= t_rand_state >> 7;
	t_rand_state ^= t_rand_state << 17;
	return t_rand_state;
}

static CK_UNUSED TCase *t_tcase(const char *name)
{
	TCase *tc = tcase_create(name);
	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_set_timeout(tc, 120);
	return tc;
}

#endif
