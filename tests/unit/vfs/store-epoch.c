/* Epochs: commit and reopen at every epoch, branching, orphans, refs, GC and folding. */
#include "store-test.h"

#include <dirent.h>

#define ROOT  VFS_ROOT_INO
#define CHUNK VFS_CHUNK_SIZE

static int count_files(const char *sub, const char *suffix)
{
	char p[PATH_MAX * 2];
	snprintf(p, sizeof(p), "%s/%s", t_store, sub);
	DIR *d = opendir(p);
	int n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' && (!suffix || strstr(de->d_name, suffix)))
			n++;
	if (d)
		closedir(d);
	return n;
}

static off_t file_size(const char *rel)
{
	char p[PATH_MAX * 2];
	snprintf(p, sizeof(p), "%s/%s", t_store, rel);
	struct stat st;
	return stat(p, &st) == 0 ? st.st_size : -1;
}

/* Epoch k: files "f0".."fk" where fi holds "v<k>-<i>"; "gone" exists only in even epochs. */
START_TEST(test_commit_reopen_each)
{
	struct vfs_store *s = t_open();
	uint64_t ep[8], ino[8];
	char name[16], want[32];
	for (int k = 0; k < 8; k++) {
		snprintf(name, sizeof(name), "f%d", k);
		ino[k] = t_mkfile(s, ROOT, name);
		for (int i = 0; i <= k; i++) {
			snprintf(want, sizeof(want), "v%d-%d", k, i);
			t_write_str(s, ino[i], want);
		}
		if (k % 2 == 0)
			t_mkfile(s, ROOT, "gone");
		else
			ck_assert_int_eq(vfs_store_unlink(s, ROOT, "gone"), 0);
		snprintf(name, sizeof(name), "snap-%d", k);
		ep[k] = t_commit(s, name);
		ck_assert_uint_eq(vfs_store_base_epoch(s), ep[k]);
	}
	/* uncommitted changes are lost at close */
	t_write_str(s, ino[0], "uncommitted");
	vfs_store_close(s);
	for (int k = 7; k >= 0; k--) {
		s = t_open_at(ep[k], 0);
		for (int i = 0; i < 8; i++) {
			snprintf(name, sizeof(name), "f%d", i);
			uint64_t got = t_lookup(s, ROOT, name);
			if (i > k) {
				ck_assert_uint_eq(got, 0);
				continue;
			}
			ck_assert_uint_eq(got, ino[i]);
			snprintf(want, sizeof(want), "v%d-%d", k, i);
			t_expect_str(s, ino[i], want);
		}
		ck_assert_uint_eq(t_lookup(s, ROOT, "gone") != 0, k % 2 == 0);
		vfs_store_close(s);
	}
	/* head */
	s = t_open();
	ck_assert_uint_eq(vfs_store_base_epoch(s), ep[7]);
	t_expect_str(s, ino[0], "v7-0");
	struct vfs_ref *refs;
	size_t n;
	ck_assert_int_eq(vfs_store_refs(s, &refs, &n), 0);
	ck_assert_uint_eq(n, 9);
	free(refs);
	vfs_store_close(s);
	ck_assert_int_eq(vfs_store_refs_read(t_store, &refs, &n), 0);
	ck_assert_uint_eq(n, 9);
	bool head = false;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(refs[i].name, "head")) {
			head = true;
			ck_assert_uint_eq(refs[i].epoch, ep[7]);
			ck_assert_int_gt(refs[i].created, 0);
		}
	ck_assert(head);
	free(refs);
}
END_TEST

