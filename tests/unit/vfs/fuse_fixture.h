/* Test fixture for the FUSE layer, over real mounts (included by tests/unit/vfs/fuse*.c).
 *
 * The test process plays the supervisor: it opens the vfs and serves it. A child plays the
 * job: it enters a private mount namespace, mounts with vfs_mount_fuse, passes the /dev/fuse
 * fd up over a socketpair (as the job's init does) and runs the scenario. The child may ask the
 * serving side to commit (passing an fd on the mount for syncfs), to reopen the store at an
 * epoch on a fresh mount, or to stop serving while the mount stays. A failing CHECK in the
 * child sends its message up a pipe and exits 1. */
#ifndef TESTS_FUSE_FIXTURE_H
#define TESTS_FUSE_FIXTURE_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/ck.h"
#include "vfs/vfs.h"

typedef void (*scenario_fn)(void);

static char fx_base[PATH_MAX / 4], fx_mnt[PATH_MAX / 2], fx_store[PATH_MAX / 2];
static int fx_sock = -1;  /* child: its end of the socketpair */
static int fx_errfd = -1; /* child: where a failure message goes */

struct fx_msg {
	char op; /* 'M' first mount, 'C' commit, 'R' reopen, 'H' commit head + reopen, 'S' stop,
		  * 'I' I/O counters */
	bool keep_orphans;
	uint64_t epoch;
	char ref[48];
};

struct fx_reply {
	int r;
	uint64_t epoch;
	struct vfs_io_stats io; /* 'I' */
};

__attribute__((noreturn, unused)) static void fx_fail(const char *file, int line, const char *what)
{
	int e = errno;
	dprintf(fx_errfd, "%s:%d: %s (errno %d: %s)", file, line, what, e, strerror(e));
	_exit(1);
}

