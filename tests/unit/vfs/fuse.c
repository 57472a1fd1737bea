/* The FUSE layer over a real mount: namespace and data operations as a job's /tmp sees them. */
#include "../check-main.h"
#include <dirent.h>
#include <linux/falloc.h>
#include <poll.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <time.h>

#include "fuse_fixture.h"

/* Run @fn in a grandchild (optionally as @uid) and return its exit code. */
static int in_child(uid_t uid, int (*fn)(void))
{
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		if (uid && (setresgid(uid, uid, uid) || setresuid(uid, uid, uid)))
			_exit(99);
		_exit(fn());
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 98;
}

FX_TEST(create_excl)
{
	int fd = open(mp("a"), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK(open(mp("a"), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600) < 0 && errno == EEXIST);
	CHECK(write(fd, "hello world", 11) == 11);
	char buf[16] = {0};
	CHECK(pread(fd, buf, sizeof(buf), 0) == 11 && memcmp(buf, "hello world", 11) == 0);
	struct stat st;
	CHECK(fstat(fd, &st) == 0 && st.st_size == 11 && (st.st_mode & 07777) == 0600);
	CHECK(st.st_uid == 0 && S_ISREG(st.st_mode));
	CHECK(close(fd) == 0);
	CHECK(has_content(mp("a"), "hello world"));

	/* O_APPEND: the kernel picks the offset (writeback cache). */
	fd = open(mp("a"), O_WRONLY | O_APPEND | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(lseek(fd, 0, SEEK_SET) == 0 && write(fd, "!", 1) == 1);
	close(fd);
	CHECK(has_content(mp("a"), "hello world!"));
	/* O_TRUNC on open. */
	fd = open(mp("a"), O_WRONLY | O_TRUNC | O_CLOEXEC);
	CHECK(fd >= 0 && fstat(fd, &st) == 0 && st.st_size == 0);
	close(fd);
	CHECK(stat(mp("a"), &st) == 0 && st.st_size == 0);
	/* O_TMPFILE is not there with libfuse 3.14. */
	CHECK(open(fx_mnt, O_TMPFILE | O_RDWR, 0600) < 0 && errno == EOPNOTSUPP);
	/* Negative lookups, then the name appears. */
	CHECK(stat(mp("later"), &st) < 0 && errno == ENOENT);
	write_str(mp("later"), "x");
	CHECK(stat(mp("later"), &st) == 0 && st.st_size == 1);
	/* Large write and read back, across chunk boundaries. */
	size_t big = 3 * 1024 * 1024 + 123;
	char *p = malloc(big), *q = malloc(big);
	CHECK(p && q);
	for (size_t i = 0; i < big; i++)
		p[i] = (char)(i * 7 + i / 4096);
	fd = open(mp("big"), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0 && ck_pwrite_full(fd, p, big, 0) == 0);
	close(fd);
	fd = open(mp("big"), O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0 && ck_pread_full(fd, q, big, 0) == (ssize_t)big && memcmp(p, q, big) == 0);
	close(fd);
	free(p);
	free(q);
}

FX_TEST(rename_flags)
{
	write_str(mp("a"), "A");
	write_str(mp("b"), "B");
	CHECK(renameat2(AT_FDCWD, mp("a"), AT_FDCWD, mp("b"), RENAME_NOREPLACE) < 0 &&
	      errno == EEXIST);
	CHECK(renameat2(AT_FDCWD, mp("a"), AT_FDCWD, mp("b"), RENAME_EXCHANGE) == 0);
	CHECK(has_content(mp("a"), "B") && has_content(mp("b"), "A"));
	CHECK(renameat2(AT_FDCWD, mp("a"), AT_FDCWD, mp("c"), RENAME_NOREPLACE) == 0);
	CHECK(access(mp("a"), F_OK) < 0 && has_content(mp("c"), "B"));
	CHECK(rename(mp("c"), mp("b")) == 0 && has_content(mp("b"), "B"));
	CHECK(renameat2(AT_FDCWD, mp("b"), AT_FDCWD, mp("d"), RENAME_WHITEOUT) < 0 &&
	      errno == EINVAL);
	CHECK(mkdir(mp("dir"), 0755) == 0 && mkdir(mp("dir/sub"), 0755) == 0);
	CHECK(rename(mp("dir"), mp("dir/sub/x")) < 0 && errno == EINVAL);
	CHECK(rename(mp("b"), mp("dir/sub/b")) == 0 && has_content(mp("dir/sub/b"), "B"));
	CHECK(rmdir(mp("dir")) < 0 && errno == ENOTEMPTY);
	/* The hidden directory cannot be taken over. */
	CHECK(mkdir(mp(".ckptenv"), 0755) < 0 && errno == EEXIST);
	CHECK(rename(mp("dir"), mp(".ckptenv")) < 0);
}

FX_TEST(links)
{
	struct stat st;
	write_str(mp("a"), "data");
	CHECK(link(mp("a"), mp("b")) == 0);
	CHECK(stat(mp("a"), &st) == 0 && st.st_nlink == 2);
	ino_t ino = st.st_ino;
	CHECK(stat(mp("b"), &st) == 0 && st.st_ino == ino && st.st_nlink == 2);
	CHECK(unlink(mp("a")) == 0);
	CHECK(stat(mp("b"), &st) == 0 && st.st_nlink == 1 && has_content(mp("b"), "data"));
	CHECK(mkdir(mp("d"), 0755) == 0 && link(mp("d"), mp("d2")) < 0 && errno == EPERM);
	CHECK(stat(mp("d"), &st) == 0 && st.st_nlink == 2);
	CHECK(mkdir(mp("d/e"), 0755) == 0 && stat(mp("d"), &st) == 0 && st.st_nlink == 3);

	CHECK(symlink("b", mp("s")) == 0);
	char buf[64] = {0};
	CHECK(readlink(mp("s"), buf, sizeof(buf)) == 1 && buf[0] == 'b');
	CHECK(lstat(mp("s"), &st) == 0 && S_ISLNK(st.st_mode) && st.st_size == 1);
	CHECK(has_content(mp("s"), "data"));
	CHECK(symlink("/nonexistent/target", mp("dangling")) == 0);
	CHECK(stat(mp("dangling"), &st) < 0 && errno == ENOENT);
	CHECK(unlink(mp("s")) == 0 && lstat(mp("s"), &st) < 0);
}

FX_TEST(special_files)
{
	struct stat st;
	/* FIFO */
	CHECK(mkfifo(mp("fifo"), 0600) == 0);
	CHECK(stat(mp("fifo"), &st) == 0 && S_ISFIFO(st.st_mode));
	int fd = open(mp("fifo"), O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	char c = 0;
	CHECK(write(fd, "f", 1) == 1 && read(fd, &c, 1) == 1 && c == 'f');
	close(fd);
	/* A unix socket bound in the mount; connect and exchange a byte. */
	int srv = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	CHECK(strlen(mp("sock")) < sizeof(sa.sun_path));
	strcpy(sa.sun_path, mp("sock"));
	CHECK(bind(srv, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(srv, 1) == 0);
	CHECK(stat(mp("sock"), &st) == 0 && S_ISSOCK(st.st_mode));
	CHECK(chmod(mp("sock"), 0700) == 0);
	int cl = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(connect(cl, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	int acc = accept4(srv, NULL, NULL, SOCK_CLOEXEC);
	CHECK(acc >= 0 && write(cl, "s", 1) == 1 && read(acc, &c, 1) == 1 && c == 's');
	close(acc);
	close(cl);
	close(srv);
	CHECK(unlink(mp("sock")) == 0);
	/* A device node (mounted nodev: it can exist, not be opened). */
	CHECK(mknod(mp("null"), S_IFCHR | 0666, makedev(1, 3)) == 0);
	CHECK(stat(mp("null"), &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3));
	CHECK(open(mp("null"), O_RDONLY | O_CLOEXEC) < 0 && errno == EACCES);
}

static char lockpath[PATH_MAX];

static int try_flock(void)
{
	int fd = open(lockpath, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 2;
	return flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK ? 0 : 1;
}

static int try_fcntl(void)
{
	int fd = open(lockpath, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 2;
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
	if (fcntl(fd, F_SETLK, &fl) == 0 || (errno != EAGAIN && errno != EACCES))
		return 1;
	fl.l_type = F_WRLCK;
	if (fcntl(fd, F_GETLK, &fl) < 0 || fl.l_type != F_WRLCK || fl.l_pid != getppid())
		return 3;
	fl = (struct flock){.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 100, .l_len = 1};
	return fcntl(fd, F_SETLK, &fl) == 0 ? 0 : 4;
}

FX_TEST(locks)
{
	snprintf(lockpath, sizeof(lockpath), "%s", mp("lock"));
	write_str(lockpath, "0123456789");
	int fd = open(lockpath, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0 && flock(fd, LOCK_EX) == 0);
	CHECK(in_child(0, try_flock) == 0);
	CHECK(flock(fd, LOCK_UN) == 0);
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
	CHECK(fcntl(fd, F_SETLK, &fl) == 0);
	CHECK(in_child(0, try_fcntl) == 0);
	close(fd);
}

FX_TEST(fallocate_seek)
{
	int fd = open(mp("sparse"), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	char buf[4096];
	memset(buf, 'x', sizeof(buf));
	const off_t far = 1024 * 1024;
	CHECK(pwrite(fd, buf, sizeof(buf), 0) == 4096 && pwrite(fd, buf, sizeof(buf), far) == 4096);
	CHECK(fsync(fd) == 0);
	CHECK(lseek(fd, 0, SEEK_DATA) == 0);
	off_t hole = lseek(fd, 0, SEEK_HOLE);
	CHECK(hole >= 4096 && hole <= far);
	CHECK(lseek(fd, hole, SEEK_DATA) == far);
	CHECK(lseek(fd, far + 4096, SEEK_DATA) < 0 && errno == ENXIO);
	CHECK(lseek(fd, far, SEEK_HOLE) == far + 4096);

	struct stat st;
	CHECK(fallocate(fd, 0, 0, 4 * far) == 0);
	CHECK(fstat(fd, &st) == 0 && st.st_size == 4 * far);
	CHECK(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 8 * far) == 0);
	CHECK(fstat(fd, &st) == 0 && st.st_size == 4 * far);
	CHECK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 65536) == 0);
	char z[4096];
	CHECK(pread(fd, z, sizeof(z), 0) == 4096);
	for (size_t i = 0; i < sizeof(z); i++)
		CHECK(z[i] == 0);
	CHECK(pread(fd, z, sizeof(z), far) == 4096 && z[0] == 'x');
	close(fd);

	/* Mode 0 allocates what it promises (it reserved nothing: st_blocks stayed 0 and the
	 * ENOSPC came at a later write's close), and more than the free space is refused with
	 * nothing allocated on the host (ext4 would fill its disk first). */
	fd = open(mp("prealloc"), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	CHECK(fallocate(fd, 0, 0, 4 * far) == 0);
	CHECK(fstat(fd, &st) == 0 && st.st_size == 4 * far && st.st_blocks >= 4 * far / 512);
	CHECK(pread(fd, z, sizeof(z), 3 * far) == 4096 && z[0] == 0 && z[4095] == 0);
	struct statvfs host;
	CHECK(statvfs(fx_store, &host) == 0);
	uint64_t free_b = (uint64_t)host.f_bavail * host.f_frsize;
	if (2 * free_b < (1ull << 42)) { /* within the store's largest file */
		CHECK(fallocate(fd, 0, 0, (off_t)(2 * free_b)) < 0 && errno == ENOSPC);
		CHECK(fstat(fd, &st) == 0 && st.st_size == 4 * far &&
		      st.st_blocks == 4 * far / 512);
		CHECK(statvfs(fx_store, &host) == 0);
		CHECK((uint64_t)host.f_bavail * host.f_frsize + (64u << 20) > free_b);
	}
	close(fd);

	/* copy_file_range goes through the store. */
	int in = open(mp("sparse"), O_RDONLY | O_CLOEXEC);
	int out = open(mp("copy"), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	CHECK(in >= 0 && out >= 0);
	loff_t oi = far, oo = 0;
	CHECK(copy_file_range(in, &oi, out, &oo, 4096, 0) == 4096);
	CHECK(pread(out, z, sizeof(z), 0) == 4096 && memcmp(z, buf, sizeof(z)) == 0);
	close(in);
	close(out);
}

FX_TEST(statfs_attrs)
{
	struct statvfs sv;
	CHECK(statvfs(fx_mnt, &sv) == 0 && sv.f_bsize > 0 && sv.f_blocks > 0);
	CHECK(sv.f_namemax == 0 || sv.f_namemax >= 255);

	struct stat st;
	write_str(mp("f"), "abc");
	CHECK(chmod(mp("f"), 0640) == 0 && stat(mp("f"), &st) == 0 && (st.st_mode & 07777) == 0640);
	CHECK(chown(mp("f"), 1000, 1001) == 0);
	CHECK(stat(mp("f"), &st) == 0 && st.st_uid == 1000 && st.st_gid == 1001);
	struct timespec ts[2] = {{.tv_sec = 1000000000, .tv_nsec = 5},
				 {.tv_sec = 1200000000, .tv_nsec = 7}};
	CHECK(utimensat(AT_FDCWD, mp("f"), ts, 0) == 0);
	CHECK(stat(mp("f"), &st) == 0 && st.st_atim.tv_sec == 1000000000 &&
	      st.st_mtim.tv_sec == 1200000000 && st.st_mtim.tv_nsec == 7);
	struct timespec now[2] = {{.tv_nsec = UTIME_NOW}, {.tv_nsec = UTIME_OMIT}};
	time_t t0 = time(NULL);
	CHECK(utimensat(AT_FDCWD, mp("f"), now, 0) == 0);
	CHECK(stat(mp("f"), &st) == 0 && st.st_atim.tv_sec >= t0 &&
	      st.st_mtim.tv_sec == 1200000000);
	CHECK(truncate(mp("f"), 1) == 0 && stat(mp("f"), &st) == 0 && st.st_size == 1);
	CHECK(truncate(mp("f"), 100000) == 0 && stat(mp("f"), &st) == 0 && st.st_size == 100000);
	/* Owner and group of new files; sgid directories pass their group on. */
	CHECK(mkdir(mp("g"), 02775) == 0 && chown(mp("g"), 0, 1234) == 0);
	CHECK(chmod(mp("g"), 02775) == 0);
	write_str(mp("g/f"), "x");
	CHECK(stat(mp("g/f"), &st) == 0 && st.st_gid == 1234 && st.st_uid == 0);
	CHECK(mkdir(mp("g/d"), 0755) == 0 && stat(mp("g/d"), &st) == 0 && st.st_gid == 1234 &&
	      (st.st_mode & S_ISGID));
	/* umask applies. */
	mode_t old = umask(027);
	write_str(mp("um"), "x");
	umask(old);
	CHECK(stat(mp("um"), &st) == 0 && (st.st_mode & 0777) == 0640);
	/* No xattrs: ENOSYS from the daemon, reported as EOPNOTSUPP. */
	char v[8];
	CHECK(getxattr(mp("f"), "user.x", v, sizeof(v)) < 0 && errno == EOPNOTSUPP);
}

static char sticky_dir[PATH_MAX];

static int other_user_unlink(void)
{
	char p[PATH_MAX + 16];
	snprintf(p, sizeof(p), "%s/roots", sticky_dir);
	if (unlink(p) == 0 || errno != EPERM)
		return 1;
	snprintf(p, sizeof(p), "%s/mine", sticky_dir);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return 2;
	close(fd);
	struct stat st;
	if (stat(p, &st) < 0 || st.st_uid != 1000)
		return 3;
	if (unlink(p) < 0)
		return 4;
	/* The by-inode directory is for root and the owner only. */
	snprintf(p, sizeof(p), "%s/roots", sticky_dir);
	if (stat(p, &st) < 0)
		return 5;
	snprintf(p, sizeof(p), "%s/.ckptenv/ino/%llu", fx_mnt, (unsigned long long)st.st_ino);
	return open(p, O_RDONLY | O_CLOEXEC) < 0 && errno == EACCES ? 0 : 6;
}

FX_TEST(sticky_dir)
{
	snprintf(sticky_dir, sizeof(sticky_dir), "%s", mp("sticky"));
	CHECK(mkdir(sticky_dir, 01777) == 0 && chmod(sticky_dir, 01777) == 0);
	write_str(mp("sticky/roots"), "r");
	CHECK(in_child(1000, other_user_unlink) == 0);
	CHECK(access(mp("sticky/roots"), F_OK) == 0);
	struct stat st;
	char byino[64];
	CHECK(stat(mp("sticky/roots"), &st) == 0 &&
	      vfs_inode_path(st.st_ino, byino, sizeof(byino)) == 0);
	CHECK(has_content(mp(byino + 1), "r"));
}

FX_TEST(readdir_many)
{
	enum { N = 1500 };
	CHECK(mkdir(mp("d"), 0755) == 0);
	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof(name), "d/file-%04d", i);
		int fd = open(mp(name), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		CHECK(fd >= 0);
		close(fd);
	}
	DIR *d = opendir(mp("d"));
	CHECK(d);
	int n = 0, dots = 0;
	long mark = -1;
	char marked[256] = {0};
	struct dirent *e;
	static bool seen[N];
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) {
			dots++;
			continue;
		}
		int k = atoi(e->d_name + 5);
		CHECK(k >= 0 && k < N && !seen[k]);
		seen[k] = true;
		CHECK(e->d_type == DT_REG);
		if (++n == N / 2) {
			mark = telldir(d);
			struct dirent *m = readdir(d);
			CHECK(m);
			snprintf(marked, sizeof(marked), "%s", m->d_name);
			seekdir(d, mark);
		}
	}
	CHECK(n == N && dots == 2 && mark >= 0);
	/* Cookies stay valid while the directory changes. */
	CHECK(unlink(mp("d/file-0000")) == 0 && unlink(mp("d/file-0001")) == 0);
	seekdir(d, mark);
	e = readdir(d);
	CHECK(e && strcmp(e->d_name, marked) == 0);
	closedir(d);
	/* A fresh listing sees the changes. */
	int fd = open(mp("d/new"), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	close(fd);
	d = opendir(mp("d"));
	CHECK(d);
	n = 0;
	bool got_new = false;
	while ((e = readdir(d))) {
		n++;
		got_new |= strcmp(e->d_name, "new") == 0;
		CHECK(strcmp(e->d_name, "file-0000") != 0);
	}
	closedir(d);
	CHECK(n == N - 2 + 1 + 2 && got_new);
	/* The hidden directory is not listed, but it is there. */
	d = opendir(fx_mnt);
	CHECK(d);
	while ((e = readdir(d)))
		CHECK(strcmp(e->d_name, ".ckptenv") != 0);
	closedir(d);
	struct stat st;
	CHECK(stat(mp(".ckptenv/ino"), &st) == 0 && S_ISDIR(st.st_mode));
}

static Suite *fuse_suite(void)
{
	Suite *s = suite_create("vfs-fuse");
	TCase *tc = tcase_create("ops");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_create_excl);
	tcase_add_test(tc, test_rename_flags);
	tcase_add_test(tc, test_links);
	tcase_add_test(tc, test_special_files);
	tcase_add_test(tc, test_locks);
	tcase_add_test(tc, test_fallocate_seek);
	tcase_add_test(tc, test_statfs_attrs);
	tcase_add_test(tc, test_sticky_dir);
	tcase_add_test(tc, test_readdir_many);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) < 0) {
		fprintf(stderr, "skip: needs root and /dev/fuse\n");
		return 77;
	}
	return ck_run_suite(fuse_suite());
}
