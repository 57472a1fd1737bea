/* Timers and clocks, zdtm style: the zdtm-timers helper arms POSIX timers, the itimers or
 * alarm(); it is frozen, dumped and killed, we stay down two seconds, then a fresh child of ours
 * enters a time namespace continuing the image's clocks (restore_timens_enter, in a user
 * namespace of its own when we are not root) and calls restore_process(). The helper (four
 * POSIX timers: relative and absolute CLOCK_MONOTONIC, CLOCK_BOOTTIME at its own thread, a
 * CPU-time one with SIGEV_NONE) checks from inside: same timer ids, signals with the right
 * si_value, time left consistent with the monotonic clock, clocks never back and not jumping by
 * the downtime. Also: the TIMERS section round trip and its range checks, and
 * restore_timens_enter itself (clocks set, offsets frozen once entered), and timers aimed at
 * another thread than the main one (zdtm-thtimers). */
#include "../check-main.h"
#include "fixture.h"

#include <sched.h>
#include <sys/time.h>
#include <time.h>

#define DOWN_S "2"


static uint64_t mono_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One line from @fd, byte by byte; "" at end of file. 30 s deadline per byte: the restored
 * helper waits for its timer B, a few seconds, before it says "ok". */
static const char *stage = "";

static void read_line(int fd, char *buf, size_t len)
{
	size_t n = 0;
	while (n + 1 < len) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ck_assert_msg(poll(&p, 1, 30000) == 1, "%s: no answer in 30 s (got '%.*s')", stage,
			      (int)n, buf);
		char c;
		if (read(fd, &c, 1) <= 0)
			break;
		buf[n++] = c;
		if (c == '\n')
			break;
	}
	buf[n] = 0;
}

