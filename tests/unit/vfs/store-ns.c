/* Namespace operations of the store: create, lookup, link counts, unlink, rename, readdir. */
#include "store-test.h"

#include <linux/fs.h>

#define ROOT VFS_ROOT_INO

START_TEST(test_create_lookup)
{
	struct vfs_store *s = t_open();
	struct vfs_attr a, b;
	ck_assert_int_eq(vfs_store_getattr(s, ROOT, &a), 0);
	ck_assert(S_ISDIR(a.mode));
	ck_assert_uint_eq(a.nlink, 2);
	ck_assert_int_eq(vfs_store_mknod(s, ROOT, "f", S_IFREG | 0640, 0, 7, 8, NULL, &a), 0);
	ck_assert_uint_ge(a.ino, 2);
	ck_assert_uint_eq(a.uid, 7);
	ck_assert_uint_eq(a.gid, 8);
	ck_assert_uint_eq(a.mode, S_IFREG | 0640);
	ck_assert_uint_eq(a.nlink, 1);
	ck_assert_int_eq(vfs_store_lookup(s, ROOT, "f", &b), 0);
	ck_assert_uint_eq(a.ino, b.ino);
	/* O_EXCL semantics */
	ck_assert_int_eq(vfs_store_mknod(s, ROOT, "f", S_IFREG | 0640, 0, 0, 0, NULL, &a), -EEXIST);
	ck_assert_int_eq(vfs_store_mknod(s, ROOT, ".", S_IFDIR | 0755, 0, 0, 0, NULL, &a), -EEXIST);
	ck_assert_int_eq(vfs_store_lookup(s, ROOT, "nope", &a), -ENOENT);
	char longname[300];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[299] = 0;
	ck_assert_int_eq(vfs_store_mknod(s, ROOT, longname, S_IFREG, 0, 0, 0, NULL, &a),
			 -ENAMETOOLONG);
	uint64_t f = t_lookup(s, ROOT, "f");
	ck_assert_int_eq(vfs_store_mknod(s, f, "x", S_IFREG, 0, 0, 0, NULL, &a), -ENOTDIR);
	/* other types */
	ck_assert_int_eq(vfs_store_mknod(s, ROOT, "fifo", S_IFIFO | 0600, 0, 0, 0, NULL, &a), 0);
	ck_assert(S_ISFIFO(a.mode));
	ck_assert_int_eq(vfs_store_mknod(s, ROOT, "sock", S_IFSOCK | 0600, 0, 0, 0, NULL, &a), 0);
	ck_assert_int_eq(vfs_store_mknod(s, ROOT, "chr", S_IFCHR | 0600, 0x0103, 0, 0, NULL, &a),
			 0);
	ck_assert_uint_eq(a.rdev, 0x0103);
	ck_assert_int_eq(vfs_store_mknod(s, ROOT, "ln", S_IFLNK | 0777, 0, 0, 0, "f/target", &a),
			 0);
	ck_assert_uint_eq(a.size, 8);
	char buf[64];
	ck_assert_int_eq(vfs_store_readlink(s, a.ino, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "f/target");
	ck_assert_int_eq(vfs_store_readlink(s, a.ino, buf, 4), -ERANGE);
	ck_assert_int_eq(vfs_store_readlink(s, f, buf, sizeof(buf)), -EINVAL);
	/* "." and ".." */
	uint64_t d = t_mkdir(s, ROOT, "d");
	ck_assert_uint_eq(t_lookup(s, d, ".."), ROOT);
	ck_assert_uint_eq(t_lookup(s, d, "."), d);
	vfs_store_close(s);
}
END_TEST

START_TEST(test_dir_nlink)
{
	struct vfs_store *s = t_open();
	struct vfs_attr a;
	uint64_t d = t_mkdir(s, ROOT, "d");
	t_mkdir(s, d, "s1");
	t_mkdir(s, d, "s2");
	t_mkfile(s, d, "f");
	ck_assert_int_eq(vfs_store_getattr(s, d, &a), 0);
	ck_assert_uint_eq(a.nlink, 4);
	ck_assert_int_eq(vfs_store_getattr(s, ROOT, &a), 0);
	ck_assert_uint_eq(a.nlink, 3);
	ck_assert_int_eq(vfs_store_rmdir(s, ROOT, "d"), -ENOTEMPTY);
	ck_assert_int_eq(vfs_store_rmdir(s, d, "f"), -ENOTDIR);
	ck_assert_int_eq(vfs_store_unlink(s, d, "s1"), -EISDIR);
	ck_assert_int_eq(vfs_store_rmdir(s, d, "s1"), 0);
	ck_assert_int_eq(vfs_store_rmdir(s, d, "s1"), -ENOENT);
	ck_assert_int_eq(vfs_store_getattr(s, d, &a), 0);
	ck_assert_uint_eq(a.nlink, 3);
	ck_assert_int_eq(vfs_store_rmdir(s, d, "."), -EINVAL);
	/* move s2 to root */
	ck_assert_int_eq(vfs_store_rename(s, d, "s2", ROOT, "s2", 0), 0);
	ck_assert_int_eq(vfs_store_getattr(s, d, &a), 0);
	ck_assert_uint_eq(a.nlink, 2);
	ck_assert_int_eq(vfs_store_getattr(s, ROOT, &a), 0);
	ck_assert_uint_eq(a.nlink, 4);
	ck_assert_uint_eq(t_lookup(s, t_lookup(s, ROOT, "s2"), ".."), ROOT);
	vfs_store_close(s);
}
END_TEST

START_TEST(test_links_and_times)
{
	struct vfs_store *s = t_open();
	struct vfs_attr a, d0, d1;
	uint64_t f = t_mkfile(s, ROOT, "f");
	uint64_t d = t_mkdir(s, ROOT, "d");
	ck_assert_int_eq(vfs_store_getattr(s, d, &d0), 0);
	ck_assert_int_eq(vfs_store_getattr(s, f, &a), 0);
	struct timespec c0 = a.ctime;
	usleep(12000); /* more than a tick of the coarse clock (HZ 100: 10 ms) */
	ck_assert_int_eq(vfs_store_link(s, f, d, "g", &a), 0);
	ck_assert_uint_eq(a.nlink, 2);
	ck_assert(a.ctime.tv_sec > c0.tv_sec || a.ctime.tv_nsec > c0.tv_nsec);
	ck_assert_int_eq(vfs_store_getattr(s, d, &d1), 0);
	ck_assert(d1.mtime.tv_sec > d0.mtime.tv_sec || d1.mtime.tv_nsec > d0.mtime.tv_nsec);
	ck_assert_int_eq(vfs_store_link(s, d, ROOT, "dl", &a), -EPERM);
	ck_assert_int_eq(vfs_store_link(s, f, ROOT, "d", &a), -EEXIST);
	ck_assert_int_eq(vfs_store_unlink(s, ROOT, "f"), 0);
	ck_assert_int_eq(vfs_store_getattr(s, f, &a), 0);
	ck_assert_uint_eq(a.nlink, 1);
	ck_assert_int_eq(vfs_store_unlink(s, d, "g"), 0);
	ck_assert_int_eq(vfs_store_getattr(s, f, &a), -ENOENT); /* freed: no refs */
	/* chmod / chown set ctime, keep the type */
	f = t_mkfile(s, ROOT, "h");
	struct vfs_attr set = {.mode = 04755, .uid = 5, .gid = 6};
	ck_assert_int_eq(
		vfs_store_setattr(s, f, &set, VFS_SET_MODE | VFS_SET_UID | VFS_SET_GID, &a), 0);
	ck_assert_uint_eq(a.mode, S_IFREG | 04755);
	ck_assert_uint_eq(a.uid, 5);
	set.mtime.tv_sec = 1000;
	set.atime.tv_sec = 2000;
	ck_assert_int_eq(vfs_store_setattr(s, f, &set, VFS_SET_MTIME | VFS_SET_ATIME, &a), 0);
	ck_assert_int_eq(a.mtime.tv_sec, 1000);
	ck_assert_int_eq(a.atime.tv_sec, 2000);
	ck_assert_int_eq(vfs_store_setattr(s, d, &(struct vfs_attr){.size = 1}, VFS_SET_SIZE, &a),
			 -EISDIR);
	vfs_store_close(s);
}
END_TEST

START_TEST(test_orphan_refs)
{
	struct vfs_store *s = t_open();
	struct vfs_attr a;
	uint64_t f = t_mkfile(s, ROOT, "f");
	t_write_str(s, f, "still here");
	vfs_store_ref(s, f, 2);
	ck_assert_int_eq(vfs_store_unlink(s, ROOT, "f"), 0);
	ck_assert_int_eq(vfs_store_getattr(s, f, &a), 0);
	ck_assert_uint_eq(a.nlink, 0);
	t_expect_str(s, f, "still here");
	vfs_store_unref(s, f, 1);
	ck_assert_int_eq(vfs_store_getattr(s, f, &a), 0);
	vfs_store_unref(s, f, 1);
	ck_assert_int_eq(vfs_store_getattr(s, f, &a), -ENOENT);
	/* an open directory removed */
	uint64_t d = t_mkdir(s, ROOT, "d");
	vfs_store_ref(s, d, 1);
	ck_assert_int_eq(vfs_store_rmdir(s, ROOT, "d"), 0);
	ck_assert_int_eq(vfs_store_mknod(s, d, "x", S_IFREG, 0, 0, 0, NULL, &a), -ENOENT);
	vfs_store_unref(s, d, 1);
	ck_assert_int_eq(vfs_store_getattr(s, d, &a), -ENOENT);
	vfs_store_close(s);
}
END_TEST

START_TEST(test_rename)
{
	struct vfs_store *s = t_open();
	struct vfs_attr a;
	uint64_t a1 = t_mkdir(s, ROOT, "a");
	uint64_t b1 = t_mkdir(s, a1, "b");
	uint64_t f = t_mkfile(s, ROOT, "f");
	uint64_t g = t_mkfile(s, ROOT, "g");
	uint64_t e = t_mkdir(s, ROOT, "e");
	/* dir under itself */
	ck_assert_int_eq(vfs_store_rename(s, ROOT, "a", b1, "x", 0), -EINVAL);
	ck_assert_int_eq(vfs_store_rename(s, ROOT, "a", a1, "x", 0), -EINVAL);
	/* type mismatches */
	ck_assert_int_eq(vfs_store_rename(s, ROOT, "f", ROOT, "e", 0), -EISDIR);
	ck_assert_int_eq(vfs_store_rename(s, ROOT, "e", ROOT, "f", 0), -ENOTDIR);
	ck_assert_int_eq(vfs_store_rename(s, ROOT, "e", ROOT, "a", 0), -ENOTEMPTY);
	ck_assert_int_eq(vfs_store_rename(s, ROOT, "nope", ROOT, "x", 0), -ENOENT);
	/* NOREPLACE */
	ck_assert_int_eq(vfs_store_rename(s, ROOT, "f", ROOT, "g", RENAME_NOREPLACE), -EEXIST);
	ck_assert_int_eq(vfs_store_rename(s, ROOT, "f", ROOT, "h", RENAME_NOREPLACE), 0);
	ck_assert_uint_eq(t_lookup(s, ROOT, "h"), f);
	ck_assert_uint_eq(t_lookup(s, ROOT, "f"), 0);
	/* replace a file: the old one goes */
	ck_assert_int_eq(vfs_store_rename(s, ROOT, "h", ROOT, "g", 0), 0);
	ck_assert_uint_eq(t_lookup(s, ROOT, "g"), f);
	ck_assert_int_eq(vfs_store_getattr(s, g, &a), -ENOENT);
	/* replace an empty dir */
	ck_assert_int_eq(vfs_store_rename(s, a1, "b", ROOT, "e", 0), 0);
	ck_assert_uint_eq(t_lookup(s, ROOT, "e"), b1);
	ck_assert_int_eq(vfs_store_getattr(s, e, &a), -ENOENT);
	ck_assert_int_eq(vfs_store_getattr(s, ROOT, &a), 0);
	ck_assert_uint_eq(a.nlink, 4); /* a, e(b) */
	ck_assert_int_eq(vfs_store_getattr(s, a1, &a), 0);
	ck_assert_uint_eq(a.nlink, 2);
	/* exchange a dir and a file across directories */
	uint64_t c = t_mkfile(s, a1, "c");
	ck_assert_int_eq(vfs_store_rename(s, ROOT, "e", a1, "c", RENAME_EXCHANGE), 0);
	ck_assert_uint_eq(t_lookup(s, ROOT, "e"), c);
	ck_assert_uint_eq(t_lookup(s, a1, "c"), b1);
	ck_assert_uint_eq(t_lookup(s, b1, ".."), a1);
	ck_assert_int_eq(vfs_store_getattr(s, a1, &a), 0);
	ck_assert_uint_eq(a.nlink, 3);
	ck_assert_int_eq(vfs_store_rename(s, ROOT, "e", ROOT, "zz", RENAME_EXCHANGE), -ENOENT);
	ck_assert_int_eq(vfs_store_rename(s, ROOT, "e", ROOT, "zz", 3), -EINVAL);
	/* hard links to one inode: no-op */
	ck_assert_int_eq(vfs_store_link(s, c, ROOT, "c2", &a), 0);
	ck_assert_int_eq(vfs_store_rename(s, ROOT, "e", ROOT, "c2", 0), 0);
	ck_assert_uint_eq(t_lookup(s, ROOT, "e"), c);
	ck_assert_uint_eq(t_lookup(s, ROOT, "c2"), c);
	vfs_store_close(s);
}
END_TEST

struct collect {
	char names[64][32];
	uint64_t next[64];
	int n, stop_after;
};

static int collect_fn(void *ctx, const char *name, const struct vfs_attr *attr, uint64_t next)
{
	struct collect *c = ctx;
	(void)attr;
	if (c->n == c->stop_after)
		return 1;
	snprintf(c->names[c->n], sizeof(c->names[0]), "%s", name);
	c->next[c->n++] = next;
	return 0;
}

START_TEST(test_readdir_cookies)
{
	struct vfs_store *s = t_open();
	uint64_t d = t_mkdir(s, ROOT, "d");
	char name[16];
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "e%02d", i);
		t_mkfile(s, d, name);
	}
	struct collect c = {.stop_after = 100};
	ck_assert_int_eq(vfs_store_readdir(s, d, 0, collect_fn, &c), 0);
	ck_assert_int_eq(c.n, 22);
	ck_assert_str_eq(c.names[0], ".");
	ck_assert_uint_eq(c.next[0], 1);
	ck_assert_str_eq(c.names[1], "..");
	ck_assert_uint_eq(c.next[1], 2);
	ck_assert_str_eq(c.names[2], "e00");
	/* resume in the middle while entries change: stable positions */
	struct collect p = {.stop_after = 7};
	vfs_store_readdir(s, d, 0, collect_fn, &p);
	ck_assert_int_eq(p.n, 7); /* ., .., e00..e04 */
	uint64_t pos = p.next[6];
	ck_assert_int_eq(vfs_store_unlink(s, d, "e02"), 0);
	ck_assert_int_eq(vfs_store_unlink(s, d, "e05"), 0);
	t_mkfile(s, d, "new");
	struct collect r = {.stop_after = 100};
	vfs_store_readdir(s, d, pos, collect_fn, &r);
	ck_assert_str_eq(r.names[0], "e06");
	ck_assert_str_eq(r.names[r.n - 1], "new");
	ck_assert_int_eq(r.n, 15); /* e06..e19 + new */
	/* a cookie past the end */
	struct collect z = {.stop_after = 100};
	vfs_store_readdir(s, d, 1000, collect_fn, &z);
	ck_assert_int_eq(z.n, 0);
	ck_assert_int_eq(vfs_store_readdir(s, t_lookup(s, d, "e00"), 0, collect_fn, &z), -ENOTDIR);
	vfs_store_close(s);
}
END_TEST