#define CHECK(c)                                         \
	do {                                             \
		if (!(c))                                \
			fx_fail(__FILE__, __LINE__, #c); \
	} while (0)

/* Absolute path of @rel below the mount (rotating buffers: 8 live at a time). */
__attribute__((unused)) static const char *mp(const char *rel)
{
	static char bufs[8][PATH_MAX];
	static unsigned i;
	char *b = bufs[i++ % 8];
	snprintf(b, PATH_MAX, "%s/%s", fx_mnt, rel);
	return b;
}

static struct fx_reply fx_ask(const struct fx_msg *m, int fd)
{
	struct fx_reply rep = {.r = -EIO};
	size_t nfds = 0;
	CHECK(ck_send_fds(fx_sock, m, sizeof(*m), &fd, fd >= 0 ? 1 : 0) == 0);
	CHECK(ck_recv_fds(fx_sock, &rep, sizeof(rep), NULL, 0, &nfds) == sizeof(rep));
	return rep;
}

static void fx_mount_and_send(const struct fx_msg *m)
{
	int fd = -1;
	int r = vfs_mount_fuse(fx_mnt, true, &fd);
	errno = -r;
	CHECK(r == 0);
	struct fx_reply rep = fx_ask(m, fd);
	close(fd);
	errno = -rep.r;
	CHECK(rep.r == 0);
}

/* Commit the live state as @ref (syncfs through an fd on the mount); returns the epoch. */
__attribute__((unused)) static uint64_t fx_commit(const char *ref)
{
	struct fx_msg m = {.op = 'C'};
	if (ref)
		snprintf(m.ref, sizeof(m.ref), "%s", ref);
	int fd = open(fx_mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0);
	struct fx_reply rep = fx_ask(&m, fd);
	close(fd);
	errno = -rep.r;
	CHECK(rep.r == 0 && rep.epoch > 0);
	return rep.epoch;
}

/* Detach the mount and serve a fresh one over @epoch (0: head): what a restore does. */
__attribute__((unused)) static void fx_reopen(uint64_t epoch, bool keep_orphans)
{
	CHECK(umount2(fx_mnt, MNT_DETACH) == 0);
	struct fx_msg m = {.op = 'R', .epoch = epoch, .keep_orphans = keep_orphans};
	fx_mount_and_send(&m);
}

/* Like fx_reopen(0), but the server closes with commit_head (the supervisor's shutdown). */
__attribute__((unused)) static void fx_reopen_committing(void)
{
	CHECK(umount2(fx_mnt, MNT_DETACH) == 0);
	struct fx_msg m = {.op = 'H'};
	fx_mount_and_send(&m);
}

/* The serving side's counters of how WRITE data reached the store (since this mount). */
__attribute__((unused)) static struct vfs_io_stats fx_io_stats(void)
{
	struct fx_msg m = {.op = 'I'};
	struct fx_reply rep = fx_ask(&m, -1);
	CHECK(rep.r == 0);
	return rep.io;
}

/* The supervisor stops while the job (this child) still has its mount. */
__attribute__((unused)) static void fx_stop(void)
{
	struct fx_msg m = {.op = 'S'};
	struct fx_reply rep = fx_ask(&m, -1);
	CHECK(rep.r == 0);
}

static void fx_child(int sock, int errfd, scenario_fn fn)
{
	fx_sock = sock;
	fx_errfd = errfd;
	CHECK(unshare(CLONE_NEWNS) == 0);
	CHECK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
	struct fx_msg m = {.op = 'M'};
	fx_mount_and_send(&m);
	fn();
	_exit(0);
}

static int fx_serve(struct vfs **v, const char *store, uint64_t epoch, bool keep, int fd)
{
	struct vfs_options o = {.store_dir = store, .from_epoch = epoch, .keep_orphans = keep};
	int r = vfs_open(&o, v);
	if (r < 0) {
		fprintf(stderr, "vfs_open: %s\n", vfs_last_error());
		close(fd);
		return r;
	}
	return vfs_serve(*v, fd);
}

/* Parent side: run @fn in a job-like child over a fresh store. NULL, or what failed. */
__attribute__((unused)) static const char *fx_run(scenario_fn fn)
{
	static char msg[1024];
	static unsigned seq;
	const char *tmp = getenv("CK_TEST_TMPDIR");
	if (!tmp)
		tmp = "/var/tmp";
	snprintf(fx_base, sizeof(fx_base), "%s/fuse-%d-%u", tmp, (int)getpid(), seq++);
	snprintf(fx_mnt, sizeof(fx_mnt), "%s/mnt", fx_base);
	snprintf(fx_store, sizeof(fx_store), "%s/store", fx_base);
	ck_rm_rf_at(AT_FDCWD, fx_base);
	if (ck_mkdir_p(fx_mnt, 0755) < 0 || chmod(fx_base, 0755) < 0 || chmod(tmp, 0755) < 0)
		return "cannot make the test directories";

	int sp[2], ep[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0 || pipe2(ep, O_CLOEXEC))
		return "socketpair/pipe";
	pid_t pid = fork();
	if (pid == 0) {
		close(sp[0]);
		close(ep[0]);
		fx_child(sp[1], ep[1], fn);
	}
	close(sp[1]);
	close(ep[1]);

	struct vfs *v = NULL;
	const char *failed = NULL;
	for (;;) {
		struct fx_msg m;
		int fd = -1;
		size_t nfds = 0;
		ssize_t n = ck_recv_fds(sp[0], &m, sizeof(m), &fd, 1, &nfds);
		if (n != sizeof(m))
			break;
		struct fx_reply rep = {0};
		m.ref[sizeof(m.ref) - 1] = 0;
		switch (m.op) {
		case 'M':
			rep.r = fx_serve(&v, fx_store, 0, false, fd);
			fd = -1;
			break;
		case 'H':
		case 'R':
			if (vfs_close(v, m.op == 'H') < 0)
				fprintf(stderr, "vfs_close: %s\n", vfs_last_error());
			v = NULL;
			rep.r = fx_serve(&v, fx_store, m.epoch, m.keep_orphans, fd);
			fd = -1;
			break;
		case 'C':
			rep.r = v ? vfs_epoch_commit(v, fd, m.ref[0] ? m.ref : NULL, &rep.epoch)
				  : -ENOTCONN;
			if (rep.r < 0)
				fprintf(stderr, "commit: %s\n", vfs_last_error());
			break;
		case 'S':
			rep.r = vfs_close(v, false);
			v = NULL;
			break;
		case 'I':
			vfs_io_stats(v, &rep.io);
			rep.r = v ? 0 : -ENOTCONN;
			break;
		}
		if (fd >= 0)
			close(fd);
		if (ck_send_fds(sp[0], &rep, sizeof(rep), NULL, 0) < 0)
			break;
	}

	int status = 0;
	waitpid(pid, &status, 0);
	ssize_t n = read(ep[0], msg, sizeof(msg) - 1);
	msg[n > 0 ? n : 0] = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		failed = msg[0] ? msg : "the scenario died";
	if (vfs_close(v, false) < 0 && !failed)
		failed = "vfs_close failed";
	close(sp[0]);
	close(ep[0]);
	if (!failed)
		ck_rm_rf_at(AT_FDCWD, fx_base);
	return failed;
}

#define FX_TEST(name)                                             \
	static void scenario_##name(void);                        \
	START_TEST(test_##name)                                   \
	{                                                         \
		const char *err = fx_run(scenario_##name);        \
		ck_assert_msg(err == NULL, "%s", err ? err : ""); \
	}                                                         \
	END_TEST                                                  \
	static void scenario_##name(void)

/* Scenario helpers: a file with exactly @s, and whether it holds exactly @s. */
static CK_UNUSED void write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	CHECK(write(fd, s, strlen(s)) == (ssize_t)strlen(s));
	CHECK(close(fd) == 0);
}

static CK_UNUSED bool has_content(const char *path, const char *s)
{
	char buf[256] = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n == (ssize_t)strlen(s) && memcmp(buf, s, (size_t)n) == 0;
}

#endif