START_TEST(test_branching)
{
	struct vfs_store *s = t_open();
	uint64_t f = t_mkfile(s, ROOT, "f");
	uint8_t *big = malloc(CHUNK * 4);
	memset(big, 'a', CHUNK * 4);
	t_write(s, f, big, CHUNK * 4, 0);
	uint64_t e1 = t_commit(s, "base");
	t_write(s, f, "BBBB", 4, 10);
	t_mkfile(s, ROOT, "only-b");
	uint64_t e2 = t_commit(s, "b");
	vfs_store_close(s);
	/* branch off e1 */
	s = t_open_at(e1, 0);
	t_write(s, f, "CCCC", 4, CHUNK + 10);
	t_mkfile(s, ROOT, "only-c");
	uint64_t e3 = t_commit(s, "c");
	ck_assert_uint_gt(e3, e2);
	vfs_store_close(s);
	uint8_t *w = malloc(CHUNK * 4);
	memcpy(w, big, CHUNK * 4);
	memcpy(w + 10, "BBBB", 4);
	s = t_open_at(e2, 0);
	t_expect(s, f, w, CHUNK * 4);
	ck_assert_uint_ne(t_lookup(s, ROOT, "only-b"), 0);
	ck_assert_uint_eq(t_lookup(s, ROOT, "only-c"), 0);
	vfs_store_close(s);
	memcpy(w, big, CHUNK * 4);
	memcpy(w + CHUNK + 10, "CCCC", 4);
	s = t_open(); /* head is now e3 */
	ck_assert_uint_eq(vfs_store_base_epoch(s), e3);
	t_expect(s, f, w, CHUNK * 4);
	ck_assert_uint_eq(t_lookup(s, ROOT, "only-b"), 0);
	vfs_store_close(s);
	s = t_open_at(e1, 0);
	t_expect(s, f, big, CHUNK * 4);
	vfs_store_close(s);
	free(big);
	free(w);
}
END_TEST

START_TEST(test_orphans)
{
	struct vfs_store *s = t_open();
	uint64_t f = t_mkfile(s, ROOT, "f");
	t_write_str(s, f, "orphan data");
	vfs_store_ref(s, f, 1);
	ck_assert_int_eq(vfs_store_unlink(s, ROOT, "f"), 0);
	uint64_t e = t_commit(s, "ck");
	vfs_store_close(s);
	/* without KEEP_ORPHANS: dropped at load */
	s = t_open_at(e, 0);
	struct vfs_attr a;
	ck_assert_int_eq(vfs_store_getattr(s, f, &a), -ENOENT);
	vfs_store_close(s);
	/* with: kept, readable, until released */
	s = t_open_at(e, VFS_STORE_KEEP_ORPHANS);
	ck_assert_int_eq(vfs_store_getattr(s, f, &a), 0);
	ck_assert_uint_eq(a.nlink, 0);
	t_expect_str(s, f, "orphan data");
	vfs_store_ref(s, f, 1); /* the restored process reopened it */
	vfs_store_orphans_release(s);
	ck_assert_int_eq(vfs_store_getattr(s, f, &a), 0);
	vfs_store_unref(s, f, 1);
	ck_assert_int_eq(vfs_store_getattr(s, f, &a), -ENOENT);
	uint64_t e2 = t_commit(s, NULL);
	vfs_store_close(s);
	/* the next epoch records the deletion: not back even with KEEP_ORPHANS */
	s = t_open_at(e2, VFS_STORE_KEEP_ORPHANS);
	ck_assert_int_eq(vfs_store_getattr(s, f, &a), -ENOENT);
	vfs_store_close(s);
	/* and the old epoch still has it */
	s = t_open_at(e, VFS_STORE_KEEP_ORPHANS);
	ck_assert_int_eq(vfs_store_getattr(s, f, &a), 0);
	vfs_store_orphans_release(s);
	ck_assert_int_eq(vfs_store_getattr(s, f, &a), -ENOENT);
	vfs_store_close(s);
}
END_TEST

START_TEST(test_inode_numbers_persist)
{
	struct vfs_store *s = t_open();
	uint64_t a = t_mkfile(s, ROOT, "a");
	uint64_t b = t_mkfile(s, ROOT, "b");
	ck_assert_int_eq(vfs_store_unlink(s, ROOT, "b"), 0);
	t_commit(s, NULL);
	vfs_store_close(s);
	s = t_open();
	ck_assert_uint_eq(t_lookup(s, ROOT, "a"), a);
	uint64_t c = t_mkfile(s, ROOT, "c");
	ck_assert_uint_gt(c, b); /* never reused */
	vfs_store_close(s);
}
END_TEST