/* Random namespace operations against a tiny model: a name -> kind table in one directory. */
START_TEST(test_random_ops)
{
	struct vfs_store *s = t_open();
	uint64_t d = t_mkdir(s, ROOT, "d");
	char kinds[16] = {0}; /* 0 absent, 'f' file, 'd' dir */
	for (int it = 0; it < 3000; it++) {
		int i = (int)(t_rand() % 16), j = (int)(t_rand() % 16);
		char ni[8], nj[8];
		snprintf(ni, sizeof(ni), "n%d", i);
		snprintf(nj, sizeof(nj), "n%d", j);
		struct vfs_attr a;
		int r;
		switch (t_rand() % 5) {
		case 0:
			r = vfs_store_mknod(s, d, ni, S_IFREG | 0600, 0, 0, 0, NULL, &a);
			ck_assert_int_eq(r, kinds[i] ? -EEXIST : 0);
			if (!r)
				kinds[i] = 'f';
			break;
		case 1:
			r = vfs_store_mknod(s, d, ni, S_IFDIR | 0700, 0, 0, 0, NULL, &a);
			ck_assert_int_eq(r, kinds[i] ? -EEXIST : 0);
			if (!r)
				kinds[i] = 'd';
			break;
		case 2:
			r = vfs_store_unlink(s, d, ni);
			ck_assert_int_eq(r, !kinds[i] ? -ENOENT : kinds[i] == 'd' ? -EISDIR : 0);
			if (!r)
				kinds[i] = 0;
			break;
		case 3:
			r = vfs_store_rmdir(s, d, ni);
			ck_assert_int_eq(r, !kinds[i] ? -ENOENT : kinds[i] == 'f' ? -ENOTDIR : 0);
			if (!r)
				kinds[i] = 0;
			break;
		default: {
			r = vfs_store_rename(s, d, ni, d, nj, 0);
			int want = 0;
			if (!kinds[i])
				want = -ENOENT;
			else if (i == j || !kinds[j])
				want = 0;
			else if (kinds[i] == 'd' && kinds[j] == 'f')
				want = -ENOTDIR;
			else if (kinds[i] == 'f' && kinds[j] == 'd')
				want = -EISDIR;
			ck_assert_int_eq(r, want);
			if (!r && i != j) {
				kinds[j] = kinds[i];
				kinds[i] = 0;
			}
		}
		}
		if (it % 97 == 0) {
			int subdirs = 0;
			for (int k = 0; k < 16; k++) {
				snprintf(ni, sizeof(ni), "n%d", k);
				ck_assert_int_eq(vfs_store_lookup(s, d, ni, &a),
						 kinds[k] ? 0 : -ENOENT);
				subdirs += kinds[k] == 'd';
			}
			ck_assert_int_eq(vfs_store_getattr(s, d, &a), 0);
			ck_assert_uint_eq(a.nlink, 2 + (unsigned)subdirs);
		}
	}
	vfs_store_close(s);
}
END_TEST

