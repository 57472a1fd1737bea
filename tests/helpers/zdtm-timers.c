/* zdtm-style helper for timers and clocks across checkpoint/restore.
 *
 *   zdtm-timers MODE DOWNTIME [continuous [B_DELAY]]
 *
 * Sets up, then prints "ready ID_A ID_B":
 *   timer A  POSIX, CLOCK_MONOTONIC, relative 100 ms, period 100 ms, SIGUSR1, value 0x5eed0001
 *   timer B  POSIX, CLOCK_MONOTONIC, absolute deadline start + B_DELAY s (default 8): one shot,
 *            SIGUSR2,
 *            value 0x5eed0002
 *   timer C  POSIX, CLOCK_BOOTTIME, SIGEV_THREAD_ID to the main thread, 150 ms period, signal
 *            SIGRTMIN+1, value 0x5eed0003 (the thread id is a new one after a restore in a
 *            fresh pid namespace or process)
 *   timer D  POSIX, CLOCK_PROCESS_CPUTIME_ID, SIGEV_NONE, 1000 s of CPU time (never due here)
 *   MODE itimer: ITIMER_REAL 50 ms period (SIGALRM), ITIMER_VIRTUAL 1000 s, ITIMER_PROF 500 s
 *            with a 500 s period (CPU time: never due here);
 *   MODE alarm:  alarm(1000) (alarm() is ITIMER_REAL: the two modes cover it both ways);
 *   MODE itimer-threads: itimer, plus two threads that sleep in pause() (process-directed timer
 *            signals may land on any thread; the restored threads must not lose them);
 * Then samples CLOCK_MONOTONIC, CLOCK_BOOTTIME and CLOCK_REALTIME every 2 ms: neither of the first
 * two may ever go back. A CLOCK_REALTIME gap of more than DOWNTIME/2 seconds is the restore
 * (the test stays down DOWNTIME seconds between the kill and the restore): it prints
 * "restored jump_ms=J gap_ms=G" and, with "continuous", requires that CLOCK_MONOTONIC and
 * CLOCK_BOOTTIME did not jump by the downtime (J <= G - DOWNTIME + 250 ms: the time namespace).
 * Then it verifies, from inside:
 *   - the four timer ids still exist (timer_gettime, /proc/self/timers) and every signal of A,
 *     B and C came with SI_TIMER, the right si_timerid and the right si_value;
 *   - C keeps firing; D has time left in (990 s, 1000 s];
 *   - A is armed with its period and at most 100 ms left, and keeps firing (10 more);
 *   - B fires at its deadline on the monotonic clock, not before (kernel) nor > 1 s after;
 *   - itimer: SIGALRM keeps coming; VIRTUAL/PROF have time left in (limit - 10 s, limit];
 *     alarm: what is left of the alarm matches the monotonic time elapsed since it was set;
 * and prints "ok" (exit 0) or "fail: WHY" (exit 1). Nothing before the restore prints more.
 *
 * NOT TO BE BUILT WITH SANITIZERS: it is checkpointed. */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define VAL_A 0x5eed0001ul
#define VAL_B 0x5eed0002ul
#define VAL_C 0x5eed0003ul
#define MS    1000000ll
#define SEC   1000000000ll

static timer_t ta, tb, tc, td;
static int id_a, id_b, id_c, id_d;
static volatile sig_atomic_t n_a, n_b, n_c, n_alrm, bad;
static volatile int64_t b_fired_at;
static char why[160];

static int64_t now(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return ts.tv_sec * SEC + ts.tv_nsec;
}

static int64_t ts_ns(const struct timespec *t)
{
	return t->tv_sec * SEC + t->tv_nsec;
}

static int64_t tv_ns(const struct timeval *t)
{
	return t->tv_sec * SEC + t->tv_usec * 1000;
}

static void on_timer(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	bool a = sig == SIGUSR1, c = sig == SIGRTMIN + 1;
	int id = a ? id_a : c ? id_c : id_b;
	unsigned long val = a ? VAL_A : c ? VAL_C : VAL_B;
	if (si->si_code != SI_TIMER || si->si_timerid != id ||
	    (unsigned long)si->si_value.sival_ptr != val)
		bad = sig;
	if (a) {
		n_a++;
	} else if (c) {
		n_c++;
	} else {
		b_fired_at = now(CLOCK_MONOTONIC);
		n_b++;
	}
}

static void on_alrm(int sig)
{
	(void)sig;
	n_alrm++;
}

static void *sleeper(void *arg)
{
	for (;;)
		pause();
	return arg;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	printf("fail: %s\n", why);
	return 1;
}

