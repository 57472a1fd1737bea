/* zdtm-style helper for POSIX timers aimed at a thread other than the main one.
 *
 *   zdtm-thtimers [orphan]
 *
 * Sets up two periodic (20 ms) CLOCK_MONOTONIC timers:
 *   W  SIGEV_THREAD_ID to a worker thread, SIGUSR1, value 0x7e1: the handler checks that it runs
 *      in the worker (pthread_self, not a cached tid: a restore at another pid gives new tids)
 *      and that the signal came from timer W (SI_TIMER, si_timerid, si_value);
 *   T  glibc's SIGEV_THREAD, value 0x7e2: glibc aims the kernel timer at its helper thread
 *      (SIGEV_THREAD_ID), which starts a thread running the callback at each expiry; the
 *      callback checks its value.
 * The main thread does not block SIGUSR1, so a timer W recreated as process-directed would
 * mostly hit it. Once both have fired 5 times it prints "ready WORKER_TID ID_W". On SIGUSR2 (sent
 * after a restore) it verifies from inside: both timers still exist at their ids with their
 * 20 ms period, W keeps hitting the worker and T keeps calling back (10 more each within 20 s),
 * nothing came wrong; then prints "ok" (exit 0) or "fail: WHY" (exit 1).
 * With "orphan": only a timer aimed at a thread that has exited since (the kernel keeps it and
 * /proc still names the dead tid): prints "ready DEAD_TID ID" and waits; a dump must refuse it.
 *
 * NOT TO BE BUILT WITH SANITIZERS: it is checkpointed. */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define VAL_W  0x7e1ul
#define VAL_T  0x7e2ul
#define PERIOD 20000000l /* ns */

static pthread_t worker;
static volatile pid_t worker_tid;
static timer_t tw, tt;
static int id_w;
static volatile int n_w, n_t, bad, verify_asked;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	if (!pthread_equal(pthread_self(), worker))
		bad = 1;
	else if (si->si_code != SI_TIMER || si->si_timerid != id_w ||
		 (unsigned long)si->si_value.sival_ptr != VAL_W)
		bad = 2;
	__atomic_add_fetch(&n_w, 1, __ATOMIC_SEQ_CST);
}

static void on_usr2(int sig)
{
	(void)sig;
	verify_asked = 1;
}

static void callback(union sigval v)
{
	if ((unsigned long)v.sival_ptr != VAL_T)
		bad = 3;
	__atomic_add_fetch(&n_t, 1, __ATOMIC_SEQ_CST);
}

static void *work(void *arg)
{
	(void)arg;
	worker_tid = gettid();
	for (;;)
		pause();
	return NULL;
}

/* Wait until both counters reach their goals, 20 s at most. */
static bool wait_counts(int w, int t)
{
	for (int i = 0; i < 10000; i++) {
		if (__atomic_load_n(&n_w, __ATOMIC_SEQ_CST) >= w &&
		    __atomic_load_n(&n_t, __ATOMIC_SEQ_CST) >= t)
			return true;
		usleep(2000);
	}
	return false;
}

static int verify(void)
{
	struct itimerspec w, t;
	if (timer_gettime(tw, &w) < 0 || timer_gettime(tt, &t) < 0)
		return printf("fail: a timer is gone after the restore\n"), 1;
	if (w.it_interval.tv_nsec != PERIOD || t.it_interval.tv_nsec != PERIOD)
		return printf("fail: periods %ld / %ld ns\n", w.it_interval.tv_nsec,
			      t.it_interval.tv_nsec),
		       1;
	int gw = n_w + 10, gt = n_t + 10;
	if (!wait_counts(gw, gt))
		return printf("fail: timers stopped: W %d of %d, T %d of %d\n", n_w, gw, n_t, gt),
		       1;
	if (bad)
		return printf("fail: %s\n",
			      bad == 1	 ? "timer W signalled another thread"
			      : bad == 2 ? "timer W's signal has a wrong siginfo"
					 : "the SIGEV_THREAD callback got a wrong value"),
		       1;
	printf("ok\n");
	return 0;
}

static volatile int orphan_go;

static void *short_lived(void *arg)
{
	worker_tid = gettid();
	while (!orphan_go)
		usleep(1000);
	return arg;
}

/* A SIGEV_THREAD_ID timer whose thread is gone. */
static int orphan(void)
{
	pthread_t th;
	if (pthread_create(&th, NULL, short_lived, NULL) != 0)
		return fprintf(stderr, "zdtm-thtimers: pthread_create failed\n"), 2;
	while (!worker_tid)
		usleep(1000);
	struct sigevent sw = {.sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGUSR1};
	sw._sigev_un._tid = worker_tid;
	if (timer_create(CLOCK_MONOTONIC, &sw, &tw) < 0) {
		perror("zdtm-thtimers: timer_create");
		return 2;
	}
	orphan_go = 1;
	pthread_join(th, NULL);
	printf("ready %d %d\n", (int)worker_tid, (int)(intptr_t)tw);
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && !strcmp(argv[1], "orphan"))
		return orphan();
	struct sigaction sa = {.sa_sigaction = on_usr1, .sa_flags = SA_SIGINFO | SA_RESTART};
	sigaction(SIGUSR1, &sa, NULL);
	struct sigaction s2 = {.sa_handler = on_usr2, .sa_flags = SA_RESTART};
	sigaction(SIGUSR2, &s2, NULL);
	if (pthread_create(&worker, NULL, work, NULL) != 0)
		return fprintf(stderr, "zdtm-thtimers: pthread_create failed\n"), 2;
	while (!worker_tid)
		usleep(1000);
	struct sigevent sw = {.sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGUSR1};
	sw.sigev_value.sival_ptr = (void *)VAL_W;
	sw._sigev_un._tid = worker_tid;
	struct sigevent st = {.sigev_notify = SIGEV_THREAD, .sigev_notify_function = callback};
	st.sigev_value.sival_ptr = (void *)VAL_T;
	if (timer_create(CLOCK_MONOTONIC, &sw, &tw) < 0 ||
	    timer_create(CLOCK_MONOTONIC, &st, &tt) < 0) {
		perror("zdtm-thtimers: timer_create");
		return 2;
	}
	id_w = (int)(intptr_t)tw; /* glibc's timer_t is the kernel's id for signal timers */
	struct itimerspec p = {{0, PERIOD}, {0, PERIOD}};
	if (timer_settime(tw, 0, &p, NULL) < 0 || timer_settime(tt, 0, &p, NULL) < 0) {
		perror("zdtm-thtimers: timer_settime");
		return 2;
	}
	if (!wait_counts(5, 5))
		return printf("fail: timers do not fire before the checkpoint\n"), 1;
	printf("ready %d %d\n", (int)worker_tid, id_w);
	while (!verify_asked)
		usleep(2000);
	return verify();
}
