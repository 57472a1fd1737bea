/* Shared fixture of the restore suites: a private checkpoints directory and the zdtm-mem helper
 * started as our child (the tracer must be allowed to ptrace it), with its report parsed. */
#ifndef RESTORE_FIXTURE_H
#define RESTORE_FIXTURE_H

#include "common/ck.h"
#include "restore/restore.h"
#include "../../helpers/zdtm-mem.h"

#include <check.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sys/syscall.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>

struct zdtm {
	pid_t pid;
	int report; /* read end of the helper's report pipe */
	int cmd;    /* write end of its command pipe */
	uint64_t region[ZR_N];
	pid_t tid[ZDTM_THREADS];
	uint64_t handler, altstack, altstack_size;
};

static inline const char *fx_helpers(void)
{
	const char *h = getenv("CK_HELPERS");
	return h ? h : CK_HELPERS_DEFAULT;
}

/* A fresh directory below CK_TEST_TMPDIR (or /tmp); returns its path in @buf. */
static inline void fx_tmpdir(char *buf, size_t len)
{
	const char *base = getenv("CK_TEST_TMPDIR");
	if (!base)
		base = "/tmp";
	ck_assert_int_eq(ck_mkdir_p(base, 0700), 0);
	snprintf(buf, len, "%s/restore-XXXXXX", base);
	ck_assert_ptr_nonnull(mkdtemp(buf));
}

/* Each test's checkpoints directory, made and removed by fx_dir_setup / fx_dir_teardown (the
 * tcase's checked fixture, or called from a suite's own). */
static char fx_dir[PATH_MAX] CK_UNUSED;
static int fx_dirfd CK_UNUSED = -1;

static inline int fx_open_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	return fd;
}

static inline void fx_dir_setup(void)
{
	fx_tmpdir(fx_dir, sizeof(fx_dir));
	fx_dirfd = fx_open_dir(fx_dir);
}

static inline void fx_dir_teardown(void)
{
	close(fx_dirfd);
	ck_rm_rf_at(AT_FDCWD, fx_dir);
}

/* Read one line of the helper's report (byte by byte: no buffering to get wrong);
 * "" at end of file. 10 s deadline per byte. */
static inline void fx_line(struct zdtm *z, char *buf, size_t len)
{
	size_t n = 0;
	while (n + 1 < len) {
		struct pollfd p = {.fd = z->report, .events = POLLIN};
		ck_assert_msg(poll(&p, 1, 10000) == 1, "helper did not answer in 10 s");
		char c;
		ssize_t r = read(z->report, &c, 1);
		if (r <= 0)
			break;
		buf[n++] = c;
		if (c == '\n')
			break;
	}
	buf[n] = 0;
}

/* Wait until every helper thread sits in pause() (its registers are then the known ones). */
static inline void fx_wait_paused(struct zdtm *z)
{
	for (int i = 0; i < ZDTM_THREADS; i++) {
		char p[96];
		snprintf(p, sizeof(p), "/proc/%d/task/%d/syscall", (int)z->pid, (int)z->tid[i]);
		for (int tries = 0;; tries++) {
			char buf[64] = "";
			FILE *f = fopen(p, "r");
			if (f) {
				if (!fgets(buf, sizeof(buf), f))
					buf[0] = 0;
				fclose(f);
			}
			if (strncmp(buf, "34 ", 3) == 0)
				break;
			ck_assert_msg(tries < 5000, "thread %d never reached pause()", z->tid[i]);
			usleep(1000);
		}
	}
}

static inline void fx_start(struct zdtm *z, const char *dir, bool fork_child)
{
	memset(z, 0, sizeof(*z));
	int rp[2], cp[2];
	ck_assert_int_eq(pipe2(rp, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(cp, O_CLOEXEC), 0);
	char exe[PATH_MAX];
	snprintf(exe, sizeof(exe), "%s/zdtm-mem", fx_helpers());
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* The helper keeps only its two pipe ends (not O_CLOEXEC after dup). */
		int r = dup(rp[1]), c = dup(cp[0]);
		char rs[16], cs[16];
		snprintf(rs, sizeof(rs), "%d", r);
		snprintf(cs, sizeof(cs), "%d", c);
		setpgid(0, 0);
		execl(exe, "zdtm-mem", rs, cs, dir, fork_child ? "fork" : NULL, (char *)NULL);
		_exit(127);
	}
	close(rp[1]);
	close(cp[0]);
	z->pid = pid;
	z->report = rp[0];
	z->cmd = cp[1];
	char line[256];
	for (;;) {
		fx_line(z, line, sizeof(line));
		ck_assert_msg(line[0], "helper %s exited before ready", exe);
		ck_assert_msg(strncmp(line, "fail", 4) != 0, "helper: %s", line);
		if (strcmp(line, "ready\n") == 0)
			break;
		char name[32];
		unsigned long long a, b;
		unsigned n;
		int i;
		if (sscanf(line, "region %31s %llx %u", name, &a, &n) == 3) {
			for (int r = 0; r < ZR_N; r++)
				if (strcmp(name, zdtm_region_names[r]) == 0)
					z->region[r] = a;
		} else if (sscanf(line, "thread %d %llu", &i, &a) == 2 && i >= 0 &&
			   i < ZDTM_THREADS) {
			z->tid[i] = (pid_t)a;
		} else if (sscanf(line, "handler %llx", &a) == 1) {
			z->handler = a;
		} else if (sscanf(line, "altstack %llx %llu", &a, &b) == 2) {
			z->altstack = a;
			z->altstack_size = b;
		}
	}
	if (!fork_child)
		fx_wait_paused(z);
}

