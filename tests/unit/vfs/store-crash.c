/* Crash safety and corruption: a writer killed with SIGKILL at random instants never damages a
 * committed epoch; a flipped or truncated byte in FORMAT, refs or meta/E.ep makes open fail
 * with -EBADMSG naming the file. */
#include "store-test.h"

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#define ROOT   VFS_ROOT_INO
#define NFILES 4

static size_t gen_size(uint64_t k, int i)
{
	return (size_t)((k * 7 + (uint64_t)i * 13) % 10) * 30000 + 100;
}

static uint8_t gen_byte(uint64_t k, int i, size_t j)
{
	return (uint8_t)(k * 31 + (uint64_t)i * 7 + j / 1000);
}

/* Write generation @k over whatever is there, in random unaligned pieces. */
static void write_gen(struct vfs_store *s, uint64_t k, uint64_t *ino)
{
	uint8_t *buf = malloc(300000);
	for (int i = 0; i < NFILES; i++) {
		size_t size = gen_size(k, i);
		for (size_t j = 0; j < size; j++)
			buf[j] = gen_byte(k, i, j);
		size_t off = 0;
		while (off < size) {
			size_t len = (size_t)(t_rand() % 70000) + 1;
			len = CK_MIN(len, size - off);
			if (vfs_store_write(s, ino[i], buf + off, len, (off_t)off, 0) != (ssize_t)len)
				_exit(3);
			off += len;
		}
		struct vfs_attr a = {.size = size};
		if (vfs_store_setattr(s, ino[i], &a, VFS_SET_SIZE, NULL) < 0)
			_exit(3);
	}
	char g[32];
	int n = snprintf(g, sizeof(g), "%llu", (unsigned long long)k);
	vfs_store_write(s, ino[NFILES], g, (size_t)n, 0, 0);
	vfs_store_setattr(s, ino[NFILES], &(struct vfs_attr){.size = (uint64_t)n}, VFS_SET_SIZE,
			  NULL);
	free(buf);
}

/* The generation the state of @s holds, after checking every file matches it. */
static uint64_t check_gen(struct vfs_store *s)
{
	uint64_t gino = t_lookup(s, ROOT, "gen");
	if (!gino)
		return 0;
	char g[32] = {0};
	ck_assert_int_gt(vfs_store_read(s, gino, g, sizeof(g) - 1, 0), 0);
	uint64_t k = strtoull(g, NULL, 10);
	uint8_t *buf = malloc(300001);
	for (int i = 0; i < NFILES; i++) {
		char n[8];
		snprintf(n, sizeof(n), "f%d", i);
		uint64_t ino = t_lookup(s, ROOT, n);
		ck_assert_uint_ne(ino, 0);
		size_t size = gen_size(k, i);
		ck_assert_int_eq(vfs_store_read(s, ino, buf, 300001, 0), (ssize_t)size);
		size_t bad = size;
		for (size_t j = 0; j < size && bad == size; j++)
			if (buf[j] != gen_byte(k, i, j))
				bad = j; /* one assertion per file: Check logs each one */
		ck_assert_msg(bad == size, "gen %llu file %d byte %zu", (unsigned long long)k, i,
			      bad);
	}
	free(buf);
	return k;
}

/* The child: generations k0+1, k0+2, ... each committed as head and "snap-<k>", dropping
 * "snap-<k-2>", reporting each finished generation on @fd. Runs until killed. */
static void child(int fd, uint64_t k0)
{
	struct vfs_store *s;
	if (vfs_store_open(t_store, VFS_STORE_CREATE, 0, &s) < 0)
		_exit(2);
	uint64_t ino[NFILES + 1];
	for (int i = 0; i <= NFILES; i++) {
		char n[8];
		snprintf(n, sizeof(n), i < NFILES ? "f%d" : "gen", i);
		struct vfs_attr a;
		if (vfs_store_lookup(s, ROOT, n, &a) == 0)
			ino[i] = a.ino;
		else if (vfs_store_mknod(s, ROOT, n, S_IFREG | 0600, 0, 0, 0, NULL, &a) == 0)
			ino[i] = a.ino;
		else
			_exit(4);
	}
	for (uint64_t k = k0 + 1;; k++) {
		write_gen(s, k, ino);
		struct vfs_store_commit *c;
		if (vfs_store_commit_prepare(s, &c) < 0)
			_exit(5);
		char ref[32];
		snprintf(ref, sizeof(ref), "snap-%llu", (unsigned long long)k);
		if (vfs_store_commit_finish(s, c, ref) < 0)
			_exit(6);
		if (write(fd, &k, sizeof(k)) != sizeof(k))
			_exit(7);
		snprintf(ref, sizeof(ref), "snap-%llu", (unsigned long long)(k - 2));
		vfs_store_ref_drop(s, ref);
	}
}