/* The helper with stdout on a pipe; returns its pid, *ret_out the read end. */
static pid_t start_helper(const char *mode, int *ret_out)
{
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	char exe[PATH_MAX];
	snprintf(exe, sizeof(exe), "%s/zdtm-timers", fx_helpers());
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(p[1], 1);
		close_range(3, ~0u, 0);
		execl(exe, "zdtm-timers", mode, DOWN_S, "continuous", "3", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	*ret_out = p[0];
	return pid;
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -EIO;
}

/* Enough privilege for a time namespace: root, or a user namespace of our own. */
static void become_ns_root(void)
{
	if (geteuid() == 0)
		return;
	uid_t u = geteuid();
	gid_t g = getegid();
	if (unshare(CLONE_NEWUSER) < 0)
		_exit(90);
	char line[64];
	snprintf(line, sizeof(line), "%u %u 1\n", (unsigned)u, (unsigned)u);
	if (write_file("/proc/self/uid_map", line) < 0 ||
	    write_file("/proc/self/setgroups", "deny") < 0)
		_exit(91);
	snprintf(line, sizeof(line), "%u %u 1\n", (unsigned)g, (unsigned)g);
	if (write_file("/proc/self/gid_map", line) < 0)
		_exit(92);
}

static void roundtrip(const char *mode)
{
	int out;
	pid_t pid = start_helper(mode, &out);
	char line[256];
	stage = "helper start";
	read_line(out, line, sizeof(line));
	int id_a = -1, id_b = -1;
	ck_assert_msg(sscanf(line, "ready %d %d", &id_a, &id_b) == 2, "helper said: %s", line);

	struct restore_freeze *f = NULL;
	struct restore_err err = {0};
	uint64_t before = mono_ns(CLOCK_MONOTONIC);
	ck_assert_msg(restore_freeze(pid, &f, &err) == 0, "freeze: %s", err.msg);
	int r = restore_dump(f, fx_dirfd, "1", NULL, NULL, &err);
	uint64_t after = mono_ns(CLOCK_MONOTONIC);
	kill(pid, SIGKILL);
	restore_freeze_resume(f);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	ck_assert_msg(r == 0, "dump: %d %s", r, err.msg);
	close(out);

	/* What the image recorded. */
	struct restore_image *img = NULL;
	ck_assert_int_eq(restore_image_load(fx_dirfd, "1", &img, &err), 0);
	const struct restore_timers *t = &img->timers;
	ck_assert(t->flags & RESTORE_TIMERS_F_VALID);
	ck_assert_msg(t->mono_ns >= before && t->mono_ns <= after, "mono %llu not in [%llu, %llu]",
		      (unsigned long long)t->mono_ns, (unsigned long long)before,
		      (unsigned long long)after);
	ck_assert_uint_ge(t->boot_ns, t->mono_ns);
	ck_assert_uint_eq(t->nposix, 4);
	ck_assert_int_eq(t->posix[0].id, id_a);
	ck_assert_int_eq(t->posix[1].id, id_b);
	ck_assert_uint_eq(t->posix[0].value, 0x5eed0001u);
	ck_assert_int_eq(t->posix[0].signo, SIGUSR1);
	ck_assert_int_eq(t->posix[0].notify, SIGEV_SIGNAL);
	ck_assert_int_eq(t->posix[0].clockid, CLOCK_MONOTONIC);
	ck_assert_uint_eq(t->posix[0].interval_ns, 100000000u);
	ck_assert_uint_le(t->posix[0].value_ns, 100000000u);
	ck_assert_uint_eq(t->posix[1].interval_ns, 0);
	ck_assert_uint_gt(t->posix[1].value_ns, 0);
	/* C: SIGEV_THREAD_ID at the helper's main thread (its tid as our /proc shows it). */
	ck_assert_int_eq(t->posix[2].notify, SIGEV_THREAD_ID);
	ck_assert_int_eq(t->posix[2].tid, pid);
	ck_assert_int_eq(t->posix[2].clockid, CLOCK_BOOTTIME);
	ck_assert_int_eq(t->posix[2].signo, SIGRTMIN + 1);
	ck_assert_uint_eq(t->posix[2].value, 0x5eed0003u);
	ck_assert_int_eq(t->posix[3].notify, SIGEV_NONE);
	/* The kernel keeps CLOCK_PROCESS_CPUTIME_ID as "CPU clock of process 0 (= self)":
	 * (~pid << 3) | CPUCLOCK_SCHED = -6. */
	ck_assert_int_eq(t->posix[3].clockid, -6);
	ck_assert_uint_gt(t->posix[3].value_ns, 990000000000ull);
	if (!strcmp(mode, "itimer")) {
		ck_assert_uint_eq(t->itimer_interval_ns[ITIMER_REAL], 50000000u);
		ck_assert_uint_le(t->itimer_value_ns[ITIMER_VIRTUAL], 1000020000000ull); /* ticks */
		ck_assert_uint_gt(t->itimer_value_ns[ITIMER_VIRTUAL], 990000000000ull);
	} else {
		ck_assert_uint_eq(t->itimer_interval_ns[ITIMER_REAL], 0);
		ck_assert_uint_gt(t->itimer_value_ns[ITIMER_REAL], 990000000000ull);
	}
	uint64_t clocks[2];
	ck_assert_int_eq(restore_image_clocks(fx_dirfd, "1", &clocks[0], &clocks[1], &err), 0);
	ck_assert_uint_eq(clocks[0], t->mono_ns);
	restore_image_free(img);

	sleep(atoi(DOWN_S)); /* the downtime the helper must not see on its clocks */

	int p[2], res[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(res, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(p[1], 1);
		become_ns_root();
		struct restore_err e = {0};
		int q = restore_timens_enter(clocks, &e);
		if (q == 0) {
			struct restore_process_opts o = {.blob_err_fd = res[1]};
			q = restore_process(fx_dirfd, "1", &o, &e);
		}
		dprintf(res[1], "%d %s\n", q, e.msg);
		_exit(100);
	}
	close(p[1]);
	close(res[1]);
	char got[512] = "";
	stage = "restored helper";
	for (;;) {
		read_line(p[0], line, sizeof(line));
		if (!line[0])
			break;
		strncat(got, line, sizeof(got) - strlen(got) - 1);
		if (!strncmp(line, "ok", 2) || !strncmp(line, "fail", 4))
			break;
	}
	char why[512] = "";
	int st = 0;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	stage = "restorer";
	read_line(res[0], why, sizeof(why));
	ck_assert_msg(strstr(got, "restored") && strstr(got, "\nok\n"),
		      "restored helper said: '%s' (status 0x%x, restorer: %s)", got, st, why);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
	close(p[0]);
	close(res[0]);
}

START_TEST(test_itimers_posix)
{
	roundtrip("itimer");
}
END_TEST

START_TEST(test_alarm_posix)
{
	roundtrip("alarm");
}
END_TEST

/* zdtm-thtimers: a SIGEV_THREAD_ID timer aimed at a worker thread and a glibc SIGEV_THREAD
 * timer (aimed by glibc at its helper thread), both periodic. Dumped, killed, restored twice
 * from the image: at the old pid and tids when root, then at a new pid (new tids: the timer
 * must follow its thread's new tid). Each copy checks from inside that the worker gets its
 * signals and the callback keeps running. */
START_TEST(test_thread_timers)
{
	char line[256];
	pid_t pid = fx_self_start("zdtm-thtimers", NULL, line, sizeof(line), NULL);
	int wtid = -1, wid = -1;
	ck_assert_msg(sscanf(line, "ready %d %d", &wtid, &wid) == 2, "helper said: %s", line);
	fx_self_dump(pid, fx_dirfd, "1");

	/* The image: W aimed at the worker, glibc's timer at another thread (its helper). */
	struct restore_image *img = NULL;
	struct restore_err err = {0};
	ck_assert_int_eq(restore_image_load(fx_dirfd, "1", &img, &err), 0);
	ck_assert_uint_eq(img->timers.nposix, 2);
	int aimed_elsewhere = 0;
	for (size_t i = 0; i < img->timers.nposix; i++) {
		const struct restore_posix_timer *t = &img->timers.posix[i];
		ck_assert_int_eq(t->notify, SIGEV_THREAD_ID);
		ck_assert_int_ne(t->tid, pid);
		aimed_elsewhere += t->tid != wtid;
		if (t->id == wid)
			ck_assert_int_eq(t->tid, wtid);
	}
	ck_assert_int_eq(aimed_elsewhere, 1);
	restore_image_free(img);

	fx_self_restore(fx_dirfd, "1", geteuid() == 0 ? pid : 0, "zdtm-thtimers\n");
	fx_self_restore(fx_dirfd, "1", 0, "zdtm-thtimers\n");
}
END_TEST

/* A SIGEV_THREAD_ID timer whose thread has exited (the kernel keeps it, /proc names the dead
 * tid) cannot be rebuilt: the dump refuses it, naming the timer and the tid, and writes
 * nothing. */
START_TEST(test_refuse_orphan_timer)
{
	char line[256];
	pid_t pid = fx_self_start("zdtm-thtimers", "orphan", line, sizeof(line), NULL);
	int tid = -1, id = -1;
	ck_assert_msg(sscanf(line, "ready %d %d", &tid, &id) == 2, "helper said: %s", line);
	struct restore_freeze *f = NULL;
	struct restore_err err = {0};
	ck_assert_msg(restore_freeze(pid, &f, &err) == 0, "freeze: %s", err.msg);
	int r = restore_dump(f, fx_dirfd, "1", NULL, NULL, &err);
	/* Detach before the kill: a killed thread still traced by us would stay a zombie that
	 * only a waitpid(__WALL) of ours reaps. */
	restore_freeze_resume(f);
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	ck_assert_int_eq(r, -EOPNOTSUPP);
	char want[96];
	snprintf(want, sizeof(want), "POSIX timer %d of pid %d signals thread %d, which is not", id,
		 (int)pid, tid);
	ck_assert_msg(strstr(err.msg, want), "message: %s", err.msg);
	struct stat st;
	ck_assert_int_lt(fstatat(fx_dirfd, "1", &st, 0), 0);
}
END_TEST

/* A synthetic image with @t as its timers: 0 or the load error. */
static int write_and_load(const char *id, const struct restore_timers *t,
			  struct restore_timers *ret)
{
	struct restore_thread th = {.tid = 42};
	struct restore_image m = {.pages_fd = -1, .threads = &th, .nthreads = 1};
	m.proc.pid = 42;
	strcpy(m.proc.comm, "synthetic");
	m.proc.exe = "/bin/true";
	m.proc.cwd = "/";
	m.proc.timers = "";
	m.timers = *t;
	struct restore_image_writer *w = NULL;
	ck_assert_int_eq(restore_image_writer_new(fx_dirfd, id, &w), 0);
	ck_assert_int_eq(restore_image_writer_commit(w, &m), 0);
	restore_image_writer_free(w);
	struct restore_image *img = NULL;
	struct restore_err err = {0};
	int r = restore_image_load(fx_dirfd, id, &img, &err);
	if (r == 0 && ret) {
		*ret = img->timers;
		ret->posix = NULL;
		if (img->timers.nposix) {
			ret->posix = calloc(img->timers.nposix, sizeof(*ret->posix));
			memcpy(ret->posix, img->timers.posix,
			       img->timers.nposix * sizeof(*ret->posix));
		}
	}
	if (r < 0)
		ck_assert_msg(strstr(err.msg, "core.img is corrupt"), "message: %s", err.msg);
	restore_image_free(img);
	return r;
}

START_TEST(test_section)
{
	struct restore_posix_timer p[2] = {
		{.id = 3,
		 .clockid = CLOCK_BOOTTIME,
		 .notify = SIGEV_THREAD_ID,
		 .signo = 40,
		 .value = 0x1122334455667788ull,
		 .tid = 42,
		 .overrun = 5,
		 .value_ns = 7,
		 .interval_ns = 9},
		{.id = 1000000, .clockid = CLOCK_REALTIME, .notify = SIGEV_NONE},
	};
	struct restore_timers t = {.flags = RESTORE_TIMERS_F_VALID,
				   .mono_ns = 123456789,
				   .boot_ns = 223456789,
				   .itimer_value_ns = {1, 2, 3},
				   .itimer_interval_ns = {4, 5, 6},
				   .nposix = 2,
				   .posix = p};
	struct restore_timers got;
	ck_assert_int_eq(write_and_load("1", &t, &got), 0);
	ck_assert_uint_eq(got.mono_ns, t.mono_ns);
	ck_assert_uint_eq(got.boot_ns, t.boot_ns);
	ck_assert_uint_eq(got.itimer_value_ns[2], 3);
	ck_assert_uint_eq(got.itimer_interval_ns[0], 4);
	ck_assert_uint_eq(got.nposix, 2);
	ck_assert_mem_eq(got.posix, p, sizeof(p));
	free(got.posix);

	/* No timers recorded: no section, flags 0; restore_image_clocks says -ENODATA. */
	struct restore_timers none = {0};
	ck_assert_int_eq(write_and_load("2", &none, &got), 0);
	ck_assert_uint_eq(got.flags, 0);
	uint64_t a, b;
	struct restore_err err = {0};
	ck_assert_int_eq(restore_image_clocks(fx_dirfd, "2", &a, &b, &err), -ENODATA);

	/* Values the restorer would pass to the kernel are range-checked by the reader. */
	struct restore_timers bad = t;
	struct restore_posix_timer q[2];
	const char *ids[] = {"3", "4", "5", "6", "7", "8"};
	for (int i = 0; i < 6; i++) {
		memcpy(q, p, sizeof(q));
		bad = t;
		bad.posix = q;
		switch (i) {
		case 0:
			q[1].id = 3;
			break; /* not sorted / duplicate */
		case 1:
			q[0].notify = 2;
			break; /* SIGEV_THREAD: never from the kernel */
		case 2:
			q[0].signo = 65;
			break; /* no such signal */
		case 3:
			q[0].tid = 0;
			break; /* SIGEV_THREAD_ID without a thread */
		case 4:
			bad.mono_ns = 1ull << 63;
			break; /* absurd clock */
		case 5:
			bad.itimer_value_ns[1] = ~0ull;
			break;
		}
		ck_assert_msg(write_and_load(ids[i], &bad, NULL) == -EBADMSG, "case %d accepted",
			      i);
	}
}
END_TEST

/* restore_timens_enter() in a child: the clocks read what we asked, and go on from there. */
START_TEST(test_timens_enter)
{
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		become_ns_root();
		uint64_t want[2] = {5000000000000ull, 7000000000000ull}; /* 5000 s, 7000 s */
		struct restore_err e = {0};
		int r = restore_timens_enter(want, &e);
		uint64_t m = mono_ns(CLOCK_MONOTONIC), b = mono_ns(CLOCK_BOOTTIME);
		/* Frozen once entered: another write is refused. */
		int w = write_file("/proc/self/timens_offsets", "monotonic 1 0\n");
		dprintf(p[1], "%d %llu %llu %d %s\n", r, (unsigned long long)(m - want[0]),
			(unsigned long long)(b - want[1]), w, e.msg);
		/* From inside one (a restored job checkpointed and restored again, or ckptenv
		 * run inside a job): offsets are the host's, ours must be taken out. Lower
		 * values than ours: negative offsets relative to the host are fine too. */
		pid_t g = fork();
		if (g == 0) {
			uint64_t want2[2] = {3000000000ull, 4000000000ull}; /* 3 s, 4 s */
			r = restore_timens_enter(want2, &e);
			m = mono_ns(CLOCK_MONOTONIC);
			b = mono_ns(CLOCK_BOOTTIME);
			dprintf(p[1], "%d %llu %llu 0 %s\n", r, (unsigned long long)(m - want2[0]),
				(unsigned long long)(b - want2[1]), e.msg);
			_exit(0);
		}
		waitpid(g, NULL, 0);
		_exit(0);
	}
	close(p[1]);
	for (int round = 0; round < 2; round++) {
		char line[512];
		read_line(p[0], line, sizeof(line));
		int r = -1, w = 0;
		unsigned long long dm = 0, db = 0;
		ck_assert_msg(sscanf(line, "%d %llu %llu %d", &r, &dm, &db, &w) == 4 && r == 0,
			      "child %d: %s", round, line);
		/* Read right after entering: within a second (not below: no wrap to huge). */
		ck_assert_msg(dm < 1000000000ull && db < 1000000000ull,
			      "round %d: clocks off by %llu / %llu ns", round, dm, db);
		if (round == 0)
			ck_assert_int_lt(w, 0);
	}
	waitpid(pid, NULL, 0);
	close(p[0]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("restore-timers");
	TCase *tc = tcase_create("timers");
	tcase_add_checked_fixture(tc, fx_dir_setup, fx_dir_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_section);
	tcase_add_test(tc, test_timens_enter);
	tcase_add_test(tc, test_itimers_posix);
	tcase_add_test(tc, test_alarm_posix);
	tcase_add_test(tc, test_thread_timers);
	tcase_add_test(tc, test_refuse_orphan_timer);
	suite_add_tcase(s, tc);
	return ck_run_suite(s);
}