static timer_t make_timer(clockid_t clk, int notify, int sig, unsigned long val, int *ret_id)
{
	struct sigevent se = {.sigev_notify = notify, .sigev_signo = sig};
	se.sigev_value.sival_ptr = (void *)val;
	if (notify == SIGEV_THREAD_ID)
		se._sigev_un._tid = gettid();
	timer_t t;
	if (timer_create(clk, &se, &t) < 0) {
		perror("zdtm-timers: timer_create");
		exit(2);
	}
	*ret_id = (int)(intptr_t)t; /* glibc's timer_t is the kernel's id */
	return t;
}

/* Wait (sampling clocks) until @cond holds or 20 s of monotonic time pass. */
static bool wait_for(bool (*cond)(void))
{
	int64_t end = now(CLOCK_MONOTONIC) + 20 * SEC;
	while (!cond() && now(CLOCK_MONOTONIC) < end)
		usleep(2000);
	return cond();
}

static sig_atomic_t a_goal, c_goal, alrm_goal;
static bool a_more(void)
{
	return n_a >= a_goal && n_c >= c_goal && n_alrm >= alrm_goal;
}
static bool b_done(void)
{
	return n_b > 0;
}

static bool listed(int id)
{
	FILE *f = fopen("/proc/self/timers", "r");
	if (!f)
		return false;
	char line[128];
	bool found = false;
	while (fgets(line, sizeof(line), f)) {
		int x;
		if (sscanf(line, "ID: %d", &x) == 1 && x == id)
			found = true;
	}
	fclose(f);
	return found;
}

