/* Multi-threaded restore_process(), zdtm style: the zdtm-threads helper (eight workers spinning
 * on general, zmm and k registers and checking them after every block, a token ring and a
 * ping-pong under mutexes and condvars, TLS, names, per-thread masks and a pending signal of
 * one thread) is frozen, dumped and killed, then rebuilt twice from the same image in a fresh
 * child of ours, at its old pid and old tids (clone3 set_tid: root). Each restored copy must
 * have all 11 threads at their old tids, go on from the checkpoint's block count, and on
 * SIGUSR1 verify itself and answer "ok". Not root: the copies get new tids ("anytid").
 * The same with the helper statically linked. Also: an old tid taken by another process is
 * refused before the point of no return; a process whose main thread has ended (pthread_exit)
 * is refused at freeze. */
#include "../check-main.h"
#include "fixture.h"

#include <dirent.h>
#include <linux/sched.h>
#include <sys/syscall.h>

#define OFD	 10 /* the helper's output pipe */
#define NTHREADS 12 /* main, 8 workers, 2 ping-pong, churn; + 1 transient at times */


struct th {
	pid_t pid;
	pid_t tids[NTHREADS]; /* the long-lived threads, as the helper reported them */
	int out;	      /* read end of the helper's output */
	int res;	      /* restore_process() failure report, or -1 */
};

static void line(int fd, char *buf, size_t len)
{
	struct zdtm z = {.report = fd};
	fx_line(&z, buf, len);
}

/* Read lines until one starting with @want (its tick count in *ret if it is a tick; the tids
 * line, if one passes, into h->tids). */
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
		pid_t *t = h->tids;
		if (strncmp(l, "tids ", 5) == 0)
			ck_assert_int_eq(sscanf(l, "tids %d %d %d %d %d %d %d %d %d %d %d %d",
						&t[0], &t[1], &t[2], &t[3], &t[4], &t[5], &t[6],
						&t[7], &t[8], &t[9], &t[10], &t[11]),
					 NTHREADS);
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

