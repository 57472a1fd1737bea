/* The FUSE layer over a real mount: what crosses epochs and mounts (commit, reopen at an
 * epoch, MAP_SHARED pages, unlinked-open files, SQLite WAL, large writes spliced or copied),
 * and stopping the server; how many requests a small file costs. */
#include "../check-main.h"
#include <dirent.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <sys/mman.h>

#include "fuse_fixture.h"

FX_TEST(commit_reopen)
{
	write_str(mp("f"), "v1");
	CHECK(mkdir(mp("d"), 0700) == 0);
	write_str(mp("d/g"), "in d");
	uint64_t e1 = fx_commit("snap-a");
	write_str(mp("f"), "v2 longer");
	write_str(mp("new"), "n");
	CHECK(unlink(mp("d/g")) == 0);
	uint64_t e2 = fx_commit(NULL);
	CHECK(e2 > e1);
	write_str(mp("f"), "v3 not committed");

	fx_reopen(e1, false);
	CHECK(has_content(mp("f"), "v1") && has_content(mp("d/g"), "in d"));
	CHECK(access(mp("new"), F_OK) < 0 && errno == ENOENT);
	fx_reopen(e2, false);
	CHECK(has_content(mp("f"), "v2 longer") && has_content(mp("new"), "n"));
	CHECK(access(mp("d/g"), F_OK) < 0);
	/* Head is e2: the uncommitted v3 is gone. */
	fx_reopen(0, false);
	CHECK(has_content(mp("f"), "v2 longer"));
	/* A closing server commits the head (closed files have reached the store: close() writes
	 * the dirty pages back itself, FLUSH or not). */
	write_str(mp("f"), "v4 at shutdown");
	fx_reopen_committing();
	CHECK(has_content(mp("f"), "v4 at shutdown"));
}

FX_TEST(mmap_shared)
{
	const size_t len = 256 * 1024;
	int fd = open(mp("m"), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0 && ftruncate(fd, (off_t)len) == 0);
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED);
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(i % 251);
	CHECK(munmap(p, len) == 0);
	CHECK(close(fd) == 0);

	unsigned char *q = malloc(len);
	CHECK(q);
	fd = open(mp("m"), O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0 && ck_pread_full(fd, q, len, 0) == (ssize_t)len);
	close(fd);
	for (size_t i = 0; i < len; i++)
		CHECK(q[i] == (unsigned char)(i % 251));

	/* The dirty pages reach the store through syncfs at commit. */
	uint64_t e = fx_commit(NULL);
	fx_reopen(e, false);
	memset(q, 0, len);
	fd = open(mp("m"), O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0 && ck_pread_full(fd, q, len, 0) == (ssize_t)len);
	close(fd);
	for (size_t i = 0; i < len; i++)
		CHECK(q[i] == (unsigned char)(i % 251));
	free(q);
}