/* Ask the helper to verify itself; returns its answer line. */
static inline void fx_verify(struct zdtm *z, char *buf, size_t len)
{
	ck_assert_int_eq(write(z->cmd, "v", 1), 1);
	fx_line(z, buf, len);
}

static inline void fx_stop(struct zdtm *z)
{
	if (z->pid > 0) {
		kill(-z->pid, SIGKILL);
		kill(z->pid, SIGKILL);
		waitpid(z->pid, NULL, 0);
	}
	if (z->report >= 0)
		close(z->report);
	if (z->cmd >= 0)
		close(z->cmd);
	z->pid = 0;
}

/* ---- helpers that verify themselves on SIGUSR2 (zdtm-thtimers, zdtm-shmalias, zdtm-rseq) ---- */

/* fork() at pid @want (clone3 set_tid, root), or a plain fork() when @want is 0. */
static inline pid_t fx_fork_at(pid_t want)
{
	if (!want)
		return fork();
	pid_t tid = want;
	struct clone_args ca = {
		.exit_signal = SIGCHLD, .set_tid = (uint64_t)(uintptr_t)&tid, .set_tid_size = 1};
	return (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
}

/* Whether /proc/PID/comm becomes @want ("name\n") within 30 s. */
static inline bool fx_wait_comm(pid_t pid, const char *want)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	for (int i = 0; i < 15000; i++) {
		char buf[32] = "";
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, buf, sizeof(buf) - 1);
			buf[n > 0 ? n : 0] = 0;
			close(fd);
		}
		if (!strcmp(buf, want))
			return true;
		usleep(2000);
	}
	return false;
}

/* Start helper @name with @arg (or none) and stdout on a pipe; its first line goes to @ready.
 * Returns its pid; *ret_out (may be NULL: closed) the pipe's read end. */
static inline pid_t fx_self_start(const char *name, const char *arg, char *ready, size_t len,
				  int *ret_out)
{
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	char exe[PATH_MAX];
	snprintf(exe, sizeof(exe), "%s/%s", fx_helpers(), name);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(p[1], 1);
		close_range(3, ~0u, 0);
		execl(exe, name, arg, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	struct zdtm z = {.pid = pid, .report = p[0], .cmd = -1};
	fx_line(&z, ready, len);
	if (ret_out)
		*ret_out = p[0];
	else
		close(p[0]);
	ck_assert_msg(!strncmp(ready, "ready", 5), "%s said: '%s'", name, ready);
	return pid;
}

/* Freeze and dump @pid as checkpoint @id, then kill it and reap every thread. */
static inline void fx_self_dump(pid_t pid, int dirfd, const char *id)
{
	struct restore_freeze *f = NULL;
	struct restore_err err = {0};
	ck_assert_msg(restore_freeze(pid, &f, &err) == 0, "freeze: %s", err.msg);
	int r = restore_dump(f, dirfd, id, NULL, NULL, &err);
	kill(pid, SIGKILL);
	/* Traced threads that die stay zombies until we, their tracer, reap them. */
	for (size_t i = 1; i < restore_freeze_nthreads(f); i++)
		waitpid(restore_freeze_tid(f, i), NULL, __WALL);
	restore_freeze_resume(f);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	ck_assert_msg(r == 0, "dump: %d %s", r, err.msg);
}

/* Restore checkpoint @id in a child at pid @want (0: any pid), wait until the blob has named it
 * @comm ("name\n": every signal is blocked from there on, the helper's handlers installed),
 * ask for the verdict with SIGUSR2 and fail unless it says "ok" and exits 0. */
static inline void fx_self_restore(int dirfd, const char *id, pid_t want, const char *comm)
{
	int o[2], res[2];
	ck_assert_int_eq(pipe2(o, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(res, O_CLOEXEC), 0);
	pid_t rp = fx_fork_at(want);
	ck_assert_msg(rp >= 0, "cannot fork at %d: %s", (int)want, strerror(errno));
	if (rp == 0) {
		dup2(o[1], 1);
		struct restore_process_opts op = {.blob_err_fd = res[1]};
		struct restore_err e = {0};
		int q = restore_process(dirfd, id, &op, &e);
		dprintf(res[1], "%d %s\n", q, e.msg);
		_exit(100);
	}
	close(o[1]);
	close(res[1]);
	bool named = fx_wait_comm(rp, comm);
	if (named)
		kill(rp, SIGUSR2);
	else
		kill(rp, SIGKILL);
	struct zdtm z = {.pid = rp, .report = o[0], .cmd = -1};
	char got[256] = "", why[512] = "";
	fx_line(&z, got, sizeof(got));
	int st = 0;
	ck_assert_int_eq(waitpid(rp, &st, 0), rp);
	z.report = res[0];
	fx_line(&z, why, sizeof(why));
	ck_assert_msg(named && !strcmp(got, "ok\n") && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "restore at pid %d: helper said '%s', status 0x%x, restorer: %s", (int)want,
		      got, st, why);
	close(o[0]);
	close(res[0]);
}

#endif