START_TEST(test_kill_at_random)
{
	uint64_t done = 0; /* highest generation the child reported committed */
	t_rand_state ^= (uint64_t)time(NULL);
	for (int round = 0; round < 40; round++) {
		int p[2];
		ck_assert_int_eq(pipe(p), 0);
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			close(p[0]);
			t_rand_state ^= (uint64_t)getpid();
			child(p[1], done);
		}
		close(p[1]);
		usleep((useconds_t)(t_rand() % 60000));
		kill(pid, SIGKILL);
		int st;
		waitpid(pid, &st, 0);
		ck_assert_msg(WIFSIGNALED(st), "child exited with %d", WEXITSTATUS(st));
		uint64_t k;
		while (read(p[0], &k, sizeof(k)) == sizeof(k))
			done = CK_MAX(done, k);
		close(p[0]);
		struct vfs_store *s = t_open();
		uint64_t got = check_gen(s);
		/* head is the last finished generation, or the one whose refs write was racing
		 * with the kill */
		ck_assert_msg(got == done || got == done + 1, "head gen %llu, committed %llu",
			      (unsigned long long)got, (unsigned long long)done);
		done = got;
		/* every surviving snapshot is intact too */
		struct vfs_ref *refs;
		size_t n;
		ck_assert_int_eq(vfs_store_refs(s, &refs, &n), 0);
		vfs_store_close(s);
		for (size_t i = 0; i < n; i++) {
			s = t_open_at(refs[i].epoch, 0);
			uint64_t g = check_gen(s);
			if (!strncmp(refs[i].name, "snap-", 5))
				ck_assert_uint_eq(g, strtoull(refs[i].name + 5, NULL, 10));
			vfs_store_close(s);
		}
		free(refs);
	}
	/* nothing left over: no temporaries; data files only of surviving epochs */
	struct vfs_store *s = t_open();
	struct vfs_ref *refs;
	size_t nrefs;
	ck_assert_int_eq(vfs_store_refs(s, &refs, &nrefs), 0);
	int named = 0; /* distinct epochs the refs name: a linear history folds to those */
	for (size_t i = 0; i < nrefs; i++) {
		bool dup = false;
		for (size_t j = 0; j < i; j++)
			dup |= refs[j].epoch == refs[i].epoch;
		named += !dup;
	}
	free(refs);
	vfs_store_close(s);
	char p[PATH_MAX * 2];
	snprintf(p, sizeof(p), "%s/meta", t_store);
	DIR *d = opendir(p);
	struct dirent *de;
	int neps = 0;
	while ((de = readdir(d))) {
		ck_assert_ptr_null(strstr(de->d_name, ".tmp."));
		neps += strstr(de->d_name, ".ep") != NULL;
	}
	closedir(d);
	ck_assert_int_eq(neps, named);
}
END_TEST

static int copy_file(const char *from, const char *to)
{
	char *buf;
	size_t len;
	int r = ck_read_file_at(AT_FDCWD, from, 1 << 20, &buf, &len);
	if (r < 0)
		return r;
	int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	r = fd < 0 ? -errno : ck_write_full(fd, buf, len);
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

/* A store with a few epochs, a dir, a symlink, a sparse file and an orphan. */
static void make_store(void)
{
	struct vfs_store *s = t_open();
	uint64_t d = t_mkdir(s, ROOT, "dir");
	uint64_t f = t_mkfile(s, d, "file");
	t_write_str(s, f, "hello");
	struct vfs_attr a;
	ck_assert_int_eq(vfs_store_mknod(s, ROOT, "ln", S_IFLNK | 0777, 0, 0, 0, "dir/file", &a),
			 0);
	t_commit(s, "one");
	t_write(s, f, "x", 1, 200000);
	uint64_t o = t_mkfile(s, ROOT, "orphan");
	vfs_store_ref(s, o, 1);
	vfs_store_unlink(s, ROOT, "orphan");
	t_commit(s, "two");
	vfs_store_close(s);
}

/* Corrupt @rel (flip byte @off, or truncate to @off when @trunc) and expect -EBADMSG. */
static void expect_bad(const char *rel, size_t off, bool trunc)
{
	char p[PATH_MAX * 2], saved[PATH_MAX * 2];
	snprintf(p, sizeof(p), "%s/%s", t_store, rel);
	snprintf(saved, sizeof(saved), "%s/saved", t_dir);
	ck_assert_int_eq(copy_file(p, saved), 0);
	int fd = open(p, O_RDWR);
	ck_assert_int_ge(fd, 0);
	if (trunc) {
		ck_assert_int_eq(ftruncate(fd, (off_t)off), 0);
	} else {
		uint8_t b, x = (uint8_t)(t_rand() % 255 + 1); /* never 0: always a change */
		ck_assert_int_eq(pread(fd, &b, 1, (off_t)off), 1);
		b ^= x;
		ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)off), 1);
	}
	close(fd);
	struct vfs_store *s = NULL;
	int r = vfs_store_open(t_store, 0, 0, &s);
	ck_assert_msg(r == -EBADMSG, "%s %s at %zu: open gave %d", rel,
		      trunc ? "truncated" : "flipped", off, r);
	ck_assert_ptr_null(s);
	const char *base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
	ck_assert_msg(strstr(vfs_store_open_error(), base) != NULL,
		      "message \"%s\" does not name %s", vfs_store_open_error(), rel);
	ck_assert_ptr_null(strchr(vfs_store_open_error(), '\n'));
	if (!strcmp(base, "refs")) {
		struct vfs_ref *refs;
		size_t n;
		ck_assert_int_eq(vfs_store_refs_read(t_store, &refs, &n), -EBADMSG);
	}
	ck_assert_int_eq(rename(saved, p), 0);
}