FX_TEST(unlinked_open)
{
	int fd = open(mp("orphan"), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	CHECK(fd >= 0 && write(fd, "kept", 4) == 4);
	struct stat st;
	CHECK(fstat(fd, &st) == 0);
	uint64_t ino = st.st_ino;
	CHECK(unlink(mp("orphan")) == 0);
	CHECK(access(mp("orphan"), F_OK) < 0);
	CHECK(fstat(fd, &st) == 0 && st.st_nlink == 0);
	/* Still reads and writes. */
	CHECK(pwrite(fd, " alive", 6, 4) == 6);
	char buf[32] = {0};
	CHECK(pread(fd, buf, sizeof(buf), 0) == 10 && memcmp(buf, "kept alive", 10) == 0);
	/* Reachable by inode number (what the restorer uses). */
	char path[64];
	CHECK(vfs_inode_path(ino, path, sizeof(path)) == 0);
	int fd2 = open(mp(path + 1), O_RDWR | O_CLOEXEC);
	CHECK(fd2 >= 0);
	CHECK(fstat(fd2, &st) == 0 && st.st_ino == ino && st.st_nlink == 0);
	memset(buf, 0, sizeof(buf));
	CHECK(pread(fd2, buf, sizeof(buf), 0) == 10 && memcmp(buf, "kept alive", 10) == 0);
	close(fd2);
	CHECK(open(mp(".ckptenv/ino/999999999"), O_RDONLY | O_CLOEXEC) < 0 && errno == ENOENT);
	CHECK(open(mp(".ckptenv/ino/1"), O_RDONLY | O_CLOEXEC) < 0 && errno == ENOENT);
	CHECK(open(mp(".ckptenv/ino/abc"), O_RDONLY | O_CLOEXEC) < 0 && errno == ENOENT);
	CHECK(mkdir(mp(".ckptenv/ino/x"), 0700) < 0);

	/* Committed while open, the orphan survives a reopen with keep_orphans; fd stays open
	 * on the old mount, so stopping that session must not wait for it. */
	uint64_t e = fx_commit("ckpt-1");
	fx_reopen(e, true);
	fd2 = open(mp(path + 1), O_RDONLY | O_CLOEXEC);
	CHECK(fd2 >= 0);
	memset(buf, 0, sizeof(buf));
	CHECK(pread(fd2, buf, sizeof(buf), 0) == 10 && memcmp(buf, "kept alive", 10) == 0);
	close(fd2);
	/* The old mount's session is gone: its fd fails (cached pages aside), it does not hang. */
	CHECK(fchmod(fd, 0644) < 0 && (errno == ENOTCONN || errno == ECONNABORTED));
	close(fd);
}

FX_TEST(stop_while_running)
{
	write_str(mp("f"), "x");
	int fd = open(mp("f"), O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	fx_stop();
	struct stat st;
	CHECK(stat(mp("other"), &st) < 0 && errno == ENOTCONN);
	close(fd);
}

static int run(const char *cmd, char *out, size_t len)
{
	FILE *f = popen(cmd, "r");
	if (!f)
		return -1;
	size_t n = fread(out, 1, len - 1, f);
	out[n] = 0;
	return pclose(f);
}

FX_TEST(sqlite_wal)
{
	if (system("command -v sqlite3 >/dev/null 2>&1") != 0)
		return; /* not installed: nothing to check */
	char cmd[PATH_MAX * 2], out[256];
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && sqlite3 db 'pragma journal_mode=wal; create table t(x);"
		 " with recursive c(i) as (select 1 union all select i+1 from c where i<5000)"
		 " insert into t select i from c; select count(*), sum(x) from t;' 2>&1",
		 fx_mnt);
	CHECK(run(cmd, out, sizeof(out)) == 0);
	CHECK(strstr(out, "wal") && strstr(out, "5000|12502500"));
	CHECK(access(mp("db-wal"), F_OK) == 0 || access(mp("db"), F_OK) == 0);
	/* A second process with the WAL and -shm (MAP_SHARED) in place. */
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && sqlite3 db 'pragma journal_mode; insert into t values(1);"
		 " select count(*) from t; pragma wal_checkpoint(truncate);' 2>&1",
		 fx_mnt);
	CHECK(run(cmd, out, sizeof(out)) == 0 && strstr(out, "5001"));
	uint64_t e = fx_commit(NULL);
	fx_reopen(e, false);
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && sqlite3 db 'pragma integrity_check; select count(*) from t;' 2>&1",
		 fx_mnt);
	CHECK(run(cmd, out, sizeof(out)) == 0 && strstr(out, "ok") && strstr(out, "5001"));
}

/* Large writes: what the workers splice straight into layer files (fresh chunks, whole chunks
 * over an older epoch, growing a small in-memory file) and what must still be copied (partial
 * chunks an older epoch holds); the store must hold the same bytes either way, in every epoch. */
#define BIG_MAX (14u << 20)

static uint8_t pattern(size_t off, unsigned v)
{
	return (uint8_t)(((off * 2654435761u) >> 9) + v * 37u);
}

/* Write [@off, @off + @len) of @path with version @v in 1 MiB pieces, and into @exp. */
static void put(const char *path, uint8_t *exp, size_t off, size_t len, unsigned v)
{
	const size_t piece = 1u << 20;
	uint8_t *buf = malloc(piece);
	CHECK(buf);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	for (size_t done = 0; done < len;) {
		size_t n = CK_MIN(piece, len - done);
		for (size_t i = 0; i < n; i++)
			buf[i] = exp[off + done + i] = pattern(off + done + i, v);
		CHECK(ck_pwrite_full(fd, buf, n, (off_t)(off + done)) == 0);
		done += n;
	}
	CHECK(close(fd) == 0);
	free(buf);
}

static void expect(const char *path, const uint8_t *exp, size_t size)
{
	uint8_t *buf = malloc(size + 1);
	CHECK(buf);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(ck_read_full(fd, buf, size + 1) == (ssize_t)size);
	close(fd);
	CHECK(memcmp(buf, exp, size) == 0);
	free(buf);
}

