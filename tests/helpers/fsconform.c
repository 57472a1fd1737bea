/* fsconform: POSIX file-system conformance checks run against a directory.
 *
 *   fsconform DIR [CASE...]
 *
 * Creates DIR/fsconform.XXXXXX, runs every case (or only the named ones) in a subdirectory of
 * its own, each in a forked child with a time limit (so a crash, SIGBUS or hang of one case is
 * reported as that case failing), prints "ok NAME" / "not ok NAME: detail" per case and
 * "N passed, M failed" last. Exit 0 only when nothing failed. Cases that need root (dropping to
 * uid 65534) are reported "ok NAME # SKIP ..." and counted in neither number when not root.
 * FSCONFORM_KEEP=1 keeps the work directory.
 *
 * Written to find the gaps a FUSE file system typically has (nlink of directories, rename flags,
 * readdir offsets, holes, locks, permissions without default_permissions), not to be exhaustive. */
#include "common/ck.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

enum res { R_PASS = 0, R_FAIL = 1, R_SKIP = 2 };

#define DETAIL_MAX 1024
#define NOBODY	   65534
#define MIB	   (1024L * 1024L)
#define GIB	   (1024L * MIB)

/* Shared (MAP_SHARED anonymous) so forked children, grandchildren included, can fill it. */
static char *detail;

static const char *ename(int e)
{
	static char buf[32];
	const char *n = e ? strerrorname_np(e) : "0";
	if (n)
		return n;
	snprintf(buf, sizeof(buf), "E%d", e);
	return buf;
}

__attribute__((format(printf, 1, 2))) static void set_detail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, DETAIL_MAX, fmt, ap);
	va_end(ap);
}

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		set_detail(__VA_ARGS__);                                                           \
		return R_FAIL;                                                                     \
	} while (0)

/* CHECK(cond): fail with the source line, the condition and the errno at that moment. */
#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			int e_ = errno;                                                            \
			FAIL("line %d: %s [errno %s]", __LINE__, #cond, ename(e_));                \
		}                                                                                  \
	} while (0)

/* CHECK_ERR(expr, E): expr must fail (-1) with errno E. */
#define CHECK_ERR(expr, err)                                                                       \
	do {                                                                                       \
		errno = 0;                                                                         \
		long r_ = (long)(expr);                                                            \
		int e_ = errno;                                                                    \
		if (r_ != -1 || e_ != (err))                                                       \
			FAIL("line %d: %s: expected %s, got %ld [errno %s]", __LINE__, #expr,      \
			     ename(err), r_, ename(e_));                                           \
	} while (0)