START_TEST(test_corruption)
{
	make_store();
	const char *files[8] = {"FORMAT", "refs"};
	char names[6][300];
	int nf = 2;
	char p[PATH_MAX * 2];
	snprintf(p, sizeof(p), "%s/meta", t_store);
	DIR *d = opendir(p);
	struct dirent *de;
	while ((de = readdir(d)) && nf < 8)
		if (strstr(de->d_name, ".ep")) {
			snprintf(names[nf - 2], sizeof(names[0]), "meta/%s", de->d_name);
			files[nf] = names[nf - 2];
			nf++;
		}
	closedir(d);
	ck_assert_int_ge(nf, 3);
	int cases = 0;
	for (int i = 0; i < nf; i++) {
		snprintf(p, sizeof(p), "%s/%s", t_store, files[i]);
		struct stat st;
		ck_assert_int_eq(stat(p, &st), 0);
		size_t size = (size_t)st.st_size;
		/* every offset of small files, a spread of offsets of larger ones */
		size_t step = size > 400 ? size / 200 : 1;
		for (size_t off = 0; off < size; off += step, cases++)
			expect_bad(files[i], off, false);
		for (size_t off = 0; off < size; off += step, cases++)
			expect_bad(files[i], off, true);
	}
	ck_assert_int_ge(cases, 500);
	/* refs whose checksum is right but whose epoch counter is at its end: the next commit
	 * wrote meta/18446744073709551615.ep and the store then refused its own refs. */
	snprintf(p, sizeof(p), "%s/refs", t_store);
	char *orig;
	size_t len;
	ck_assert_int_eq(ck_read_file_at(AT_FDCWD, p, 1 << 20, &orig, &len), 0);
	uint8_t *b = malloc(len);
	memcpy(b, orig, len);
	ck_put_le64(b + 16, UINT64_MAX); /* magic 8, version 4, flags 4 */
	ck_put_le64(b + len - 8, ck_checksum(b, len - 8));
	ck_assert_int_eq(ck_write_file_atomic(AT_FDCWD, p, b, len, 0600), 0);
	struct vfs_store *bad = NULL;
	ck_assert_int_eq(vfs_store_open(t_store, 0, 0, &bad), -EBADMSG);
	ck_assert_msg(strstr(vfs_store_open_error(), "refs: bad epoch counter"), "%s",
		      vfs_store_open_error());
	ck_assert_int_eq(ck_write_file_atomic(AT_FDCWD, p, orig, len, 0600), 0);
	free(orig);
	free(b);
	/* after all that, the store is still fine */
	struct vfs_store *s = t_open();
	uint64_t dir = t_lookup(s, ROOT, "dir");
	ck_assert_uint_ne(dir, 0);
	vfs_store_close(s);
}
END_TEST

/* A damaged epoch costs only the epochs that build on it: the store opens at its parent, the
 * chain check names it, and no GC runs while it is there (its layers are unknown). */