/* The round trips of a small file created, written, closed, stat'ed and unlinked are all the
 * kernel's (vfs/README.md lists them, 9 waited for per file on 6.18); this catches the
 * daemon adding any (a timeout of 0, a FLUSH answered, a failed create sending the kernel to
 * mknod+open). Bounds, not exact counts: the kernel may send fewer. */
FX_TEST(small_file_requests)
{
	enum { N = 200 };
	char name[32], data[128];
	memset(data, 'x', sizeof(data));
	CHECK(mkdir(mp("rt"), 0755) == 0);
	struct vfs_io_stats a = fx_io_stats();
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "rt/f%d", i);
		int fd = open(mp(name), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		CHECK(fd >= 0 && ck_write_full(fd, data, sizeof(data)) == 0);
		CHECK(close(fd) == 0);
		struct stat st;
		CHECK(stat(mp(name), &st) == 0 && st.st_size == (off_t)sizeof(data));
		CHECK(unlink(mp(name)) == 0);
	}
	struct vfs_io_stats b = fx_io_stats();
	uint64_t d[VFS_OPCODES], waited = 0;
	for (unsigned op = 0; op < VFS_OPCODES; op++) {
		d[op] = b.requests[op] - a.requests[op];
		if (op != FUSE_FORGET && op != FUSE_BATCH_FORGET && op != FUSE_RELEASE)
			waited += d[op];
	}
	/* FLUSH once per mount: its ENOSYS turns it off. */
	CHECK(d[FUSE_CREATE] == N && d[FUSE_UNLINK] == N && d[FUSE_FLUSH] <= 1);
	CHECK(d[FUSE_MKNOD] == 0 && d[FUSE_OPEN] == 0);
	CHECK(d[FUSE_LOOKUP] <= N + 2 && d[FUSE_GETATTR] <= 3 * N + 2 && d[FUSE_SETATTR] <= 2 * N);
	CHECK(waited <= 9 * N + 4);
}

FX_TEST(large_writes)
{
	uint8_t *big = calloc(1, BIG_MAX), *big1 = malloc(BIG_MAX), *grow = calloc(1, BIG_MAX);
	CHECK(big && big1 && grow);
	const size_t mib = 1u << 20;
	put(mp("big"), big, 0, 12 * mib, 1);
	put(mp("grow"), grow, 0, 100, 2);     /* in memory ... */
	put(mp("grow"), grow, 0, 2 * mib, 3); /* ... then a layer file */
	struct vfs_io_stats io = fx_io_stats();
	/* 14 MiB in WRITEs of 960 KiB over 8 workers: each worker reads its first large WRITE,
	 * then splices. */
	CHECK(io.write_bytes_spliced > 0);
	uint64_t e1 = fx_commit("snap-1"); /* named: an unnamed epoch folds into its child */
	memcpy(big1, big, BIG_MAX);

	put(mp("big"), big, 100000, 3 * mib / 2 + 123, 4); /* partial chunks of epoch e1 */
	put(mp("big"), big, 4 * mib, 2 * mib, 5);	   /* whole chunks over e1 */
	put(mp("big"), big, 12 * mib + 7, mib, 6);	   /* past the old end */
	put(mp("grow"), grow, 3 * mib, 3 * mib, 7);	   /* past a hole */
	uint64_t e2 = fx_commit("snap-2");
	struct vfs_io_stats io2 = fx_io_stats();
	CHECK(io2.write_bytes_spliced > io.write_bytes_spliced);

	fx_reopen(e2, false);
	expect(mp("big"), big, 13 * mib + 7);
	expect(mp("grow"), grow, 6 * mib);
	fx_reopen(e1, false);
	expect(mp("big"), big1, 12 * mib);
	expect(mp("grow"), grow, 2 * mib);
	free(big);
	free(big1);
	free(grow);
}

static Suite *epoch_suite(void)
{
	Suite *s = suite_create("vfs-fuse-epoch");
	TCase *tc = tcase_create("epochs");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_commit_reopen);
	tcase_add_test(tc, test_mmap_shared);
	tcase_add_test(tc, test_unlinked_open);
	tcase_add_test(tc, test_stop_while_running);
	tcase_add_test(tc, test_sqlite_wal);
	tcase_add_test(tc, test_large_writes);
	tcase_add_test(tc, test_small_file_requests);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) < 0) {
		fprintf(stderr, "skip: needs root and /dev/fuse\n");
		return 77;
	}
	return ck_run_suite(epoch_suite());
}