/* CHECK_ERR2: either of two errnos is accepted (POSIX leaves the choice). */
#define CHECK_ERR2(expr, err1, err2)                                                               \
	do {                                                                                       \
		errno = 0;                                                                         \
		long r_ = (long)(expr);                                                            \
		int e_ = errno;                                                                    \
		if (r_ != -1 || (e_ != (err1) && e_ != (err2)))                                    \
			FAIL("line %d: %s: expected %s or %s, got %ld [errno %s]", __LINE__,      \
			     #expr, ename(err1), ename(err2), r_, ename(e_));                      \
	} while (0)

#define CHECK_OK(expr)                                                                             \
	do {                                                                                       \
		errno = 0;                                                                         \
		if ((expr) < 0) {                                                                  \
			int e_ = errno;                                                            \
			FAIL("line %d: %s failed [errno %s]", __LINE__, #expr, ename(e_));         \
		}                                                                                  \
	} while (0)

/* ---- small helpers --------------------------------------------------------------------- */

static int put_file(const char *name, const char *content, mode_t mode)
{
	_cleanup_close_ int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	return ck_write_full(fd, content, strlen(content));
}

/* Whole content of @name (at most @max - 1 bytes) into @buf, NUL-terminated; length or -errno. */
static ssize_t get_file(const char *name, char *buf, size_t max)
{
	_cleanup_close_ int fd = open(name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = ck_read_full(fd, buf, max - 1);
	if (n >= 0)
		buf[n] = 0;
	return n;
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void fill_pattern(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)((i * 31 + seed) % 251 + 1);
}

static bool ts_eq(struct timespec a, time_t sec, long nsec)
{
	return a.tv_sec == sec && a.tv_nsec == nsec;
}

/* Run @fn(@arg) in a forked child; its result (R_*) comes back through the exit status, its
 * detail through the shared page. */
static enum res run_child(enum res (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		FAIL("fork: %s", ename(errno));
	if (pid == 0)
		_exit(fn(arg));
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			FAIL("waitpid: %s", ename(errno));
	if (WIFSIGNALED(st))
		FAIL("child killed by signal %d (%s)", WTERMSIG(st), sigabbrev_np(WTERMSIG(st)));
	if (WEXITSTATUS(st) > R_SKIP)
		FAIL("child exited %d", WEXITSTATUS(st));
	return (enum res)WEXITSTATUS(st);
}

/* Root that can act as uid 65534 too: not so in a user namespace mapping only the caller. */
static bool root_with_nobody(void)
{
	if (geteuid() != 0)
		return false;
	FILE *f = fopen("/proc/self/uid_map", "re");
	if (!f)
		return true;
	unsigned long inside, outside, count;
	bool mapped = false;
	while (fscanf(f, "%lu %lu %lu", &inside, &outside, &count) == 3)
		if (inside <= NOBODY && NOBODY - inside < count)
			mapped = true;
	fclose(f);
	return mapped;
}

/* Become uid/gid 65534 with no supplementary groups; false when the uid is not mapped. */
static bool become_nobody(void)
{
	return setgroups(0, NULL) == 0 && setresgid(NOBODY, NOBODY, NOBODY) == 0 &&
	       setresuid(NOBODY, NOBODY, NOBODY) == 0;
}

/* ---- cases ------------------------------------------------------------------------------ */

static enum res t_excl_create(void)
{
	_cleanup_close_ int fd = open("f", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	CHECK_ERR(open("f", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644), EEXIST);
	/* O_EXCL does not follow a symlink, dangling or not. */
	CHECK_OK(symlink("nowhere", "dangling"));
	CHECK_ERR(open("dangling", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644), EEXIST);
	CHECK_ERR(access("nowhere", F_OK), ENOENT);
	/* Without O_EXCL an existing file opens. */
	_cleanup_close_ int fd2 = open("f", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd2 >= 0);
	struct stat st;
	CHECK_OK(fstat(fd, &st));
	CHECK(S_ISREG(st.st_mode) && st.st_size == 0 && st.st_nlink == 1);
	return R_PASS;
}

static enum res t_mkstemp(void)
{
	char a[] = "tmpXXXXXX", b[] = "tmpXXXXXX";
	_cleanup_close_ int fa = mkstemp(a);
	CHECK(fa >= 0);
	_cleanup_close_ int fb = mkstemp(b);
	CHECK(fb >= 0);
	CHECK(strcmp(a, b) != 0);
	struct stat st;
	CHECK_OK(fstat(fa, &st));
	CHECK((st.st_mode & 07777) == 0600);
	CHECK(st.st_uid == geteuid());
	CHECK_OK(ck_write_full(fa, "hello", 5));
	char buf[16];
	CHECK(get_file(a, buf, sizeof(buf)) == 5 && strcmp(buf, "hello") == 0);
	return R_PASS;
}

static enum res t_rw_basic(void)
{
	_cleanup_close_ int fd = open("f", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	unsigned char w[20000], r[20000];
	fill_pattern(w, sizeof(w), 7);
	CHECK(write(fd, w, sizeof(w)) == (ssize_t)sizeof(w));
	CHECK(lseek(fd, 0, SEEK_CUR) == (off_t)sizeof(w));
	CHECK(read(fd, r, 10) == 0); /* at end of file */
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	CHECK(ck_read_full(fd, r, sizeof(r)) == (ssize_t)sizeof(r));
	CHECK(memcmp(w, r, sizeof(w)) == 0);
	/* pwrite/pread do not move the file offset. */
	CHECK(lseek(fd, 100, SEEK_SET) == 100);
	CHECK(pwrite(fd, "XYZ", 3, 4095) == 3);
	CHECK(lseek(fd, 0, SEEK_CUR) == 100);
	char p[8] = { 0 };
	CHECK(pread(fd, p, 5, 4094) == 5);
	CHECK(p[0] == (char)w[4094] && memcmp(p + 1, "XYZ", 3) == 0 && p[4] == (char)w[4098]);
	CHECK(lseek(fd, 0, SEEK_CUR) == 100);
	CHECK(read(fd, p, 1) == 1 && p[0] == (char)w[100]);
	/* pread past the end reads 0 bytes; pwrite past the end extends with zeros. */
	CHECK(pread(fd, p, 4, 30000) == 0);
	CHECK(pwrite(fd, "E", 1, 30000) == 1);
	struct stat st;
	CHECK_OK(fstat(fd, &st));
	CHECK(st.st_size == 30001);
	CHECK(pread(fd, r, 10000, 20000) == 10000 && all_zero(r, 10000));
	CHECK_OK(fsync(fd));
	CHECK_OK(fdatasync(fd));
	/* A second descriptor sees the data. */
	_cleanup_close_ int fd2 = open("f", O_RDONLY | O_CLOEXEC);
	CHECK(fd2 >= 0);
	CHECK(pread(fd2, p, 3, 4095) == 3 && memcmp(p, "XYZ", 3) == 0);
	return R_PASS;
}

static enum res t_append(void)
{
	CHECK_OK(put_file("f", "base", 0644));
	_cleanup_close_ int a = open("f", O_WRONLY | O_APPEND | O_CLOEXEC);
	CHECK(a >= 0);
	_cleanup_close_ int b = open("f", O_WRONLY | O_APPEND | O_CLOEXEC);
	CHECK(b >= 0);
	CHECK(lseek(a, 0, SEEK_SET) == 0);
	CHECK(write(a, "-a1", 3) == 3);
	CHECK(lseek(a, 0, SEEK_CUR) == 7);
	CHECK(write(b, "-b1", 3) == 3);
	CHECK(write(a, "-a2", 3) == 3);
	char buf[64];
	CHECK(get_file("f", buf, sizeof(buf)) == 13);
	if (strcmp(buf, "base-a1-b1-a2") != 0)
		FAIL("content '%s', expected 'base-a1-b1-a2'", buf);
	/* O_TRUNC then append starts again at 0. */
	_cleanup_close_ int c = open("f", O_WRONLY | O_APPEND | O_TRUNC | O_CLOEXEC);
	CHECK(c >= 0);
	CHECK(write(c, "x", 1) == 1);
	CHECK(get_file("f", buf, sizeof(buf)) == 1 && buf[0] == 'x');
	return R_PASS;
}

static enum res t_truncate(void)
{
	_cleanup_close_ int fd = open("f", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	unsigned char w[3 * 65536 + 123], r[sizeof(w)];
	fill_pattern(w, sizeof(w), 3);
	CHECK(ck_pwrite_full(fd, w, sizeof(w), 0) == 0);
	struct stat st;
	/* Down in the middle of a chunk, then back up: the old bytes must not come back. */
	CHECK_OK(ftruncate(fd, 70000));
	CHECK_OK(fstat(fd, &st));
	CHECK(st.st_size == 70000);
	CHECK_OK(ftruncate(fd, sizeof(w)));
	CHECK(pread(fd, r, sizeof(r), 0) == (ssize_t)sizeof(r));
	CHECK(memcmp(r, w, 70000) == 0);
	CHECK(all_zero(r + 70000, sizeof(r) - 70000));
	/* truncate(2) by path, down to 10 and up to 1 MiB. */
	CHECK_OK(truncate("f", 10));
	CHECK_OK(stat("f", &st));
	CHECK(st.st_size == 10);
	CHECK_OK(truncate("f", MIB));
	CHECK_OK(fstat(fd, &st));
	CHECK(st.st_size == MIB);
	CHECK(pread(fd, r, 10, 0) == 10 && memcmp(r, w, 10) == 0);
	CHECK(pread(fd, r, sizeof(r), 10) == (ssize_t)sizeof(r) && all_zero(r, sizeof(r)));
	/* To zero, then a write at an offset leaves a zero-filled gap. */
	CHECK_OK(ftruncate(fd, 0));
	CHECK(pwrite(fd, "z", 1, 5000) == 1);
	CHECK(pread(fd, r, 5001, 0) == 5001 && all_zero(r, 5000) && r[5000] == 'z');
	CHECK_ERR(ftruncate(fd, -1), EINVAL);
	/* A read-only descriptor cannot truncate. */
	_cleanup_close_ int ro = open("f", O_RDONLY | O_CLOEXEC);
	CHECK(ro >= 0);
	CHECK_ERR2(ftruncate(ro, 0), EINVAL, EBADF);
	return R_PASS;
}

static enum res t_unlink_open(void)
{
	_cleanup_close_ int fd = open("f", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	_cleanup_close_ int fd2 = open("f", O_RDONLY | O_CLOEXEC);
	CHECK(fd2 >= 0);
	CHECK(write(fd, "before", 6) == 6);
	CHECK_OK(unlink("f"));
	CHECK_ERR(access("f", F_OK), ENOENT);
	struct stat st;
	CHECK_OK(fstat(fd, &st));
	CHECK(st.st_nlink == 0);
	CHECK(write(fd, "-after", 6) == 6);
	char buf[32] = { 0 };
	CHECK(pread(fd, buf, sizeof(buf), 0) == 12 && memcmp(buf, "before-after", 12) == 0);
	/* A new file of the same name is a different file. */
	CHECK_OK(put_file("f", "new", 0644));
	CHECK(get_file("f", buf, sizeof(buf)) == 3);
	/* Closing one of two descriptors keeps the orphan alive for the other. */
	CHECK_OK(close(TAKE_FD(fd)));
	memset(buf, 0, sizeof(buf));
	CHECK(pread(fd2, buf, sizeof(buf), 0) == 12 && memcmp(buf, "before-after", 12) == 0);
	CHECK_OK(fstat(fd2, &st));
	CHECK(st.st_nlink == 0 && st.st_size == 12);
	/* fchmod/ftruncate on an orphan work too. */
	_cleanup_close_ int fd3 = open("g", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd3 >= 0);
	CHECK_OK(unlink("g"));
	CHECK_OK(ftruncate(fd3, 4096));
	CHECK_OK(fchmod(fd3, 0600));
	CHECK_OK(fstat(fd3, &st));
	CHECK(st.st_size == 4096 && (st.st_mode & 0777) == 0600);
	return R_PASS;
}

static enum res t_rename_file(void)
{
	CHECK_OK(put_file("a", "AAA", 0644));
	CHECK_OK(put_file("b", "BBBBB", 0644));
	struct stat sa, sb;
	CHECK_OK(stat("a", &sa));
	_cleanup_close_ int old_b = open("b", O_RDONLY | O_CLOEXEC);
	CHECK(old_b >= 0);
	CHECK_OK(rename("a", "b"));
	CHECK_ERR(access("a", F_OK), ENOENT);
	char buf[16];
	CHECK(get_file("b", buf, sizeof(buf)) == 3 && strcmp(buf, "AAA") == 0);
	CHECK_OK(stat("b", &sb));
	CHECK(sb.st_ino == sa.st_ino);
	/* The replaced file lives on for its open descriptor. */
	CHECK(pread(old_b, buf, 5, 0) == 5 && memcmp(buf, "BBBBB", 5) == 0);
	/* Into a subdirectory and back; to itself is a no-op. */
	CHECK_OK(mkdir("d", 0755));
	CHECK_OK(rename("b", "d/c"));
	CHECK_OK(rename("d/c", "c"));
	CHECK_OK(rename("c", "c"));
	CHECK(get_file("c", buf, sizeof(buf)) == 3);
	CHECK_ERR(rename("missing", "x"), ENOENT);
	/* Hard links to the same file: rename is a no-op, both names stay. */
	CHECK_OK(link("c", "c2"));
	CHECK_OK(rename("c", "c2"));
	CHECK_OK(access("c", F_OK));
	CHECK_OK(access("c2", F_OK));
	return R_PASS;
}

static enum res t_rename_dir(void)
{
	CHECK_OK(mkdir("d1", 0755));
	CHECK_OK(put_file("d1/inner", "x", 0644));
	CHECK_OK(mkdir("empty", 0755));
	CHECK_OK(rename("d1", "empty")); /* over an empty directory */
	CHECK_OK(access("empty/inner", F_OK));
	CHECK_ERR(access("d1", F_OK), ENOENT);
	CHECK_OK(mkdir("full", 0755));
	CHECK_OK(put_file("full/x", "x", 0644));
	CHECK_ERR2(rename("empty", "full"), ENOTEMPTY, EEXIST);
	CHECK_OK(put_file("file", "f", 0644));
	CHECK_ERR(rename("file", "full"), EISDIR);
	CHECK_ERR(rename("full", "file"), ENOTDIR);
	/* A directory into its own subtree. */
	CHECK_OK(mkdir("full/sub", 0755));
	CHECK_ERR(rename("full", "full/sub/moved"), EINVAL);
	CHECK_ERR(rename("full", "full/moved"), EINVAL);
	/* A renamed directory's ".." follows it. */
	CHECK_OK(mkdir("p", 0755));
	CHECK_OK(rename("full", "p/full"));
	struct stat a, b;
	CHECK_OK(stat("p/full/sub/../..", &a));
	CHECK_OK(stat("p", &b));
	CHECK(a.st_ino == b.st_ino);
	return R_PASS;
}

static enum res t_rename_noreplace(void)
{
	CHECK_OK(put_file("a", "A", 0644));
	CHECK_OK(put_file("b", "B", 0644));
	CHECK_ERR(renameat2(AT_FDCWD, "a", AT_FDCWD, "b", RENAME_NOREPLACE), EEXIST);
	char buf[8];
	CHECK(get_file("a", buf, sizeof(buf)) == 1 && buf[0] == 'A');
	CHECK(get_file("b", buf, sizeof(buf)) == 1 && buf[0] == 'B');
	CHECK_OK(renameat2(AT_FDCWD, "a", AT_FDCWD, "c", RENAME_NOREPLACE));
	CHECK_ERR(access("a", F_OK), ENOENT);
	CHECK(get_file("c", buf, sizeof(buf)) == 1 && buf[0] == 'A');
	return R_PASS;
}

static enum res t_rename_exchange(void)
{
	CHECK_OK(put_file("a", "AAA", 0644));
	CHECK_OK(mkdir("d", 0755));
	CHECK_OK(put_file("d/b", "BB", 0644));
	struct stat sa, sb, st;
	CHECK_OK(stat("a", &sa));
	CHECK_OK(stat("d/b", &sb));
	CHECK_OK(renameat2(AT_FDCWD, "a", AT_FDCWD, "d/b", RENAME_EXCHANGE));
	char buf[8];
	CHECK(get_file("a", buf, sizeof(buf)) == 2 && strcmp(buf, "BB") == 0);
	CHECK(get_file("d/b", buf, sizeof(buf)) == 3 && strcmp(buf, "AAA") == 0);
	CHECK_OK(stat("a", &st));
	CHECK(st.st_ino == sb.st_ino);
	CHECK_OK(stat("d/b", &st));
	CHECK(st.st_ino == sa.st_ino);
	/* A file and a directory swap too. */
	CHECK_OK(mkdir("e", 0755));
	CHECK_OK(renameat2(AT_FDCWD, "a", AT_FDCWD, "e", RENAME_EXCHANGE));
	CHECK_OK(stat("a", &st));
	CHECK(S_ISDIR(st.st_mode));
	CHECK_OK(stat("e", &st));
	CHECK(S_ISREG(st.st_mode));
	CHECK_ERR(renameat2(AT_FDCWD, "e", AT_FDCWD, "missing", RENAME_EXCHANGE), ENOENT);
	return R_PASS;
}

static enum res t_link_counts(void)
{
	struct stat st;
	CHECK_OK(put_file("f", "x", 0644));
	CHECK_OK(stat("f", &st));
	CHECK(st.st_nlink == 1);
	CHECK_OK(link("f", "g"));
	CHECK_OK(stat("f", &st));
	CHECK(st.st_nlink == 2);
	ino_t ino = st.st_ino;
	CHECK_OK(stat("g", &st));
	CHECK(st.st_ino == ino && st.st_nlink == 2);
	CHECK_ERR(link("f", "g"), EEXIST);
	CHECK_OK(unlink("f"));
	CHECK_OK(stat("g", &st));
	CHECK(st.st_nlink == 1);
	/* Directories: 2 + one per subdirectory; files inside do not count. */
	CHECK_OK(mkdir("d", 0755));
	CHECK_OK(stat("d", &st));
	if (st.st_nlink != 2)
		FAIL("new directory has nlink %lu, expected 2", (unsigned long)st.st_nlink);
	struct stat parent0;
	CHECK_OK(stat(".", &parent0));
	CHECK_OK(mkdir("d/a", 0755));
	CHECK_OK(mkdir("d/b", 0755));
	CHECK_OK(put_file("d/file", "x", 0644));
	CHECK_OK(stat("d", &st));
	if (st.st_nlink != 4)
		FAIL("directory with 2 subdirectories has nlink %lu, expected 4",
		     (unsigned long)st.st_nlink);
	CHECK_OK(rmdir("d/a"));
	CHECK_OK(stat("d", &st));
	CHECK(st.st_nlink == 3);
	/* Moving a subdirectory out moves a link to the new parent. */
	CHECK_OK(rename("d/b", "b"));
	CHECK_OK(stat("d", &st));
	CHECK(st.st_nlink == 2);
	CHECK_OK(stat(".", &st));
	CHECK(st.st_nlink == parent0.st_nlink + 1);
	CHECK_ERR(link("d", "dlink"), EPERM);
	return R_PASS;
}

static enum res t_symlink(void)
{
	const char *target = "no/such/target";
	CHECK_OK(symlink(target, "s"));
	char buf[256];
	ssize_t n = readlink("s", buf, sizeof(buf));
	CHECK(n == (ssize_t)strlen(target) && memcmp(buf, target, n) == 0);
	/* A short buffer truncates without NUL. */
	CHECK(readlink("s", buf, 3) == 3 && memcmp(buf, "no/", 3) == 0);
	struct stat st;
	CHECK_OK(lstat("s", &st));
	CHECK(S_ISLNK(st.st_mode) && st.st_size == (off_t)strlen(target));
	CHECK_ERR(stat("s", &st), ENOENT);
	CHECK_ERR(symlink("x", "s"), EEXIST);
	/* Following to a file and a directory. */
	CHECK_OK(put_file("file", "content", 0644));
	CHECK_OK(symlink("file", "tofile"));
	CHECK(get_file("tofile", buf, sizeof(buf)) == 7);
	CHECK_OK(mkdir("dir", 0755));
	CHECK_OK(put_file("dir/in", "x", 0644));
	CHECK_OK(symlink("dir", "todir"));
	CHECK_OK(access("todir/in", F_OK));
	CHECK_ERR(open("tofile", O_RDONLY | O_NOFOLLOW | O_CLOEXEC), ELOOP);
	CHECK_ERR(readlink("file", buf, sizeof(buf)), EINVAL);
	/* Loops and a long target. */
	CHECK_OK(symlink("loop2", "loop1"));
	CHECK_OK(symlink("loop1", "loop2"));
	CHECK_ERR(open("loop1", O_RDONLY | O_CLOEXEC), ELOOP);
	char longt[1025];
	memset(longt, 'x', 1024);
	longt[1024] = 0;
	CHECK_OK(symlink(longt, "long"));
	char back[2048];
	CHECK(readlink("long", back, sizeof(back)) == 1024 && memcmp(back, longt, 1024) == 0);
	CHECK_OK(unlink("s"));
	CHECK_ERR(lstat("s", &st), ENOENT);
	return R_PASS;
}

static enum res t_fifo(void)
{
	CHECK_OK(mkfifo("p", 0644));
	struct stat st;
	CHECK_OK(stat("p", &st));
	CHECK(S_ISFIFO(st.st_mode));
	_cleanup_close_ int r = open("p", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	CHECK(r >= 0);
	_cleanup_close_ int w = open("p", O_WRONLY | O_CLOEXEC);
	CHECK(w >= 0);
	CHECK(write(w, "through the fifo", 16) == 16);
	char buf[32];
	CHECK(read(r, buf, sizeof(buf)) == 16 && memcmp(buf, "through the fifo", 16) == 0);
	CHECK_ERR(read(r, buf, sizeof(buf)), EAGAIN);
	CHECK_OK(close(TAKE_FD(w)));
	CHECK(read(r, buf, sizeof(buf)) == 0); /* end of file with no writer */
	CHECK_ERR(mkfifo("p", 0644), EEXIST);
	/* mknod of a FIFO as well. */
	CHECK_OK(mknod("p2", S_IFIFO | 0600, 0));
	CHECK_OK(stat("p2", &st));
	CHECK(S_ISFIFO(st.st_mode));
	return R_PASS;
}

static enum res t_unix_socket(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, "sock");
	_cleanup_close_ int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(l >= 0);
	CHECK_OK(bind(l, (struct sockaddr *)&sa, sizeof(sa)));
	CHECK_OK(listen(l, 4));
	struct stat st;
	CHECK_OK(lstat("sock", &st));
	CHECK(S_ISSOCK(st.st_mode));
	_cleanup_close_ int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(c >= 0);
	CHECK_OK(connect(c, (struct sockaddr *)&sa, sizeof(sa)));
	_cleanup_close_ int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	CHECK(s >= 0);
	CHECK(write(c, "ping", 4) == 4);
	char buf[8];
	CHECK(read(s, buf, sizeof(buf)) == 4 && memcmp(buf, "ping", 4) == 0);
	/* Binding to an existing name fails; after unlink a new bind works. */
	_cleanup_close_ int l2 = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CHECK(l2 >= 0);
	CHECK_ERR(bind(l2, (struct sockaddr *)&sa, sizeof(sa)), EADDRINUSE);
	CHECK_OK(unlink("sock"));
	CHECK_OK(bind(l2, (struct sockaddr *)&sa, sizeof(sa)));
	/* An inode that is not a socket refuses connections. */
	CHECK_OK(put_file("plain", "", 0644));
	struct sockaddr_un pa = { .sun_family = AF_UNIX };
	strcpy(pa.sun_path, "plain");
	_cleanup_close_ int c2 = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK_ERR(connect(c2, (struct sockaddr *)&pa, sizeof(pa)), ECONNREFUSED);
	return R_PASS;
}

static enum res t_mmap_shared(void)
{
	const size_t len = 5 * 4096;
	_cleanup_close_ int fd = open("f", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	CHECK_OK(ftruncate(fd, len));
	unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED);
	unsigned char w[5 * 4096], r[5 * 4096];
	fill_pattern(w, len, 11);
	memcpy(m, w, len);
	/* read(2) sees the stores without msync (one page cache). */
	CHECK(pread(fd, r, len, 0) == (ssize_t)len);
	if (memcmp(r, w, len) != 0) {
		munmap(m, len);
		FAIL("read(2) does not see MAP_SHARED stores");
	}
	/* write(2) is seen through the mapping. */
	CHECK(pwrite(fd, "WRITE", 5, 8192) == 5);
	bool seen = memcmp(m + 8192, "WRITE", 5) == 0;
	CHECK_OK(munmap(m, len));
	CHECK(seen);
	/* A new mapping through another descriptor sees everything. */
	_cleanup_close_ int fd2 = open("f", O_RDONLY | O_CLOEXEC);
	CHECK(fd2 >= 0);
	m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd2, 0);
	CHECK(m != MAP_FAILED);
	memcpy(w + 8192, "WRITE", 5);
	bool same = memcmp(m, w, len) == 0;
	CHECK_OK(munmap(m, len));
	CHECK(same);
	/* A private mapping's stores stay private. */
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	CHECK(m != MAP_FAILED);
	m[0] = 'P';
	CHECK_OK(munmap(m, len));
	CHECK(pread(fd, r, 1, 0) == 1 && r[0] == w[0]);
	return R_PASS;
}

static enum res t_msync(void)
{
	const size_t len = 3 * 4096;
	{
		_cleanup_close_ int fd = open("f", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		CHECK(fd >= 0);
		CHECK_OK(ftruncate(fd, len));
		unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		CHECK(m != MAP_FAILED);
		memset(m, 'a', len);
		int r1 = msync(m, len, MS_SYNC);
		m[4096] = 'b';
		int r2 = msync(m, len, MS_ASYNC);
		m[8192] = 'c';
		int r3 = msync(m + 8192, 4096, MS_SYNC | MS_INVALIDATE);
		int e = errno;
		munmap(m, len);
		if (r1 || r2 || r3)
			FAIL("msync: %d %d %d [errno %s]", r1, r2, r3, ename(e));
		/* Stores after the last msync reach the file at munmap/close, too. */
		m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		CHECK(m != MAP_FAILED);
		m[len - 1] = 'z';
		CHECK_OK(munmap(m, len));
	}
	_cleanup_close_ int fd = open("f", O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	unsigned char r[3 * 4096];
	CHECK(ck_read_full(fd, r, len) == (ssize_t)len);
	CHECK(r[0] == 'a' && r[4095] == 'a' && r[4096] == 'b' && r[4097] == 'a' && r[8192] == 'c');
	CHECK(r[len - 1] == 'z');
	CHECK_ERR(msync((void *)1, 4096, MS_SYNC), EINVAL);
	return R_PASS;
}

static enum res t_flock(void)
{
	CHECK_OK(put_file("f", "x", 0644));
	_cleanup_close_ int a = open("f", O_RDWR | O_CLOEXEC);
	_cleanup_close_ int b = open("f", O_RDWR | O_CLOEXEC);
	CHECK(a >= 0 && b >= 0);
	CHECK_OK(flock(a, LOCK_EX | LOCK_NB));
	CHECK_ERR(flock(b, LOCK_EX | LOCK_NB), EWOULDBLOCK);
	CHECK_ERR(flock(b, LOCK_SH | LOCK_NB), EWOULDBLOCK);
	/* A dup shares the open file description, hence the lock. */
	_cleanup_close_ int a2 = dup(a);
	CHECK(a2 >= 0);
	CHECK_OK(flock(a2, LOCK_EX | LOCK_NB));
	CHECK_OK(flock(a, LOCK_UN));
	CHECK_OK(flock(b, LOCK_SH | LOCK_NB));
	CHECK_OK(flock(a, LOCK_SH | LOCK_NB)); /* shared + shared */
	CHECK_ERR(flock(a, LOCK_EX | LOCK_NB), EWOULDBLOCK);
	/* Closing the holder releases. */
	CHECK_OK(close(TAKE_FD(b)));
	CHECK_OK(flock(a, LOCK_EX | LOCK_NB));
	return R_PASS;
}

struct lock_arg {
	int fd;
	pid_t holder;
};

static enum res fcntl_child(void *p)
{
	struct lock_arg *a = p;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 50, .l_len = 10 };
	CHECK_ERR2(fcntl(a->fd, F_SETLK, &fl), EAGAIN, EACCES);
	fl = (struct flock){ .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
	CHECK_ERR2(fcntl(a->fd, F_SETLK, &fl), EAGAIN, EACCES);
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 55, .l_len = 1 };
	CHECK_OK(fcntl(a->fd, F_GETLK, &fl));
	if (fl.l_type != F_WRLCK || fl.l_pid != a->holder || fl.l_start != 0 || fl.l_len != 100)
		FAIL("F_GETLK: type %d pid %d start %ld len %ld, expected F_WRLCK pid %d 0+100",
		     fl.l_type, fl.l_pid, (long)fl.l_start, (long)fl.l_len, a->holder);
	/* Outside the held range. */
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 200, .l_len = 100 };
	CHECK_OK(fcntl(a->fd, F_SETLK, &fl));
	return R_PASS;
}

static enum res fcntl_child_after(void *p)
{
	struct lock_arg *a = p;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	CHECK_OK(fcntl(a->fd, F_SETLK, &fl));
	return R_PASS;
}

static enum res t_fcntl_lock(void)
{
	CHECK_OK(put_file("f", "0123456789", 0644));
	_cleanup_close_ int fd = open("f", O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 100 };
	CHECK_OK(fcntl(fd, F_SETLK, &fl));
	/* The holder's own process never conflicts with itself. */
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 5 };
	CHECK_OK(fcntl(fd, F_GETLK, &fl));
	CHECK(fl.l_type == F_UNLCK);
	struct lock_arg a = { .fd = fd, .holder = getpid() };
	enum res r = run_child(fcntl_child, &a);
	if (r != R_PASS)
		return r;
	/* Unlocked: the child can take the whole file. */
	fl = (struct flock){ .l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	CHECK_OK(fcntl(fd, F_SETLK, &fl));
	return run_child(fcntl_child_after, &a);
}

static enum res t_ofd_lock(void)
{
	CHECK_OK(put_file("f", "data", 0644));
	_cleanup_close_ int a = open("f", O_RDWR | O_CLOEXEC);
	_cleanup_close_ int b = open("f", O_RDWR | O_CLOEXEC);
	CHECK(a >= 0 && b >= 0);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
	CHECK_OK(fcntl(a, F_OFD_SETLK, &fl));
	/* Same process, other open file description: conflicts (unlike classic POSIX locks). */
	fl = (struct flock){ .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 5, .l_len = 1 };
	CHECK_ERR(fcntl(b, F_OFD_SETLK, &fl), EAGAIN);
	fl = (struct flock){ .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 5, .l_len = 1 };
	CHECK_OK(fcntl(b, F_OFD_GETLK, &fl));
	CHECK(fl.l_type == F_WRLCK && fl.l_pid == -1);
	fl = (struct flock){ .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 20, .l_len = 5 };
	CHECK_OK(fcntl(b, F_OFD_SETLK, &fl));
	/* Releasing on a's description lets b in. */
	fl = (struct flock){ .l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	CHECK_OK(fcntl(a, F_OFD_SETLK, &fl));
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
	CHECK_OK(fcntl(b, F_OFD_SETLK, &fl));
	/* l_pid must be 0 when setting. */
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 50, .l_pid = 1 };
	CHECK_ERR(fcntl(b, F_OFD_SETLK, &fl), EINVAL);
	return R_PASS;
}

static enum res t_fallocate(void)
{
	_cleanup_close_ int fd = open("f", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	struct stat st;
	CHECK_OK(fallocate(fd, 0, 0, MIB));
	CHECK_OK(fstat(fd, &st));
	CHECK(st.st_size == MIB);
	static unsigned char r[MIB];
	CHECK(pread(fd, r, MIB, 0) == MIB && all_zero(r, MIB));
	/* KEEP_SIZE beyond the end leaves the size alone. */
	CHECK_OK(fallocate(fd, FALLOC_FL_KEEP_SIZE, MIB, 2 * MIB));
	CHECK_OK(fstat(fd, &st));
	CHECK(st.st_size == MIB);
	/* Mode 0 inside the file keeps existing data. */
	static unsigned char w[MIB];
	fill_pattern(w, MIB, 5);
	CHECK(ck_pwrite_full(fd, w, MIB, 0) == 0);
	CHECK_OK(fallocate(fd, 0, 1000, 5000));
	CHECK(pread(fd, r, MIB, 0) == MIB && memcmp(r, w, MIB) == 0);
	/* Punch a hole at unaligned bounds: zeros there, data around it intact. */
	CHECK_OK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100000, 300000));
	CHECK_OK(fstat(fd, &st));
	CHECK(st.st_size == MIB);
	CHECK(pread(fd, r, MIB, 0) == MIB);
	CHECK(memcmp(r, w, 100000) == 0);
	CHECK(all_zero(r + 100000, 300000));
	CHECK(memcmp(r + 400000, w + 400000, MIB - 400000) == 0);
	/* PUNCH_HOLE without KEEP_SIZE is invalid. */
	CHECK_ERR(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096), EOPNOTSUPP);
	CHECK_ERR(fallocate(fd, 0, 0, 0), EINVAL);
	/* posix_fallocate returns the error number rather than setting errno. */
	int e = posix_fallocate(fd, 0, 3 * MIB);
	if (e)
		FAIL("posix_fallocate: %s", ename(e));
	CHECK_OK(fstat(fd, &st));
	CHECK(st.st_size == 3 * MIB);
	return R_PASS;
}

static enum res t_seek_hole(void)
{
	_cleanup_close_ int fd = open("f", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	unsigned char w[4096];
	fill_pattern(w, sizeof(w), 1);
	const off_t second = 4 * MIB;
	const off_t size = second + (off_t)sizeof(w);
	CHECK(ck_pwrite_full(fd, w, sizeof(w), 0) == 0);
	CHECK(ck_pwrite_full(fd, w, sizeof(w), second) == 0);
	/* Before any writeback too (the kernel's cache holds the bytes; once the vfs answered
	 * ENXIO here: the data was past the size it knew). */
	off_t u0 = lseek(fd, 0, SEEK_DATA), uh = lseek(fd, 0, SEEK_HOLE);
	off_t u1 = lseek(fd, second - 1, SEEK_DATA), u2 = lseek(fd, second, SEEK_HOLE);
	if (u0 != 0 || uh < 4096 || uh > second - MIB || u1 != second || u2 != size)
		FAIL("unsynced: SEEK_DATA(0)=%ld SEEK_HOLE(0)=%ld SEEK_DATA(%ld)=%ld "
		     "SEEK_HOLE(%ld)=%ld; expected 0, 4096..%ld, %ld, %ld",
		     (long)u0, (long)uh, (long)(second - 1), (long)u1, (long)second, (long)u2,
		     (long)(second - MIB), (long)second, (long)size);
	CHECK_OK(fsync(fd)); /* some file systems only know extents after writeback */
	off_t d0 = lseek(fd, 0, SEEK_DATA);
	off_t h0 = lseek(fd, 0, SEEK_HOLE);
	off_t d1 = lseek(fd, h0 > 0 ? h0 : 1, SEEK_DATA);
	off_t h1 = lseek(fd, second, SEEK_HOLE);
	if (d0 != 0 || h0 < 4096 || h0 > second - MIB || d1 != second || h1 != size)
		FAIL("SEEK_DATA(0)=%ld SEEK_HOLE(0)=%ld SEEK_DATA(hole)=%ld SEEK_HOLE(%ld)=%ld; "
		     "expected 0, 4096..%ld, %ld, %ld",
		     (long)d0, (long)h0, (long)d1, (long)second, (long)h1, (long)(second - MIB),
		     (long)second, (long)size);
	/* In the hole, SEEK_HOLE is a no-op. */
	CHECK(lseek(fd, 2 * MIB, SEEK_HOLE) == 2 * MIB);
	CHECK(lseek(fd, 2 * MIB, SEEK_DATA) == second);
	/* At or past the end: ENXIO for both. */
	CHECK_ERR(lseek(fd, size, SEEK_DATA), ENXIO);
	CHECK_ERR(lseek(fd, size, SEEK_HOLE), ENXIO);
	CHECK_ERR(lseek(fd, size + 100, SEEK_DATA), ENXIO);
	CHECK_ERR(lseek(fd, -1, SEEK_DATA), ENXIO);
	/* The hole reads zeros. */
	static unsigned char r[MIB];
	CHECK(pread(fd, r, MIB, MIB) == MIB && all_zero(r, MIB));
	/* A file that is one hole: no data at all. */
	_cleanup_close_ int e = open("empty", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	CHECK(e >= 0);
	CHECK_OK(ftruncate(e, 2 * MIB));
	CHECK_ERR(lseek(e, 0, SEEK_DATA), ENXIO);
	CHECK(lseek(e, 0, SEEK_HOLE) == 0);
	return R_PASS;
}

static enum res t_statfs(void)
{
	struct statfs s;
	CHECK_OK(statfs(".", &s));
	if (s.f_bsize <= 0 || s.f_blocks == 0 || s.f_bfree > s.f_blocks || s.f_bavail > s.f_bfree ||
	    s.f_namelen < 255 || s.f_ffree > s.f_files)
		FAIL("statfs: bsize %ld blocks %lu bfree %lu bavail %lu files %lu ffree %lu namelen "
		     "%ld",
		     (long)s.f_bsize, (unsigned long)s.f_blocks, (unsigned long)s.f_bfree,
		     (unsigned long)s.f_bavail, (unsigned long)s.f_files, (unsigned long)s.f_ffree,
		     (long)s.f_namelen);
	struct statvfs v;
	_cleanup_close_ int fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_OK(fstatvfs(fd, &v));
	CHECK(v.f_frsize > 0 && v.f_blocks > 0 && v.f_bfree <= v.f_blocks);
	/* Writing 4 MiB does not raise the free count. */
	{
		_cleanup_close_ int f = open("f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		CHECK(f >= 0);
		static unsigned char w[4 * MIB];
		memset(w, 1, sizeof(w));
		CHECK(ck_write_full(f, w, sizeof(w)) == 0);
		CHECK_OK(fsync(f));
	}
	struct statfs s2;
	CHECK_OK(statfs(".", &s2));
	CHECK(s2.f_blocks > 0 && s2.f_bfree <= s2.f_blocks);
	return R_PASS;
}

static enum res t_chmod_chown(void)
{
	CHECK_OK(put_file("f", "x", 0644));
	struct stat st, before;
	CHECK_OK(stat("f", &before));
	CHECK_OK(chmod("f", 0640));
	CHECK_OK(stat("f", &st));
	CHECK((st.st_mode & 07777) == 0640 && S_ISREG(st.st_mode));
	CHECK(st.st_ctim.tv_sec >= before.st_ctim.tv_sec);
	_cleanup_close_ int fd = open("f", O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_OK(fchmod(fd, 04755));
	CHECK_OK(fstat(fd, &st));
	CHECK((st.st_mode & 07777) == 04755);
	CHECK_OK(mkdir("d", 0700));
	CHECK_OK(chmod("d", 01777));
	CHECK_OK(stat("d", &st));
	CHECK((st.st_mode & 07777) == 01777 && S_ISDIR(st.st_mode));
	/* chown to oneself, with -1 meaning "unchanged". */
	CHECK_OK(chown("f", geteuid(), getegid()));
	CHECK_OK(fchown(fd, (uid_t)-1, (gid_t)-1));
	CHECK_OK(fstat(fd, &st));
	CHECK(st.st_uid == geteuid() && st.st_gid == getegid());
	/* lchown changes the link, not its target. */
	CHECK_OK(symlink("f", "l"));
	CHECK_OK(lchown("l", geteuid(), getegid()));
	CHECK_OK(fchownat(AT_FDCWD, "l", (uid_t)-1, getegid(), AT_SYMLINK_NOFOLLOW));
	if (root_with_nobody()) {
		CHECK_OK(chown("f", NOBODY, NOBODY));
		CHECK_OK(stat("f", &st));
		CHECK(st.st_uid == NOBODY && st.st_gid == NOBODY);
		CHECK_OK(lchown("l", NOBODY, (gid_t)-1));
		CHECK_OK(lstat("l", &st));
		CHECK(st.st_uid == NOBODY);
		CHECK_OK(chown("f", 0, 0));
	} else if (geteuid() != 0) {
		/* EINVAL when uid 0 is not mapped in our user namespace. */
		CHECK_ERR2(chown("f", 0, (gid_t)-1), EPERM, EINVAL);
	}
	CHECK_ERR(chmod("missing", 0644), ENOENT);
	return R_PASS;
}

static enum res t_utimensat(void)
{
	CHECK_OK(put_file("f", "x", 0644));
	struct timespec ts[2] = { { 1000000000, 123456789 }, { 1200000000, 987654321 } };
	CHECK_OK(utimensat(AT_FDCWD, "f", ts, 0));
	struct stat st;
	CHECK_OK(stat("f", &st));
	if (!ts_eq(st.st_atim, 1000000000, 123456789) || !ts_eq(st.st_mtim, 1200000000, 987654321))
		FAIL("explicit times: atime %ld.%09ld mtime %ld.%09ld",
		     (long)st.st_atim.tv_sec, st.st_atim.tv_nsec, (long)st.st_mtim.tv_sec,
		     st.st_mtim.tv_nsec);
	/* UTIME_OMIT keeps atime, UTIME_NOW sets mtime to now. */
	struct timespec now0;
	clock_gettime(CLOCK_REALTIME, &now0);
	struct timespec t2[2] = { { 0, UTIME_OMIT }, { 0, UTIME_NOW } };
	CHECK_OK(utimensat(AT_FDCWD, "f", t2, 0));
	CHECK_OK(stat("f", &st));
	CHECK(ts_eq(st.st_atim, 1000000000, 123456789));
	if (st.st_mtim.tv_sec < now0.tv_sec - 2 || st.st_mtim.tv_sec > now0.tv_sec + 2)
		FAIL("UTIME_NOW: mtime %ld, now %ld", (long)st.st_mtim.tv_sec, (long)now0.tv_sec);
	/* futimens on an fd; NULL means both now. */
	_cleanup_close_ int fd = open("f", O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	struct timespec t3[2] = { { 5, 0 }, { 0, UTIME_OMIT } };
	CHECK_OK(futimens(fd, t3));
	CHECK_OK(fstat(fd, &st));
	CHECK(ts_eq(st.st_atim, 5, 0));
	CHECK(st.st_mtim.tv_sec >= now0.tv_sec - 2);
	CHECK_OK(futimens(fd, NULL));
	CHECK_OK(fstat(fd, &st));
	CHECK(st.st_atim.tv_sec >= now0.tv_sec - 2);
	/* On a symlink itself. */
	CHECK_OK(symlink("f", "l"));
	CHECK_OK(utimensat(AT_FDCWD, "l", ts, AT_SYMLINK_NOFOLLOW));
	CHECK_OK(lstat("l", &st));
	CHECK(ts_eq(st.st_mtim, 1200000000, 987654321));
	CHECK_OK(stat("f", &st));
	CHECK(!ts_eq(st.st_mtim, 1200000000, 987654321));
	/* Writing updates mtime and ctime. */
	CHECK_OK(utimensat(AT_FDCWD, "f", ts, 0));
	_cleanup_close_ int w = open("f", O_WRONLY | O_CLOEXEC);
	CHECK(w >= 0);
	CHECK(write(w, "y", 1) == 1);
	CHECK_OK(fstat(w, &st));
	CHECK(st.st_mtim.tv_sec >= now0.tv_sec - 2);
	CHECK_ERR(utimensat(AT_FDCWD, "missing", NULL, 0), ENOENT);
	return R_PASS;
}

static enum res t_ino_stable(void)
{
	struct stat a, b;
	CHECK_OK(put_file("f", "x", 0644));
	CHECK_OK(stat("f", &a));
	CHECK_OK(mkdir("d", 0755));
	CHECK_OK(rename("f", "d/g"));
	CHECK_OK(stat("d/g", &b));
	CHECK(a.st_ino == b.st_ino);
	struct stat da, db;
	CHECK_OK(stat("d", &da));
	CHECK_OK(mkdir("e", 0755));
	CHECK_OK(rename("d", "e/d2"));
	CHECK_OK(stat("e/d2", &db));
	CHECK(da.st_ino == db.st_ino);
	CHECK_OK(stat("e/d2/g", &b));
	CHECK(a.st_ino == b.st_ino);
	/* fstat and stat agree; distinct files differ. */
	_cleanup_close_ int fd = open("e/d2/g", O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_OK(fstat(fd, &b));
	CHECK(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
	CHECK_OK(put_file("h", "y", 0644));
	CHECK_OK(stat("h", &b));
	CHECK(a.st_ino != b.st_ino);
	/* Unlinking an open file does not change its st_ino. */
	CHECK_OK(unlink("e/d2/g"));
	CHECK_OK(fstat(fd, &b));
	CHECK(a.st_ino == b.st_ino);
	return R_PASS;
}

#define NDIRENT 1000

/* Read the rest of @d into @names (up to @max), skipping "." and ".."; count or -1. */
static int read_names(DIR *d, char (*names)[16], int max)
{
	int n = 0;
	struct dirent *e;
	errno = 0;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (n >= max)
			return -1;
		snprintf(names[n++], 16, "%.15s", e->d_name);
	}
	return errno ? -1 : n;
}

static enum res t_readdir(void)
{
	CHECK_OK(mkdir("d", 0755));
	for (int i = 0; i < NDIRENT; i++) {
		char name[32];
		snprintf(name, sizeof(name), "d/f%04d", i);
		_cleanup_close_ int fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		CHECK(fd >= 0);
	}
	DIR *d = opendir("d");
	CHECK(d != NULL);
	static bool seen[NDIRENT];
	int n = 0, dots = 0;
	struct dirent *e;
	errno = 0;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) {
			dots++;
			continue;
		}
		int i;
		char extra;
		if (sscanf(e->d_name, "f%4d%c", &i, &extra) != 1 || i < 0 || i >= NDIRENT ||
		    seen[i]) {
			closedir(d);
			FAIL("unexpected or duplicate entry '%s'", e->d_name);
		}
		if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN) {
			closedir(d);
			FAIL("entry '%s' has d_type %d", e->d_name, e->d_type);
		}
		seen[i] = true;
		n++;
	}
	int err = errno;
	if (err || n != NDIRENT || dots != 2) {
		closedir(d);
		FAIL("readdir: %d entries + %d dots, expected %d + 2 [errno %s]", n, dots, NDIRENT,
		     ename(err));
	}
	/* telldir in the middle, read to the end, seekdir back: the same rest again. */
	rewinddir(d);
	static char rest1[NDIRENT + 2][16], rest2[NDIRENT + 2][16];
	long pos = -1;
	for (int k = 0; k < 337; k++)
		if (!readdir(d))
			break;
	pos = telldir(d);
	int n1 = read_names(d, rest1, NDIRENT + 2);
	seekdir(d, pos);
	int n2 = read_names(d, rest2, NDIRENT + 2);
	rewinddir(d);
	static char all[NDIRENT + 2][16];
	int nall = read_names(d, all, NDIRENT + 2);
	closedir(d);
	if (pos < 0 || n1 < 0 || n1 != n2 || n1 < NDIRENT - 337)
		FAIL("telldir %ld: %d entries after it, %d after seekdir", pos, n1, n2);
	for (int i = 0; i < n1; i++)
		if (strcmp(rest1[i], rest2[i]) != 0)
			FAIL("after seekdir entry %d is '%s', was '%s'", i, rest2[i], rest1[i]);
	CHECK(nall == NDIRENT);
	/* Deleting everything leaves an empty, removable directory. */
	for (int i = 0; i < NDIRENT; i++) {
		char name[32];
		snprintf(name, sizeof(name), "d/f%04d", i);
		CHECK_OK(unlink(name));
	}
	d = opendir("d");
	CHECK(d != NULL);
	int left = read_names(d, all, NDIRENT + 2);
	closedir(d);
	CHECK(left == 0);
	CHECK_OK(rmdir("d"));
	return R_PASS;
}

static enum res t_mkdir_rmdir(void)
{
	CHECK_OK(mkdir("d", 0755));
	struct stat st;
	CHECK_OK(stat("d", &st));
	CHECK(S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0755);
	CHECK_ERR(mkdir("d", 0755), EEXIST);
	CHECK_OK(put_file("d/f", "x", 0644));
	CHECK_ERR2(rmdir("d"), ENOTEMPTY, EEXIST);
	CHECK_ERR(rmdir("d/f"), ENOTDIR);
	CHECK_ERR(unlink("d"), EISDIR);
	CHECK_ERR(rmdir("d/."), EINVAL);
	CHECK_ERR(mkdir("missing/x", 0755), ENOENT);
	CHECK_ERR(mkdir("d/f/x", 0755), ENOTDIR);
	CHECK_OK(unlink("d/f"));
	CHECK_OK(mkdir("d/sub", 0755));
	CHECK_ERR2(rmdir("d"), ENOTEMPTY, EEXIST);
	CHECK_OK(rmdir("d/sub"));
	CHECK_OK(rmdir("d"));
	CHECK_ERR(stat("d", &st), ENOENT);
	/* A removed cwd: getdents on it returns nothing, creating in it fails. */
	CHECK_OK(mkdir("gone", 0755));
	_cleanup_close_ int fd = open("gone", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_OK(rmdir("gone"));
	CHECK_ERR(openat(fd, "x", O_CREAT | O_WRONLY | O_CLOEXEC, 0644), ENOENT);
	return R_PASS;
}

static enum res sticky_child(void *p)
{
	(void)p;
	if (!become_nobody()) {
		set_detail("cannot become uid %d [errno %s]", NOBODY, ename(errno));
		return R_SKIP;
	}
	if (access("s", W_OK | X_OK) != 0)
		FAIL("uid %d cannot write the 1777 dir [errno %s] (FUSE mount without "
		     "allow_other?)",
		     NOBODY, ename(errno));
	CHECK_ERR(unlink("s/rootfile"), EPERM);
	CHECK_ERR(rename("s/rootfile", "s/mine"), EPERM);
	CHECK_ERR(rmdir("s/rootdir"), EPERM);
	/* Replacing someone else's file by rename is refused too. */
	CHECK_OK(put_file("s/mine", "m", 0644));
	CHECK_ERR(rename("s/mine", "s/rootfile"), EPERM);
	/* One's own files in a sticky directory are fine. */
	CHECK_OK(rename("s/mine", "s/mine2"));
	CHECK_OK(unlink("s/mine2"));
	/* Writing to a world-writable root-owned file in the dir is allowed (not a delete). */
	_cleanup_close_ int fd = open("s/rootfile", O_WRONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	return R_PASS;
}

static enum res t_sticky(void)
{
	if (!root_with_nobody()) {
		set_detail(geteuid() ? "not root" : "uid 65534 not mapped in this user namespace");
		return R_SKIP;
	}
	CHECK_OK(chmod(".", 0755));
	CHECK_OK(mkdir("s", 0755));
	CHECK_OK(chmod("s", 01777));
	CHECK_OK(put_file("s/rootfile", "r", 0666));
	CHECK_OK(chmod("s/rootfile", 0666));
	CHECK_OK(mkdir("s/rootdir", 0755));
	enum res r = run_child(sticky_child, NULL);
	if (r != R_PASS)
		return r;
	CHECK_OK(access("s/rootfile", F_OK));
	/* Root may delete anything. */
	CHECK_OK(unlink("s/rootfile"));
	return R_PASS;
}

static enum res t_o_tmpfile(void)
{
	_cleanup_close_ int fd = open(".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EOPNOTSUPP) {
			set_detail("EOPNOTSUPP (callers fall back)");
			return R_PASS;
		}
		FAIL("O_TMPFILE: %s, expected success or EOPNOTSUPP", ename(errno));
	}
	CHECK(write(fd, "anon", 4) == 4);
	struct stat st;
	CHECK_OK(fstat(fd, &st));
	CHECK(st.st_nlink == 0 && S_ISREG(st.st_mode));
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	CHECK_OK(linkat(AT_FDCWD, path, AT_FDCWD, "named", AT_SYMLINK_FOLLOW));
	char buf[8];
	CHECK(get_file("named", buf, sizeof(buf)) == 4 && memcmp(buf, "anon", 4) == 0);
	set_detail("works");
	return R_PASS;
}

static enum res t_o_direct(void)
{
	_cleanup_close_ int fd = open("f", O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	_cleanup_free_ void *buf = NULL;
	CHECK(posix_memalign(&buf, 4096, 8192) == 0);
	fill_pattern(buf, 8192, 9);
	CHECK(pwrite(fd, buf, 8192, 0) == 8192);
	_cleanup_free_ void *rbuf = NULL;
	CHECK(posix_memalign(&rbuf, 4096, 8192) == 0);
	CHECK(pread(fd, rbuf, 8192, 0) == 8192);
	CHECK(memcmp(buf, rbuf, 8192) == 0);
	/* A buffered reader sees what went around the cache. */
	_cleanup_close_ int b = open("f", O_RDONLY | O_CLOEXEC);
	CHECK(b >= 0);
	unsigned char r[8192];
	CHECK(pread(b, r, 8192, 0) == 8192 && memcmp(r, buf, 8192) == 0);
	return R_PASS;
}

static enum res t_large_file(void)
{
	_cleanup_close_ int fd = open("f", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	const off_t off = 5 * GIB;
	CHECK(pwrite(fd, "far away", 8, off) == 8);
	struct stat st;
	CHECK_OK(fstat(fd, &st));
	CHECK(st.st_size == off + 8);
	char buf[16] = { 0 };
	CHECK(pread(fd, buf, 8, off) == 8 && memcmp(buf, "far away", 8) == 0);
	/* Across the 4 GiB line. */
	CHECK(pwrite(fd, "edge", 4, 4 * GIB - 2) == 4);
	CHECK(pread(fd, buf, 4, 4 * GIB - 2) == 4 && memcmp(buf, "edge", 4) == 0);
	static unsigned char r[65536];
	CHECK(pread(fd, r, sizeof(r), 3 * GIB) == (ssize_t)sizeof(r) && all_zero(r, sizeof(r)));
	CHECK(lseek(fd, off, SEEK_SET) == off);
	CHECK(read(fd, buf, 16) == 8);
	/* Sparse: far less than 5 GiB allocated. */
	CHECK(st.st_blocks * 512L < GIB);
	CHECK_OK(ftruncate(fd, 4 * GIB + 1));
	CHECK(pread(fd, buf, 4, 4 * GIB - 2) == 3 && memcmp(buf, "edg", 3) == 0);
	return R_PASS;
}

static enum res t_enametoolong(void)
{
	char n255[256], n256[257];
	memset(n255, 'a', 255);
	n255[255] = 0;
	memset(n256, 'b', 256);
	n256[256] = 0;
	_cleanup_close_ int fd = open(n255, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	struct stat st;
	CHECK_OK(stat(n255, &st));
	CHECK_ERR(open(n256, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), ENAMETOOLONG);
	CHECK_ERR(stat(n256, &st), ENAMETOOLONG);
	CHECK_ERR(mkdir(n256, 0755), ENAMETOOLONG);
	CHECK_ERR(symlink("x", n256), ENAMETOOLONG);
	CHECK_ERR(link(n255, n256), ENAMETOOLONG);
	CHECK_ERR(rename(n255, n256), ENAMETOOLONG);
	CHECK_ERR(mkfifo(n256, 0644), ENAMETOOLONG);
	CHECK_OK(access(n255, F_OK));
	/* 255 works for every kind of entry. */
	CHECK_OK(unlink(n255));
	CHECK_OK(mkdir(n255, 0755));
	CHECK_OK(rmdir(n255));
	CHECK_OK(symlink("x", n255));
	CHECK_OK(unlink(n255));
	return R_PASS;
}

/* The checks a non-root caller sees on its own 0000 file and on root's files. */
static enum res nonroot_access(void *p)
{
	bool drop = p != NULL;
	if (drop && !become_nobody()) {
		set_detail("cannot become uid %d [errno %s]", NOBODY, ename(errno));
		return R_SKIP;
	}
	_cleanup_close_ int c = open("mine", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
	if (c < 0 && drop)
		FAIL("uid %d cannot create in a 0777 dir [errno %s] (FUSE mount without "
		     "allow_other?)",
		     NOBODY, ename(errno));
	CHECK(c >= 0); /* creating with mode 0 still returns a writable fd */
	CHECK(write(c, "x", 1) == 1);
	struct stat st;
	CHECK_OK(stat("mine", &st));
	CHECK((st.st_mode & 07777) == 0 && st.st_uid == geteuid());
	CHECK_ERR(open("mine", O_RDONLY | O_CLOEXEC), EACCES);
	CHECK_ERR(open("mine", O_WRONLY | O_CLOEXEC), EACCES);
	CHECK_ERR(truncate("mine", 0), EACCES);
	CHECK_ERR(access("mine", R_OK), EACCES);
	CHECK_ERR(access("mine", W_OK), EACCES);
	CHECK_ERR(access("mine", X_OK), EACCES);
	CHECK_OK(access("mine", F_OK));
	/* The owner may still chmod. */
	CHECK_OK(chmod("mine", 0400));
	_cleanup_close_ int r = open("mine", O_RDONLY | O_CLOEXEC);
	CHECK(r >= 0);
	CHECK_OK(access("mine", R_OK));
	CHECK_ERR(access("mine", W_OK), EACCES);
	CHECK_ERR(open("mine", O_RDWR | O_CLOEXEC), EACCES);
	if (drop) {
		/* Root's files: 0000 unreadable, 0644 readable not writable, chmod refused. */
		CHECK_ERR(open("root0000", O_RDONLY | O_CLOEXEC), EACCES);
		_cleanup_close_ int rr = open("root0644", O_RDONLY | O_CLOEXEC);
		CHECK(rr >= 0);
		CHECK_ERR(open("root0644", O_WRONLY | O_CLOEXEC), EACCES);
		CHECK_ERR(chmod("root0644", 0666), EPERM);
		/* A 0700 directory of root's cannot be listed or entered. */
		CHECK_ERR(open("rootdir/x", O_RDONLY | O_CLOEXEC), EACCES);
		CHECK_ERR(open("rootdir", O_RDONLY | O_DIRECTORY | O_CLOEXEC), EACCES);
	}
	return R_PASS;
}

static enum res t_access_0000(void)
{
	if (geteuid() != 0)
		return nonroot_access(NULL);
	if (!root_with_nobody()) {
		set_detail("uid 65534 not mapped in this user namespace");
		return R_SKIP;
	}
	/* Root: read/write despite mode 0000, but no exec without any x bit. */
	CHECK_OK(put_file("root0000", "secret", 0));
	CHECK_OK(chmod("root0000", 0));
	CHECK_OK(access("root0000", R_OK | W_OK));
	CHECK_ERR(access("root0000", X_OK), EACCES);
	_cleanup_close_ int fd = open("root0000", O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_OK(put_file("root0644", "public", 0644));
	CHECK_OK(mkdir("rootdir", 0700));
	CHECK_OK(put_file("rootdir/x", "x", 0644));
	CHECK_OK(chmod(".", 0777));
	return run_child(nonroot_access, (void *)1);
}

/* ---- runner ----------------------------------------------------------------------------- */

struct tcase {
	const char *name;
	enum res (*fn)(void);
};

static const struct tcase cases[] = {
	{ "excl_create", t_excl_create },
	{ "mkstemp", t_mkstemp },
	{ "rw_pread_pwrite", t_rw_basic },
	{ "o_append", t_append },
	{ "truncate", t_truncate },
	{ "unlink_open", t_unlink_open },
	{ "rename_file", t_rename_file },
	{ "rename_dir", t_rename_dir },
	{ "rename_noreplace", t_rename_noreplace },
	{ "rename_exchange", t_rename_exchange },
	{ "link_counts", t_link_counts },
	{ "symlink", t_symlink },
	{ "fifo", t_fifo },
	{ "unix_socket", t_unix_socket },
	{ "mmap_shared", t_mmap_shared },
	{ "msync", t_msync },
	{ "flock", t_flock },
	{ "fcntl_lock", t_fcntl_lock },
	{ "ofd_lock", t_ofd_lock },
	{ "fallocate", t_fallocate },
	{ "seek_data_hole", t_seek_hole },
	{ "statfs", t_statfs },
	{ "chmod_chown", t_chmod_chown },
	{ "utimensat", t_utimensat },
	{ "ino_stable", t_ino_stable },
	{ "readdir_1000", t_readdir },
	{ "mkdir_rmdir", t_mkdir_rmdir },
	{ "sticky_dir", t_sticky },
	{ "o_tmpfile", t_o_tmpfile },
	{ "o_direct", t_o_direct },
	{ "large_file", t_large_file },
	{ "enametoolong", t_enametoolong },
	{ "access_0000", t_access_0000 },
};

static bool wanted(const char *name, int argc, char **argv)
{
	if (argc <= 2)
		return true;
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], name))
			return true;
	return false;
}

/* Run one case in a child chdir'ed into @work/NAME, with a time limit. */
static enum res run_case(const struct tcase *c, const char *work)
{
	char dir[4096];
	if (snprintf(dir, sizeof(dir), "%s/%s", work, c->name) >= (int)sizeof(dir))
		FAIL("path too long");
	if (mkdir(dir, 0755) < 0 || chmod(dir, 0755) < 0)
		FAIL("mkdir %s: %s", dir, ename(errno));
	detail[0] = 0;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		FAIL("fork: %s", ename(errno));
	if (pid == 0) {
		unsigned limit = 60;
		const char *t = getenv("FSCONFORM_TIMEOUT");
		if (t && atoi(t) > 0)
			limit = (unsigned)atoi(t);
		alarm(limit);
		if (chdir(dir) < 0) {
			set_detail("chdir %s: %s", dir, ename(errno));
			_exit(R_FAIL);
		}
		_exit(c->fn());
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			FAIL("waitpid: %s", ename(errno));
	if (WIFSIGNALED(st)) {
		if (WTERMSIG(st) == SIGALRM)
			FAIL("timed out (%s)", detail[0] ? detail : "no detail");
		FAIL("killed by signal %s", sigabbrev_np(WTERMSIG(st)));
	}
	if (WEXITSTATUS(st) > R_SKIP)
		FAIL("exited %d %s", WEXITSTATUS(st), detail);
	return (enum res)WEXITSTATUS(st);
}

int main(int argc, char **argv)
{
	if (argc < 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: fsconform DIR [CASE...]\ncases:");
		for (size_t i = 0; i < CK_ARRAY_SIZE(cases); i++)
			fprintf(stderr, " %s", cases[i].name);
		fputc('\n', stderr);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	umask(022);
	detail = mmap(NULL, DETAIL_MAX, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (detail == MAP_FAILED) {
		perror("fsconform: mmap");
		return 2;
	}
	char work[4096];
	snprintf(work, sizeof(work), "%s/fsconform.XXXXXX", argv[1]);
	if (!mkdtemp(work) || chmod(work, 0755) < 0) {
		fprintf(stderr, "fsconform: cannot create a directory in %s: %m\n", argv[1]);
		return 2;
	}
	struct statfs sf;
	if (statfs(work, &sf) == 0)
		printf("# fsconform in %s (f_type 0x%lx), euid %d\n", work, (unsigned long)sf.f_type,
		       (int)geteuid());

	int passed = 0, failed = 0, skipped = 0;
	for (size_t i = 0; i < CK_ARRAY_SIZE(cases); i++) {
		if (!wanted(cases[i].name, argc, argv))
			continue;
		enum res r = run_case(&cases[i], work);
		if (r == R_PASS) {
			passed++;
			if (detail[0])
				printf("ok %s # %s\n", cases[i].name, detail);
			else
				printf("ok %s\n", cases[i].name);
		} else if (r == R_SKIP) {
			skipped++;
			printf("ok %s # SKIP %s\n", cases[i].name, detail);
		} else {
			failed++;
			printf("not ok %s: %s\n", cases[i].name, detail);
		}
	}
	const char *keep = getenv("FSCONFORM_KEEP");
	if (keep && *keep && strcmp(keep, "0") != 0)
		printf("# work directory kept: %s\n", work);
	else
		ck_rm_rf_at(AT_FDCWD, work);
	if (skipped)
		printf("# %d skipped\n", skipped);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