START_TEST(test_damaged_epoch)
{
	struct vfs_store *s = t_open();
	uint64_t f = t_mkfile(s, ROOT, "f");
	t_write_str(s, f, "one");
	uint64_t e1 = t_commit(s, "one");
	t_write(s, f, "TWO", 3, 0);
	uint64_t e2 = t_commit(s, "two");
	vfs_store_close(s);
	char p[PATH_MAX * 2], err[512];
	snprintf(p, sizeof(p), "%s/meta/%llu.ep", t_store, (unsigned long long)e2);
	int fd = open(p, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "\xff", 1, 40), 1);
	close(fd);

	ck_assert_int_eq(vfs_store_epoch_check(t_store, e1, err, sizeof(err)), 0);
	ck_assert_int_eq(vfs_store_epoch_check(t_store, e2, err, sizeof(err)), -EBADMSG);
	ck_assert_msg(strstr(err, p) && strstr(err, "checksum mismatch"), "%s", err);
	s = NULL;
	ck_assert_int_eq(vfs_store_open(t_store, 0, e2, &s), -EBADMSG);
	ck_assert_msg(strstr(vfs_store_open_error(), p), "%s", vfs_store_open_error());
	ck_assert_int_eq(vfs_store_open(t_store, 0, 0, &s), -EBADMSG); /* head is e2 */

	s = t_open_at(e1, 0);
	f = t_lookup(s, ROOT, "f");
	char buf[4] = "";
	ck_assert_int_eq(vfs_store_read(s, f, buf, 3, 0), 3);
	ck_assert(memcmp(buf, "one", 3) == 0);
	t_write(s, f, "3", 1, 0);
	uint64_t e3 = t_commit(s, "three");
	ck_assert_int_eq(vfs_store_ref_drop(s, "two"), 0);
	ck_assert_int_eq(vfs_store_gc(s), 0);
	vfs_store_close(s);
	/* e2's file and its layer are kept; the new head builds on e1 and opens */
	ck_assert_int_eq(access(p, F_OK), 0);
	snprintf(p, sizeof(p), "%s/data/%llu.%llu", t_store, (unsigned long long)f,
		 (unsigned long long)e2);
	ck_assert_msg(access(p, F_OK) == 0, "%s removed", p);
	s = t_open();
	ck_assert_int_eq(vfs_store_read(s, f, buf, 3, 0), 3);
	ck_assert(memcmp(buf, "3ne", 3) == 0);
	vfs_store_close(s);
	ck_assert_int_eq(vfs_store_epoch_check(t_store, e3, err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_newer_format)
{
	make_store();
	uint8_t b[24];
	memcpy(b, "CKVFS-FM", 8);
	ck_put_le32(b + 8, 99);
	ck_put_le32(b + 12, VFS_CHUNK_SIZE);
	ck_put_le64(b + 16, ck_checksum(b, 16));
	int dfd = open(t_store, O_RDONLY | O_DIRECTORY);
	ck_assert_int_eq(ck_write_file_atomic(dfd, "FORMAT", b, sizeof(b), 0600), 0);
	close(dfd);
	struct vfs_store *s = NULL;
	ck_assert_int_eq(vfs_store_open(t_store, 0, 0, &s), -EPROTONOSUPPORT);
	ck_assert_ptr_nonnull(strstr(vfs_store_open_error(), "FORMAT"));
}
END_TEST

START_TEST(test_leftovers_removed)
{
	make_store();
	char p[PATH_MAX * 2];
	const char *junk[] = {"refs.tmp.123", "meta/9.ep.tmp.77", "data/2.999"};
	for (size_t i = 0; i < CK_ARRAY_SIZE(junk); i++) {
		snprintf(p, sizeof(p), "%s/%s", t_store, junk[i]);
		int fd = open(p, O_WRONLY | O_CREAT, 0600);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, "junk", 4), 4);
		close(fd);
	}
	struct vfs_store *s = t_open();
	for (size_t i = 0; i < CK_ARRAY_SIZE(junk); i++) {
		snprintf(p, sizeof(p), "%s/%s", t_store, junk[i]);
		ck_assert_msg(access(p, F_OK) < 0, "%s still there", junk[i]);
	}
	/* the orphan of "two" was dropped at load, the rest is intact */
	uint64_t f = t_lookup(s, t_lookup(s, ROOT, "dir"), "file");
	struct vfs_attr a;
	ck_assert_int_eq(vfs_store_getattr(s, f, &a), 0);
	ck_assert_uint_eq(a.size, 200001);
	char buf[8];
	ck_assert_int_eq(vfs_store_read(s, f, buf, 5, 0), 5);
	ck_assert(memcmp(buf, "hello", 5) == 0);
	vfs_store_close(s);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("vfs-store-crash");
	struct {
		const char *name;
		const TTest *t;
	} tests[] = {
		{"kill", test_kill_at_random},
		{"corruption", test_corruption},
		{"damaged", test_damaged_epoch},
		{"newer", test_newer_format},
		{"leftovers", test_leftovers_removed},
	};
	for (size_t i = 0; i < CK_ARRAY_SIZE(tests); i++) {
		TCase *tc = t_tcase(tests[i].name);
		tcase_add_test(tc, tests[i].t);
		suite_add_tcase(su, tc);
	}
	return ck_run_suite(su);
}