static void start(struct th *h, const char *helper)
{
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	char exe[PATH_MAX];
	snprintf(exe, sizeof(exe), "%s/%s", fx_helpers(), helper);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(p[1], OFD);
		close_range(3, OFD - 1, 0);
		close_range(OFD + 1, ~0u, 0);
		execl(exe, helper, "10", any_tid() ? "anytid" : NULL, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	*h = (struct th){.pid = pid, .out = p[0], .res = -1};
	expect(h, "ready", NULL);
	ck_assert_int_eq(h->tids[0], pid);
}

/* The name of thread @tid of @pid, "" if there is none. */
static void comm_of(pid_t pid, pid_t tid, char *buf, size_t len)
{
	char p[96];
	snprintf(p, sizeof(p), "/proc/%d/task/%d/comm", (int)pid, (int)tid);
	buf[0] = 0;
	FILE *f = fopen(p, "r");
	if (f) {
		if (!fgets(buf, (int)len, f))
			buf[0] = 0;
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = 0;
}

static size_t count_tasks(pid_t pid)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/task", (int)pid);
	DIR *d = opendir(p);
	ck_assert_ptr_nonnull(d);
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* fork() at @want (clone3 set_tid) as root, so the threads can have their old tids too. */
static pid_t fork_at(pid_t want)
{
	if (any_tid())
		return fork();
	pid_t tid = want;
	struct clone_args ca = {
		.exit_signal = SIGCHLD, .set_tid = (uint64_t)(uintptr_t)&tid, .set_tid_size = 1};
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
		int r = restore_process(fx_dirfd, id, &o, &err);
		dprintf(rp[1], "%d %s\n", r, err.msg);
		_exit(100);
	}
	close(p[1]);
	close(rp[1]);
	*h = (struct th){.pid = pid, .out = p[0], .res = rp[0]};
}

static void run_threads(const char *helper)
{
	struct th h;
	start(&h, helper);
	unsigned long long before = 0;
	for (int i = 0; i < 5; i++)
		expect(&h, "tick", &before);
	pid_t old = h.pid;
	ck_assert_uint_ge(count_tasks(old), NTHREADS);
	struct restore_freeze *f = NULL;
	struct restore_err err = {0};
	ck_assert_msg(restore_freeze(h.pid, &f, &err) == 0, "freeze: %s", err.msg);
	size_t n = restore_freeze_nthreads(f);
	ck_assert_msg(n == NTHREADS || n == NTHREADS + 1, "%zu threads frozen", n);
	int r = restore_dump(f, fx_dirfd, "1", NULL, NULL, &err);
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
	ck_assert_int_eq(restore_image_load(fx_dirfd, "1", &img, &err), 0);
	ck_assert_uint_eq(img->nthreads, n);
	ck_assert_int_eq(img->threads[0].tid, old);
	ck_assert_str_eq(img->threads[0].comm, "zdtm-threads"); /* set by the helper */
	/* Every long-lived thread is in the image with what glibc set up for it. */
	pid_t tid[NTHREADS];
	char comm[NTHREADS][16];
	for (size_t i = 0; i < NTHREADS; i++) {
		const struct restore_thread *t = NULL;
		for (size_t j = 0; j < img->nthreads; j++)
			if (img->threads[j].tid == h.tids[i])
				t = &img->threads[j];
		ck_assert_msg(t, "thread %d is not in the image", (int)h.tids[i]);
		ck_assert_uint_ge(t->xsave_len, 576);
		ck_assert_uint_ne(t->regs.fs_base, 0);
		ck_assert(t->flags & RESTORE_THREAD_F_INJECTED);
		ck_assert_uint_ne(t->clear_child_tid, 0);
		ck_assert_uint_ne(t->robust_head, 0);
		ck_assert(t->flags & RESTORE_THREAD_F_RSEQ);
		tid[i] = t->tid;
		memcpy(comm[i], t->comm, 16);
	}
	ck_assert_str_eq(comm[1], "worker0");
	ck_assert_str_eq(comm[NTHREADS - 1], "churn");
	restore_image_free(img);

	for (int round = 0; round < 2; round++) {
		pid_t keep[NTHREADS];
		memcpy(keep, h.tids, sizeof(keep));
		restore_child("1", old, &h);
		memcpy(h.tids, keep, sizeof(keep));
		unsigned long long first = 0, later = 0;
		expect(&h, "tick", &first);
		ck_assert_msg(first >= before, "round %d: restored at %llu blocks, before %llu",
			      round, first, before);
		/* Every long-lived thread is back at its old tid with its name. */
		for (size_t i = 0; !any_tid() && i < NTHREADS; i++) {
			char now[16];
			comm_of(h.pid, tid[i], now, sizeof(now));
			ck_assert_msg(strcmp(now, comm[i]) == 0,
				      "round %d: tid %d is \"%s\", not %s", round, (int)tid[i], now,
				      comm[i]);
		}
		ck_assert_uint_ge(count_tasks(h.pid), NTHREADS);
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
	if (any_tid())
		return;
	/* One old tid taken by another process: refused before anything changed, naming it. */
	pid_t squat = fork_at(tid[1]);
	ck_assert_msg(squat >= 0, "cannot fork at %d: %s", (int)tid[1], strerror(errno));
	if (squat == 0) {
		pause();
		_exit(0);
	}
	restore_child("1", old, &h);
	char l[512];
	line(h.res, l, sizeof(l));
	int st = 0, rr = 0;
	ck_assert_int_eq(waitpid(h.pid, &st, 0), h.pid);
	ck_assert_msg(sscanf(l, "%d", &rr) == 1 && rr == -EBUSY && strstr(l, "is taken"), "got %s",
		      l);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 100);
	kill(squat, SIGKILL);
	waitpid(squat, NULL, 0);
	close(h.out);
	close(h.res);
}

START_TEST(test_threads_restore_twice)
{
	run_threads("zdtm-threads");
}
END_TEST

START_TEST(test_threads_static)
{
	run_threads("zdtm-threads-static");
}
END_TEST

/* The main thread ended with pthread_exit() while another runs on: refused, naming the reason,
 * and the process keeps running. */
START_TEST(test_threads_leader_exited)
{
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	char exe[PATH_MAX];
	snprintf(exe, sizeof(exe), "%s/zdtm-leaderexit", fx_helpers());
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(p[1], OFD);
		execl(exe, "zdtm-leaderexit", "10", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	struct th h = {.pid = pid, .out = p[0], .res = -1};
	char l[128];
	line(h.out, l, sizeof(l));
	ck_assert_str_eq(l, "count 0\n");
	/* The leader is a zombie once pthread_exit() is through. */
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (int tries = 0;; tries++) {
		char buf[512] = "";
		FILE *f = fopen(path, "r");
		ck_assert_ptr_nonnull(f);
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
		char *s = strrchr(buf, ')');
		if (s && s[2] == 'Z')
			break;
		ck_assert_msg(tries < 5000, "the leader never ended");
		usleep(1000);
	}
	struct restore_freeze *f = NULL;
	struct restore_err err = {0};
	ck_assert_int_eq(restore_freeze(pid, &f, &err), -EOPNOTSUPP);
	ck_assert_msg(strstr(err.msg, "main thread") && strstr(err.msg, "pthread_exit"), "%s",
		      err.msg);
	unsigned long long a = 0, b = 0;
	line(h.out, l, sizeof(l));
	ck_assert_int_eq(sscanf(l, "count %llu", &a), 1);
	do {
		line(h.out, l, sizeof(l));
		ck_assert_int_eq(sscanf(l, "count %llu", &b), 1);
	} while (b < a + 3);
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	close(h.out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("restore-threads");
	TCase *tc = tcase_create("threads");
	tcase_add_checked_fixture(tc, fx_dir_setup, fx_dir_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_threads_restore_twice);
	tcase_add_test(tc, test_threads_static);
	tcase_add_test(tc, test_threads_leader_exited);
	suite_add_tcase(s, tc);
	return ck_run_suite(s);
}
