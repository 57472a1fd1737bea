/* Multi-threaded restore_process(), zdtm style: the zdtm-threads helper (eight workers spinning
 * on general, zmm and k registers and checking them after every block, a token ring and a
 * ping-pong under mutexes and condvars, TLS, names, per-thread masks and a pending signal of
 * one thread) is frozen, dumped and killed, then rebuilt twice from the same image in a fresh
 * child of ours, at its old pid and old tids (clone3 set_tid: root). Each restored copy must
 * have all 11 threads at their old tids, go on from the checkpoint's block count, and on
 * SIGUSR1 verify itself and answer "ok". Not root: the copies get new tids ("anytid"). */
#include "fixture.h"

#include <dirent.h>
#include <linux/sched.h>
#include <sys/syscall.h>

#define OFD	 10 /* the helper's output pipe */
#define NTHREADS 11 /* main, 8 workers, 2 ping-pong */

static char tmp[PATH_MAX];
static int dirfd_ = -1;

static void setup(void)
{
	fx_tmpdir(tmp, sizeof(tmp));
	dirfd_ = fx_open_dir(tmp);
}

static void teardown(void)
{
	close(dirfd_);
	ck_rm_rf_at(AT_FDCWD, tmp);
}

struct th {
	pid_t pid;
	int out; /* read end of the helper's output */
	int res; /* restore_process() failure report, or -1 */
};

static void line(int fd, char *buf, size_t len)
{
	struct zdtm z = {.report = fd};
	fx_line(&z, buf, len);
}

/* Read lines until one starting with @want (its tick count in *ret if it is a tick). */
static void expect(struct th *h, const char *want, unsigned long long *ret)
{
	char l[256];
	for (;;) {
		line(h->out, l, sizeof(l));
		if (!l[0] && h->res >= 0) {
			char why[512] = "";
			line(h->res, why, sizeof(why));
			ck_abort_msg("helper output ended; restorer said: %s", why);
		}
		ck_assert_msg(l[0], "helper output ended while waiting for %s", want);
		ck_assert_msg(strncmp(l, "fail", 4) != 0, "helper: %s", l);
		if (strncmp(l, want, strlen(want)) == 0) {
			if (ret)
				ck_assert_int_eq(sscanf(l, "tick %llu", ret), 1);
			return;
		}
	}
}

static bool any_tid(void)
{
	return geteuid() != 0;
}

static void start(struct th *h)
{
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	char exe[PATH_MAX];
	snprintf(exe, sizeof(exe), "%s/zdtm-threads", fx_helpers());
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(p[1], OFD);
		close_range(3, OFD - 1, 0);
		close_range(OFD + 1, ~0u, 0);
		execl(exe, "zdtm-threads", "10", any_tid() ? "anytid" : NULL, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	*h = (struct th){.pid = pid, .out = p[0], .res = -1};
	expect(h, "ready", NULL);
}

/* The tids of @pid, sorted. */
static size_t tids(pid_t pid, pid_t *v, size_t max)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/task", (int)pid);
	DIR *d = opendir(p);
	ck_assert_ptr_nonnull(d);
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && n < max)
			v[n++] = (pid_t)atoi(e->d_name);
	closedir(d);
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && v[j] < v[j - 1]; j--) {
			pid_t t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return n;
}

/* fork() at @want (clone3 set_tid) as root, so the threads can have their old tids too. */
static pid_t fork_at(pid_t want)
{
	if (any_tid())
		return fork();
	pid_t tid = want;
	struct clone_args ca = {.exit_signal = SIGCHLD,
				.set_tid = (uint64_t)(uintptr_t)&tid,
				.set_tid_size = 1};
	return (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
}

static void restore_child(const char *id, pid_t old, struct th *h)
{
	int p[2], rp[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(rp, O_CLOEXEC), 0);
	pid_t pid = fork_at(old);
	ck_assert_msg(pid >= 0, "cannot fork at pid %d: %s", (int)old, strerror(errno));
	if (pid == 0) {
		struct restore_fd_map m[1] = {{OFD, p[1]}};
		struct restore_process_opts o = {.fds = m, .nfds = 1};
		struct restore_err err = {0};
		int r = restore_process(dirfd_, id, &o, &err);
		dprintf(rp[1], "%d %s\n", r, err.msg);
		_exit(100);
	}
	close(p[1]);
	close(rp[1]);
	*h = (struct th){.pid = pid, .out = p[0], .res = rp[0]};
}

START_TEST(test_threads_restore_twice)
{
	struct th h;
	start(&h);
	unsigned long long before = 0;
	for (int i = 0; i < 5; i++)
		expect(&h, "tick", &before);
	pid_t old = h.pid, old_tids[64];
	size_t nold = tids(old, old_tids, 64);
	ck_assert_uint_eq(nold, NTHREADS);

	struct restore_freeze *f = NULL;
	struct restore_err err = {0};
	ck_assert_msg(restore_freeze(h.pid, &f, &err) == 0, "freeze: %s", err.msg);
	ck_assert_uint_eq(restore_freeze_nthreads(f), NTHREADS);
	int r = restore_dump(f, dirfd_, "1", NULL, NULL, &err);
	kill(h.pid, SIGKILL);
	/* Traced threads that die stay zombies until their tracer (we) reaps them; only then can
	 * the leader be reaped. */
	for (size_t i = 1; i < restore_freeze_nthreads(f); i++)
		waitpid(restore_freeze_tid(f, i), NULL, __WALL);
	restore_freeze_resume(f);
	ck_assert_int_eq(waitpid(h.pid, NULL, 0), h.pid);
	ck_assert_msg(r == 0, "dump: %d %s", r, err.msg);
	close(h.out);

	struct restore_image *img = NULL;
	ck_assert_int_eq(restore_image_load(dirfd_, "1", &img, &err), 0);
	ck_assert_uint_eq(img->nthreads, NTHREADS);
	ck_assert_int_eq(img->threads[0].tid, old);
	for (size_t i = 0; i < img->nthreads; i++) {
		ck_assert_uint_ge(img->threads[i].xsave_len, 576);
		ck_assert_uint_ne(img->threads[i].regs.fs_base, 0);
	}
	restore_image_free(img);

	for (int round = 0; round < 2; round++) {
		restore_child("1", old, &h);
		unsigned long long first = 0, later = 0;
		expect(&h, "tick", &first);
		ck_assert_msg(first >= before, "round %d: restored at %llu blocks, before %llu",
			      round, first, before);
		if (!any_tid()) {
			pid_t now[64];
			ck_assert_uint_eq(tids(h.pid, now, 64), NTHREADS);
			for (size_t i = 0; i < NTHREADS; i++)
				ck_assert_int_eq(now[i], old_tids[i]);
		}
		do
			expect(&h, "tick", &later);
		while (later < first + 16);
		kill(h.pid, SIGUSR1);
		char l[256];
		do
			line(h.out, l, sizeof(l));
		while (strncmp(l, "tick", 4) == 0);
		ck_assert_str_eq(l, "ok\n");
		int st = 0;
		ck_assert_int_eq(waitpid(h.pid, &st, 0), h.pid);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
		close(h.out);
		close(h.res);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("restore-threads");
	TCase *tc = tcase_create("threads");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_threads_restore_twice);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