/* The *_ref calls take their references in the same step: an unlink right after cannot free
 * the inode, and the references are what keeps it. */
START_TEST(test_ref_in_one_step)
{
	struct vfs_store *s = t_open();
	struct vfs_attr a, b;
	ck_assert_int_eq(vfs_store_mknod_ref(s, ROOT, "f", S_IFREG | 0644, 0, 1, 1, NULL, 0, 2, &a),
			 0);
	ck_assert_int_eq(vfs_store_lookup_ref(s, ROOT, "f", 1, &b), 0);
	ck_assert_uint_eq(a.ino, b.ino);
	ck_assert_int_eq(vfs_store_lookup_ref(s, ROOT, "nope", 1, &b), -ENOENT);
	ck_assert_int_eq(vfs_store_link_ref(s, a.ino, ROOT, "g", 1, &b), 0);
	ck_assert_uint_eq(b.nlink, 2);
	ck_assert_int_eq(vfs_store_unlink(s, ROOT, "f"), 0);
	ck_assert_int_eq(vfs_store_unlink(s, ROOT, "g"), 0);
	ck_assert_int_eq(vfs_store_getattr_ref(s, a.ino, 1, &b), 0); /* 5 references now */
	ck_assert_uint_eq(b.nlink, 0);
	vfs_store_unref(s, a.ino, 4);
	ck_assert_int_eq(vfs_store_getattr(s, a.ino, &b), 0);
	vfs_store_unref(s, a.ino, 1);
	ck_assert_int_eq(vfs_store_getattr(s, a.ino, &b), -ENOENT);

	/* set-group-ID directories pass their group (and the bit, to directories) on */
	uint64_t d = t_mkdir(s, ROOT, "d");
	ck_assert_int_eq(vfs_store_setattr(s, d, &(struct vfs_attr){.mode = 02775, .gid = 77},
					   VFS_SET_MODE | VFS_SET_GID, NULL),
			 0);
	ck_assert_int_eq(vfs_store_mknod_ref(s, d, "x", S_IFREG | 0644, 0, 5, 5, NULL,
					     VFS_MKNOD_INHERIT_SGID, 0, &a),
			 0);
	ck_assert_uint_eq(a.gid, 77);
	ck_assert_int_eq(vfs_store_mknod_ref(s, d, "y", S_IFDIR | 0755, 0, 5, 5, NULL,
					     VFS_MKNOD_INHERIT_SGID, 0, &a),
			 0);
	ck_assert_uint_eq(a.gid, 77);
	ck_assert(a.mode & S_ISGID);
	ck_assert_int_eq(vfs_store_mknod_ref(s, d, "z", S_IFREG | 0644, 0, 5, 5, NULL, 0, 0, &a),
			 0);
	ck_assert_uint_eq(a.gid, 5);
	vfs_store_close(s);
}
END_TEST