static int nthreads(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[128];
	int n = -1;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

static int want_threads = 1;

static int verify(bool itimer, int64_t b_deadline, int64_t alarm_set)
{
	if (nthreads() != want_threads)
		return fail("%d threads after the restore, %d before", nthreads(), want_threads);
	struct itimerspec its;
	if (timer_gettime(ta, &its) < 0 || timer_gettime(tb, &its) < 0 ||
	    timer_gettime(tc, &its) < 0 || timer_gettime(td, &its) < 0)
		return fail("timer ids %d/%d/%d/%d are gone after the restore", id_a, id_b, id_c,
			    id_d);
	if (!listed(id_a) || !listed(id_b) || !listed(id_c) || !listed(id_d))
		return fail("/proc/self/timers does not list ids %d, %d, %d and %d", id_a, id_b,
			    id_c, id_d);
	timer_gettime(td, &its);
	if (ts_ns(&its.it_value) > 1000 * SEC + 20 * MS || ts_ns(&its.it_value) < 990 * SEC)
		return fail("timer D has %lld ns of CPU time left",
			    (long long)ts_ns(&its.it_value));
	timer_gettime(ta, &its);
	if (ts_ns(&its.it_interval) != 100 * MS || ts_ns(&its.it_value) <= 0 ||
	    ts_ns(&its.it_value) > 100 * MS)
		return fail("timer A: period %lld ns, left %lld ns",
			    (long long)ts_ns(&its.it_interval), (long long)ts_ns(&its.it_value));
	if (itimer) {
		struct itimerval v;
		getitimer(ITIMER_VIRTUAL, &v);
		/* CPU-time timers are kept in scheduler ticks: a few ms above is fine. */
		if (tv_ns(&v.it_value) > 1000 * SEC + 20 * MS || tv_ns(&v.it_value) < 990 * SEC)
			return fail("ITIMER_VIRTUAL has %lld ns left",
				    (long long)tv_ns(&v.it_value));
		getitimer(ITIMER_PROF, &v);
		if (tv_ns(&v.it_value) > 500 * SEC + 20 * MS || tv_ns(&v.it_value) < 490 * SEC ||
		    tv_ns(&v.it_interval) != 500 * SEC)
			return fail("ITIMER_PROF has %lld ns left, period %lld",
				    (long long)tv_ns(&v.it_value),
				    (long long)tv_ns(&v.it_interval));
	} else {
		struct itimerval v;
		getitimer(ITIMER_REAL, &v);
		int64_t want = alarm_set + 1000 * SEC - now(CLOCK_MONOTONIC);
		int64_t d = tv_ns(&v.it_value) - want;
		if (d < -200 * MS || d > 200 * MS)
			return fail("alarm: %lld ns left, %lld expected from the monotonic clock",
				    (long long)tv_ns(&v.it_value), (long long)want);
	}
	a_goal = n_a + 10;
	c_goal = n_c + 5;
	alrm_goal = itimer ? n_alrm + 10 : 0;
	if (!wait_for(a_more))
		return fail("timers stopped: A %d, C %d, SIGALRM %d", (int)n_a, (int)n_c,
			    (int)n_alrm);
	if (n_b)
		return fail("timer B fired before the checkpoint (machine too slow?)");
	if (!wait_for(b_done))
		return fail("timer B (deadline %lld ms) never fired", (long long)(b_deadline / MS));
	if (b_fired_at < b_deadline || b_fired_at > b_deadline + SEC)
		return fail("timer B fired at %lld ms, deadline %lld ms",
			    (long long)(b_fired_at / MS), (long long)(b_deadline / MS));
	if (bad)
		return fail("signal %d came with a wrong si_code, si_timerid or si_value",
			    (int)bad);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3 || (strcmp(argv[1], "itimer") && strcmp(argv[1], "alarm") &&
			 strcmp(argv[1], "itimer-threads"))) {
		fprintf(stderr, "usage: zdtm-timers itimer|alarm|itimer-threads DOWNTIME_S "
				"[continuous [B_DELAY_S]]\n");
		return 2;
	}
	bool itimer = strcmp(argv[1], "alarm") != 0;
	int64_t down = atoi(argv[2]) * SEC;
	bool continuous = argc > 3 && !strcmp(argv[3], "continuous");
	int64_t b_delay = (argc > 4 ? atoi(argv[4]) : 8) * SEC;
	setvbuf(stdout, NULL, _IOLBF, 0);

	struct sigaction sa = {.sa_sigaction = on_timer, .sa_flags = SA_SIGINFO | SA_RESTART};
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	struct sigaction sa2 = {.sa_handler = on_alrm, .sa_flags = SA_RESTART};
	sigaction(SIGALRM, &sa2, NULL);

	sigaction(SIGRTMIN + 1, &sa, NULL);
	ta = make_timer(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGUSR1, VAL_A, &id_a);
	tb = make_timer(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGUSR2, VAL_B, &id_b);
	tc = make_timer(CLOCK_BOOTTIME, SIGEV_THREAD_ID, SIGRTMIN + 1, VAL_C, &id_c);
	td = make_timer(CLOCK_PROCESS_CPUTIME_ID, SIGEV_NONE, 0, 0, &id_d);
	int64_t start = now(CLOCK_MONOTONIC), b_deadline = start + b_delay;
	struct itimerspec a = {{0, 100 * MS}, {0, 100 * MS}};
	struct itimerspec b = {{0, 0}, {b_deadline / SEC, b_deadline % SEC}};
	struct itimerspec c = {{0, 150 * MS}, {0, 150 * MS}}, d = {{0, 0}, {1000, 0}};
	if (timer_settime(ta, 0, &a, NULL) < 0 || timer_settime(tb, TIMER_ABSTIME, &b, NULL) < 0 ||
	    timer_settime(tc, 0, &c, NULL) < 0 || timer_settime(td, 0, &d, NULL) < 0) {
		perror("zdtm-timers: timer_settime");
		return 2;
	}
	int64_t alarm_set = 0;
	if (itimer) {
		struct itimerval r = {{0, 50000}, {0, 50000}}, v = {{0, 0}, {1000, 0}},
				 p = {{500, 0}, {500, 0}};
		setitimer(ITIMER_REAL, &r, NULL);
		setitimer(ITIMER_VIRTUAL, &v, NULL);
		setitimer(ITIMER_PROF, &p, NULL);
	} else {
		alarm_set = now(CLOCK_MONOTONIC);
		alarm(1000);
	}
	for (int i = 0; !strcmp(argv[1], "itimer-threads") && i < 2; i++) {
		pthread_t th;
		want_threads++;
		if (pthread_create(&th, NULL, sleeper, NULL) != 0) {
			fprintf(stderr, "zdtm-timers: pthread_create failed\n");
			return 2;
		}
	}
	/* Sampled before "ready": a checkpoint taken any time after it finds them in memory. */
	int64_t pm = now(CLOCK_MONOTONIC), pb = now(CLOCK_BOOTTIME), pr = now(CLOCK_REALTIME);
	printf("ready %d %d\n", id_a, id_b);
	for (;;) {
		usleep(2000);
		int64_t m = now(CLOCK_MONOTONIC), bt = now(CLOCK_BOOTTIME), r = now(CLOCK_REALTIME);
		if (m < pm || bt < pb) {
			printf("fail: a clock went back: monotonic %lld -> %lld, boottime %lld -> "
			       "%lld\n",
			       (long long)pm, (long long)m, (long long)pb, (long long)bt);
			return 1;
		}
		if (r - pr > down / 2) {
			int64_t jump = m - pm > bt - pb ? m - pm : bt - pb, gap = r - pr;
			printf("restored jump_ms=%lld gap_ms=%lld\n", (long long)(jump / MS),
			       (long long)(gap / MS));
			if (continuous && jump > gap - down + 250 * MS)
				return fail("the clocks jumped by %lld ms over a %lld ms gap with "
					    "%lld ms of downtime",
					    (long long)(jump / MS), (long long)(gap / MS),
					    (long long)(down / MS));
			if (verify(itimer, b_deadline, alarm_set))
				return 1;
			printf("ok\n");
			return 0;
		}
		pm = m;
		pb = bt;
		pr = r;
	}
}