START_TEST(test_busy_and_errors)
{
	struct vfs_store *s = t_open(), *s2 = NULL;
	ck_assert_int_eq(vfs_store_open(t_store, 0, 0, &s2), -EBUSY);
	ck_assert_ptr_null(s2);
	ck_assert_int_eq(vfs_store_ref_set(s, "bad/name", 1), -EINVAL);
	ck_assert_int_eq(vfs_store_ref_set(s, "x", 999), -ENOENT);
	ck_assert_int_eq(vfs_store_ref_drop(s, "nope"), -ENOENT);
	vfs_store_close(s);
	ck_assert_int_eq(vfs_store_open(t_store, 0, 12345, &s2), -ENOENT);
	char p[PATH_MAX * 2];
	snprintf(p, sizeof(p), "%s/none", t_dir);
	ck_assert_int_eq(vfs_store_open(p, 0, 0, &s2), -ENOENT);
	struct vfs_ref *r;
	size_t n;
	ck_assert_int_eq(vfs_store_refs_read(p, &r, &n), -ENOENT);
	/* the store's files are private */
	struct stat st;
	ck_assert_int_eq(stat(t_store, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	snprintf(p, sizeof(p), "%s/refs", t_store);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
}
END_TEST

START_TEST(test_commit_abort_collected)
{
	struct vfs_store *s = t_open();
	uint64_t f = t_mkfile(s, ROOT, "f");
	t_write_str(s, f, "one");
	uint64_t e1 = t_commit(s, NULL);
	t_write_str(s, f, "two");
	struct vfs_store_commit *c;
	ck_assert_int_eq(vfs_store_commit_prepare(s, &c), 0);
	uint64_t e2 = vfs_store_commit_epoch(c);
	vfs_store_commit_abort(s, c);
	vfs_store_close(s);
	s = t_open(); /* head is still e1, e2 collected */
	ck_assert_uint_eq(vfs_store_base_epoch(s), e1);
	t_expect_str(s, f, "one");
	struct vfs_store *tmp = NULL;
	vfs_store_close(s);
	ck_assert_int_eq(vfs_store_open(t_store, 0, e2, &tmp), -ENOENT);
	ck_assert_int_eq(count_files("meta", ".ep"), 1);
}
END_TEST

/* Commit cost follows what changed: one small change to a big file writes a small record
 * and syncs one chunk. */
START_TEST(test_commit_cost)
{
	struct vfs_store *s = t_open();
	uint64_t f = t_mkfile(s, ROOT, "big");
	uint8_t *buf = malloc(1 << 20);
	memset(buf, 7, 1 << 20);
	for (int i = 0; i < 64; i++)
		t_write(s, f, buf, 1 << 20, (off_t)i << 20);
	for (int i = 0; i < 200; i++) {
		char n[16];
		snprintf(n, sizeof(n), "small%d", i);
		t_mkfile(s, ROOT, n);
	}
	uint64_t e1 = t_commit(s, NULL);
	t_write(s, f, "x", 1, 5 << 20);
	uint64_t e2 = t_commit(s, NULL);
	char rel[64];
	snprintf(rel, sizeof(rel), "meta/%llu.ep", (unsigned long long)e2);
	ck_assert_int_lt(file_size(rel), 300); /* one inode record, one run pair */
	snprintf(rel, sizeof(rel), "data/%llu.%llu", (unsigned long long)f, (unsigned long long)e2);
	char p[PATH_MAX * 2];
	snprintf(p, sizeof(p), "%s/%s", t_store, rel);
	ck_assert_uint_le(t_du(p), CHUNK / 512);
	(void)e1;
	vfs_store_close(s);
	free(buf);
}
END_TEST

/* The breakdown of the last commit: what was written, and each phase timed. */
START_TEST(test_commit_stats)
{
	struct vfs_store *s = t_open();
	struct vfs_commit_stats st;
	vfs_store_last_commit_stats(s, &st);
	ck_assert_uint_eq(st.epoch, 0);
	uint64_t f = t_mkfile(s, ROOT, "big"), g = t_mkfile(s, ROOT, "small");
	uint8_t *buf = malloc(1 << 20);
	memset(buf, 9, 1 << 20);
	for (int i = 0; i < 3; i++)
		t_write(s, f, buf, 1 << 20, (off_t)i << 20);
	t_write_str(s, g, "in memory until the commit");
	uint64_t e1 = t_commit(s, NULL);
	vfs_store_last_commit_stats(s, &st);
	ck_assert_uint_eq(st.epoch, e1);
	ck_assert_uint_eq(st.inodes, 3); /* the root, big, small */
	ck_assert_uint_eq(st.layers, 2);
	ck_assert_uint_eq(st.bytes, 3 * (1 << 20) + CHUNK);
	ck_assert_uint_gt(st.seal_ns + st.data_sync_ns, 0);
	ck_assert_uint_gt(st.meta_write_ns, 0);
	ck_assert_uint_gt(st.refs_write_ns, 0);
	ck_assert_uint_eq(st.syncfs_ns, 0); /* the FUSE layer's */
	/* A commit with nothing changed syncs no layer. */
	uint64_t e2 = t_commit(s, NULL);
	vfs_store_last_commit_stats(s, &st);
	ck_assert_uint_eq(st.epoch, e2);
	ck_assert_uint_eq(st.layers, 0);
	ck_assert_uint_eq(st.bytes, 0);
	vfs_store_close(s);
	free(buf);
}
END_TEST

START_TEST(test_drop_frees_space)
{
	struct vfs_store *s = t_open();
	uint64_t f = t_mkfile(s, ROOT, "f");
	uint8_t *buf = malloc(1 << 20);
	for (int v = 0; v < 3; v++) {
		memset(buf, 'a' + v, 1 << 20);
		for (int i = 0; i < 8; i++)
			t_write(s, f, buf, 1 << 20, (off_t)i << 20);
		char n[16];
		snprintf(n, sizeof(n), "snap-%d", v);
		t_commit(s, n);
	}
	vfs_store_close(s);
	uint64_t before = t_du(t_store);
	ck_assert_uint_ge(before, 3 * 8 * 2048);
	s = t_open();
	ck_assert_int_eq(vfs_store_ref_drop(s, "snap-0"), 0);
	ck_assert_int_eq(vfs_store_ref_drop(s, "snap-1"), 0);
	uint64_t after = t_du(t_store);
	ck_assert_msg(after < before - 2 * 8 * 2048 + 512, "du %llu -> %llu",
		      (unsigned long long)before, (unsigned long long)after);
	/* snap-0 and snap-1 were folded into snap-2, which stays intact */
	ck_assert_int_eq(count_files("meta", ".ep"), 1);
	memset(buf, 'c', 1 << 20);
	for (int i = 0; i < 8; i++) {
		uint8_t r[4096];
		ck_assert_int_eq(vfs_store_read(s, f, r, sizeof(r), (off_t)i << 20),
				 (ssize_t)sizeof(r));
		ck_assert(memcmp(r, buf, sizeof(r)) == 0);
	}
	vfs_store_close(s);
	s = t_open();
	uint8_t *all = malloc(8u << 20);
	memset(all, 'c', 8u << 20);
	t_expect(s, f, all, 8u << 20);
	vfs_store_close(s);
	free(all);
	free(buf);
}
END_TEST

/* The first commit of a run from an older epoch moves the head off a state nothing else holds:
 * its space goes then, not at the next open (a run from a snapshot kept the last run's 8 MiB
 * for its whole life; found by a testing helper). */
START_TEST(test_head_moved_frees_space)
{
	struct vfs_store *s = t_open();
	uint64_t f = t_mkfile(s, ROOT, "f");
	uint8_t *buf = malloc(1 << 20);
	memset(buf, 'a', 1 << 20);
	t_write(s, f, buf, 1 << 20, 0);
	uint64_t snap = t_commit(s, "snap-x");
	memset(buf, 'b', 1 << 20);
	for (int i = 0; i < 8; i++)
		t_write(s, f, buf, 1 << 20, (off_t)i << 20);
	t_commit(s, NULL); /* head: 8 MiB of 'b' only it holds */
	vfs_store_close(s);
	s = t_open_at(snap, 0);
	uint64_t before = t_du(t_store);
	t_write(s, f, "z", 1, 0);
	t_commit(s, NULL);
	uint64_t after = t_du(t_store);
	ck_assert_msg(after + 7 * 2048 < before, "du %llu -> %llu: the old head's space stayed",
		      (unsigned long long)before, (unsigned long long)after);
	vfs_store_close(s);
	s = t_open();
	uint8_t r[2];
	ck_assert_int_eq(vfs_store_read(s, f, r, 2, 0), 2);
	ck_assert(r[0] == 'z' && r[1] == 'a');
	vfs_store_close(s);
	free(buf);
}
END_TEST

/* Partial rewrite: dropping the old snapshot punches the overwritten chunks out of its layer
 * while the chunks still used stay. */
START_TEST(test_drop_punches_chunks)
{
	struct vfs_store *s = t_open();
	uint64_t f = t_mkfile(s, ROOT, "f");
	uint8_t *buf = malloc(CHUNK * 16), *want = malloc(CHUNK * 16);
	memset(buf, 'o', CHUNK * 16);
	t_write(s, f, buf, CHUNK * 16, 0);
	uint64_t e1 = t_commit(s, "old");
	memset(buf, 'n', CHUNK * 8);
	t_write(s, f, buf, CHUNK * 8, 0); /* first half rewritten */
	t_commit(s, "new");
	char p[PATH_MAX * 2];
	snprintf(p, sizeof(p), "%s/data/%llu.%llu", t_store, (unsigned long long)f,
		 (unsigned long long)e1);
	ck_assert_uint_ge(t_du(p), 16 * CHUNK / 512);
	ck_assert_int_eq(vfs_store_ref_drop(s, "old"), 0);
	ck_assert_uint_le(t_du(p), 8 * CHUNK / 512 + 16);
	memset(want, 'n', CHUNK * 8);
	memset(want + CHUNK * 8, 'o', CHUNK * 8);
	t_expect(s, f, want, CHUNK * 16);
	vfs_store_close(s);
	s = t_open();
	t_expect(s, f, want, CHUNK * 16);
	vfs_store_close(s);
	free(buf);
	free(want);
}
END_TEST

/* Many commits with only head moving: chains fold so meta/ stays small. */
START_TEST(test_fold_chain)
{
	struct vfs_store *s = t_open();
	char name[16], want[16];
	uint64_t ino[20];
	for (int k = 0; k < 20; k++) {
		snprintf(name, sizeof(name), "f%d", k);
		ino[k] = t_mkfile(s, ROOT, name);
		snprintf(want, sizeof(want), "v%d", k);
		t_write_str(s, ino[k], want);
		t_commit(s, NULL);
	}
	vfs_store_close(s);
	s = t_open();
	ck_assert_int_le(count_files("meta", ".ep"), 2);
	for (int k = 0; k < 20; k++) {
		snprintf(want, sizeof(want), "v%d", k);
		t_expect_str(s, ino[k], want);
	}
	vfs_store_close(s);
	/* named epochs stay, unnamed ones between them fold */
	s = t_open();
	uint64_t e[6];
	for (int k = 0; k < 6; k++) {
		t_write_str(s, ino[0], k % 2 ? "odd" : "even");
		e[k] = t_commit(s, k == 2 ? "keep" : NULL);
	}
	ck_assert_int_eq(vfs_store_gc(s), 0);
	vfs_store_close(s);
	s = t_open_at(e[2], 0);
	t_expect_str(s, ino[0], "even");
	t_expect_str(s, ino[19], "v19");
	vfs_store_close(s);
	s = t_open_at(e[5], 0);
	t_expect_str(s, ino[0], "odd");
	vfs_store_close(s);
}
END_TEST

/* Edit meta/@ep.ep in place with @edit, recompute its checksum, and expect opening the store
 * at @ep to refuse it with an error that contains @why. */
static void expect_refused(uint64_t ep, void (*edit)(uint8_t *b, size_t len, uint64_t ino),
			   uint64_t ino, const char *why)
{
	char rel[64], path[PATH_MAX + 80];
	snprintf(rel, sizeof(rel), "meta/%llu.ep", (unsigned long long)ep);
	snprintf(path, sizeof(path), "%s/%s", t_store, rel);
	char *orig;
	size_t len;
	ck_assert_int_eq(ck_read_file_at(AT_FDCWD, path, 1 << 20, &orig, &len), 0);
	uint8_t *b = malloc(len);
	memcpy(b, orig, len);
	edit(b, len, ino);
	ck_put_le64(b + len - 8, ck_checksum(b, len - 8));
	ck_assert_int_eq(ck_write_file_atomic(AT_FDCWD, path, b, len, 0600), 0);
	struct vfs_store *s = NULL;
	int r = vfs_store_open(t_store, 0, ep, &s);
	ck_assert_msg(r == -EBADMSG, "%s: opened (%d)", why, r);
	ck_assert_msg(strstr(vfs_store_open_error(), rel) && strstr(vfs_store_open_error(), why),
		      "%s: error '%s'", why, vfs_store_open_error());
	ck_assert_int_eq(ck_write_file_atomic(AT_FDCWD, path, orig, len, 0600), 0);
	free(orig);
	free(b);
}

/* The inode record of @ino: le64 ino, le64 generation, le32 mode (a regular file), le32 nlink. */
static uint8_t *record_of(uint8_t *b, size_t len, uint64_t ino)
{
	for (size_t k = 64; k + 24 <= len; k++)
		if (ck_get_le64(b + k) == ino && S_ISREG(ck_get_le32(b + k + 16)))
			return b + k;
	ck_abort_msg("no record of inode %llu", (unsigned long long)ino);
	return NULL;
}

static void set_nlink_1(uint8_t *b, size_t len, uint64_t ino)
{
	ck_put_le32(record_of(b, len, ino) + 20, 1);
}

static void set_orphan(uint8_t *b, size_t len, uint64_t ino)
{
	uint8_t *rec = record_of(b, len, ino);
	ck_put_le32(rec + 20, 0);
	ck_put_le32(rec + 32, ck_get_le32(rec + 32) | 1); /* REC_ORPHAN */
}

static void set_next_ino_max(uint8_t *b, size_t len, uint64_t ino)
{
	(void)len, (void)ino;
	ck_put_le64(b + 32, UINT64_MAX); /* magic 8, version 4, flags 4, id 8, parent 8 */
}

/* Epochs whose checksum is right but whose content is not (a link count that is not the
 * number of names, an orphan a directory names, an inode counter at its end) are refused when
 * opened. They used to open, and the next commit wrote an epoch the store then refused, or
 * an unlink freed a file still named, or inode 0 was handed out. */
START_TEST(test_inconsistent_epoch_refused)
{
	struct vfs_store *s = t_open();
	uint64_t two = t_mkfile(s, ROOT, "x");
	ck_assert_int_eq(vfs_store_link(s, two, ROOT, "y", NULL), 0);
	uint64_t one = t_mkfile(s, ROOT, "z");
	uint64_t ep = t_commit(s, "snap-1");
	vfs_store_close(s);
	expect_refused(ep, set_nlink_1, two, "link count 1 but 2 names");
	expect_refused(ep, set_orphan, one, "link count 0 but 1 names");
	expect_refused(ep, set_next_ino_max, 0, "bad inode counter");
	s = t_open_at(ep, 0); /* restored as it was: opens */
	vfs_store_close(s);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("vfs-store-epoch");
	TCase *tc = t_tcase("epoch");
	tcase_add_test(tc, test_commit_reopen_each);
	tcase_add_test(tc, test_branching);
	tcase_add_test(tc, test_orphans);
	tcase_add_test(tc, test_inode_numbers_persist);
	tcase_add_test(tc, test_busy_and_errors);
	tcase_add_test(tc, test_commit_abort_collected);
	tcase_add_test(tc, test_commit_cost);
	tcase_add_test(tc, test_commit_stats);
	tcase_add_test(tc, test_drop_frees_space);
	tcase_add_test(tc, test_head_moved_frees_space);
	tcase_add_test(tc, test_drop_punches_chunks);
	tcase_add_test(tc, test_fold_chain);
	tcase_add_test(tc, test_inconsistent_epoch_refused);
	suite_add_tcase(su, tc);
	return ck_run_suite(su);
}