static int count_entry(void *ctx, const char *name, const struct vfs_attr *attr, uint64_t next)
{
	(void)name;
	(void)attr;
	(void)next;
	return ++*(int *)ctx > 3; /* ".", "..", and one entry: then stop */
}

/* readdirplus references: one per consumed entry, none for "." and "..". */
START_TEST(test_readdir_refs)
{
	struct vfs_store *s = t_open();
	uint64_t a = t_mkfile(s, ROOT, "a");
	uint64_t b = t_mkfile(s, ROOT, "b");
	int seen = 0;
	ck_assert_int_eq(vfs_store_readdir_ref(s, ROOT, 0, true, count_entry, &seen), 0);
	ck_assert_int_eq(seen, 4);
	ck_assert_int_eq(vfs_store_unlink(s, ROOT, "a"), 0);
	ck_assert_int_eq(vfs_store_unlink(s, ROOT, "b"), 0);
	struct vfs_attr at;
	ck_assert_int_eq(vfs_store_getattr(s, a, &at), 0); /* consumed: referenced */
	ck_assert_int_eq(vfs_store_getattr(s, b, &at), -ENOENT); /* not consumed */
	vfs_store_unref(s, a, 1);
	ck_assert_int_eq(vfs_store_getattr(s, a, &at), -ENOENT);
	ck_assert_int_eq(vfs_store_getattr(s, ROOT, &at), 0);
	vfs_store_close(s);
}
END_TEST

START_TEST(test_statfs)
{
	struct vfs_store *s = t_open();
	struct statvfs st;
	ck_assert_int_eq(vfs_store_statfs(s, &st), 0);
	ck_assert_uint_gt(st.f_blocks, 0);
	ck_assert_uint_eq(st.f_namemax, VFS_NAME_MAX);
	vfs_store_close(s);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("vfs-store-ns");
	TCase *tc = t_tcase("ns");
	tcase_add_test(tc, test_create_lookup);
	tcase_add_test(tc, test_dir_nlink);
	tcase_add_test(tc, test_links_and_times);
	tcase_add_test(tc, test_orphan_refs);
	tcase_add_test(tc, test_rename);
	tcase_add_test(tc, test_readdir_cookies);
	tcase_add_test(tc, test_random_ops);
	tcase_add_test(tc, test_statfs);
	tcase_add_test(tc, test_ref_in_one_step);
	tcase_add_test(tc, test_readdir_refs);
	suite_add_tcase(su, tc);
	return ck_run_suite(su);
}
