/* zdtm-style helper for multi-threaded restores: eight worker threads spin in a register-heavy
 * loop (13 general registers, zmm0..zmm31 and k1..k7, each thread from its own seeds, its state
 * reached through a TLS pointer so that fs base matters) and check their registers against the
 * block count after every block; they also pass a token round robin under a mutex and a condvar,
 * and two more threads play ping-pong with a blocking mutex/condvar handoff (so some threads
 * are always asleep in futex_wait); one more thread creates and joins short-lived ones back to
 * back (named "transient"), so a freeze meets threads being born and dying. Every thread has
 * TLS values of its own and a name; the odd workers block SIGUSR2, of which worker 1 has one
 * pending addressed to it; the even workers have alternate signal stacks of their own. The
 * main thread prints "tick TOTAL" (blocks of all workers) every 20 ms on OUT_FD, "tids MAIN
 * W0..W7 P0 P1 CHURN" and "ready" once every thread runs and every worker has done two blocks,
 * and "fail WHY" as soon as a thread sees something wrong.
 *
 *   zdtm-threads OUT_FD [anytid]
 *
 * SIGUSR1 makes it verify (every thread still progressing and correct, its tid unchanged unless
 * "anytid", rseq registered, TLS, names, masks, alternate stacks, the pending SIGUSR2, handoffs
 * and thread creation going on), print "ok" or "fail WHY" and exit 0 or 1.
 *
 * NOT TO BE BUILT WITH SANITIZERS: it is checkpointed. */
#include <cpuid.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NW    8 /* spinning workers */
#define ITERS 50000ull

/* Each thread's register state, reached through a TLS pointer. */
struct regs;
static __thread struct regs *tl_st __attribute__((used));
static __thread volatile uint64_t tl_out __attribute__((used)); /* written by the asm */
#define ZDTM_REGS_LOAD	 "%%fs:tl_st@tpoff"
#define ZDTM_REGS_OUT	 "%%fs:tl_out@tpoff"
#define ZDTM_REGS_DONE() (tl_st->g[0] = tl_out)
#include "zdtm-regs.h"

struct worker {
	pthread_t th;
	int idx;
	pid_t tid;
	struct regs st, st0;
	volatile uint64_t blocks;
	const char *volatile fail;
	volatile uint64_t seen_checks; /* verification requests answered */
};

static struct worker w[NW];
static char altstacks[NW][32 << 10]; /* each even worker's alternate signal stack */
static int out_fd, have_avx512, any_tid;
static volatile sig_atomic_t verify_req;
static pthread_mutex_t ring_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ring_cv = PTHREAD_COND_INITIALIZER;
static int ring_turn;
static uint64_t ring_passes;
static pthread_mutex_t pp_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pp_cv = PTHREAD_COND_INITIALIZER;
static int pp_ball;
static uint64_t pp_count;
static pid_t pp_tid[2];
static volatile pid_t churn_tid;
static const char *volatile pp_fail;
static pthread_mutex_t churn_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t churn_count;

static __thread uint64_t tl_magic = 0x5eed;
static __thread char tl_buf[64];

static uint64_t tls_magic(int idx)
{
	return 0x7153000000000000ull | (uint64_t)idx << 32 | 0xabcdu;
}

static void tls_set(int idx)
{
	tl_magic = tls_magic(idx);
	snprintf(tl_buf, sizeof(tl_buf), "thread-local of %d", idx);
}

static const char *tls_check(int idx)
{
	char want[64];
	snprintf(want, sizeof(want), "thread-local of %d", idx);
	if (tl_magic != tls_magic(idx) || strcmp(tl_buf, want) != 0)
		return "TLS value";
	return NULL;
}

static void seed(struct worker *me)
{
	uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(me->idx + 1);
	for (int i = 0; i < NG; i++)
		me->st0.g[i] = s ^ ((uint64_t)i << 40);
	for (int i = 1; i < 8; i++)
		me->st0.k[i] = (s >> i) & 0xffff0000ffffull;
	me->st0.k[7] |= 1;
	for (int i = 0; i < 32; i++)
		for (int j = 0; j < 8; j++)
			me->st0.z[i][j] = (s * (uint64_t)(i * 8 + j + 1)) | (i == 31);
	me->st = me->st0;
}

static pid_t gettid_(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* The checks a thread can only make on itself: tid, TLS, name, mask, pending signals. */
static const char *self_check(int idx, pid_t tid, const char *name)
{
	if (!any_tid && gettid_() != tid)
		return "tid changed";
	const char *e = tls_check(idx);
	if (e)
		return e;
	char got[16] = "";
	if (pthread_getname_np(pthread_self(), got, sizeof(got)) != 0 || strcmp(got, name) != 0)
		return "thread name";
	if (__rseq_size > 0) {
		/* Registered again with glibc's area: cpu_id is set, and a second registration of
		 * the same area is refused with EBUSY (glibc registers at least 32 bytes; its
		 * __rseq_size is the size of the features in use, 20). */
		struct rseq *rs = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
		unsigned len = __rseq_size < 32 ? 32 : __rseq_size;
		if ((int32_t)rs->cpu_id < 0)
			return "rseq not registered";
		if (syscall(SYS_rseq, rs, len, 0, RSEQ_SIG) == 0 || errno != EBUSY)
			return "rseq registration";
	}
	stack_t ss;
	if (sigaltstack(NULL, &ss) < 0)
		return "sigaltstack";
	if (idx >= 0 && idx % 2 == 0 &&
	    (ss.ss_sp != altstacks[idx] || ss.ss_size != sizeof(altstacks[idx]) || ss.ss_flags))
		return "alternate signal stack";
	if ((idx < 0 || idx % 2) && !(ss.ss_flags & SS_DISABLE))
		return "an alternate signal stack where none was set";
	sigset_t m, p;
	pthread_sigmask(SIG_BLOCK, NULL, &m);
	if (idx >= 0 && sigismember(&m, SIGUSR2) != (idx % 2))
		return "signal mask";
	sigpending(&p);
	if (idx >= 0 && sigismember(&p, SIGUSR2) != (idx == 1))
		return "pending SIGUSR2";
	return NULL;
}

static void *worker_main(void *arg)
{
	struct worker *me = arg;
	char name[16];
	snprintf(name, sizeof(name), "worker%d", me->idx);
	pthread_setname_np(pthread_self(), name);
	me->tid = gettid_();
	tls_set(me->idx);
	tl_st = &me->st;
	sigset_t s; /* created with SIGUSR2 blocked: the even ones unblock it */
	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	pthread_sigmask(me->idx % 2 ? SIG_BLOCK : SIG_UNBLOCK, &s, NULL);
	if (me->idx % 2 == 0) {
		stack_t ss = {.ss_sp = altstacks[me->idx], .ss_size = sizeof(altstacks[me->idx])};
		if (sigaltstack(&ss, NULL) < 0)
			me->fail = "cannot set an alternate signal stack";
	}
	uint64_t answered = 0;
	for (;;) {
		if (have_avx512)
			block_avx512();
		else
			block_gpr();
		uint64_t b = me->blocks + 1;
		if (!me->fail && !regs_check(&me->st, &me->st0, b, have_avx512))
			me->fail = "registers";
		if (!me->fail && tl_st != &me->st)
			me->fail = "TLS pointer";
		me->blocks = b;
		pthread_mutex_lock(&ring_mu);
		if (ring_turn == me->idx) {
			ring_turn = (ring_turn + 1) % NW;
			ring_passes++;
			pthread_cond_broadcast(&ring_cv);
		}
		pthread_mutex_unlock(&ring_mu);
		if (verify_req && answered == 0) {
			const char *e = self_check(me->idx, me->tid, name);
			if (e && !me->fail)
				me->fail = e;
			answered = 1;
			me->seen_checks = 1;
		}
	}
	return NULL;
}

/* Ping-pong: thread @i waits for the ball to be @i, then hands it to the other. */
static void *pp_main(void *arg)
{
	int i = (int)(intptr_t)arg;
	char name[16];
	snprintf(name, sizeof(name), "pingpong%d", i);
	pthread_setname_np(pthread_self(), name);
	pp_tid[i] = gettid_();
	tls_set(100 + i);
	for (;;) {
		pthread_mutex_lock(&pp_mu);
		while (pp_ball != i)
			pthread_cond_wait(&pp_cv, &pp_mu);
		pp_ball = !i;
		pp_count++;
		const char *e = tls_check(100 + i);
		if (!e && !any_tid && gettid_() != pp_tid[i])
			e = "ping-pong tid changed";
		if (e && !pp_fail)
			pp_fail = e;
		pthread_cond_signal(&pp_cv);
		pthread_mutex_unlock(&pp_mu);
		struct timespec ts = {0, 200 * 1000};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	return NULL;
}

/* A short-lived thread: named "transient", it checks its TLS starts fresh and exits. */
static void *transient_main(void *arg)
{
	pthread_setname_np(pthread_self(), "transient");
	if (tl_magic != 0x5eed)
		return (void *)"fresh TLS of a new thread";
	tls_set(200);
	return arg;
}

/* Creates and joins threads back to back: the freeze meets threads being born and dying, and a
 * restored process must still create threads (glibc's thread list and stack cache) and join
 * them (the kernel's clear_child_tid wake-up, set again by the restorer). */
static void *churn_main(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "churn");
	tls_set(300);
	churn_tid = gettid_();
	for (;;) {
		pthread_t t;
		void *ret = NULL;
		if (pthread_create(&t, NULL, transient_main, NULL) != 0) {
			pp_fail = "pthread_create";
			return NULL;
		}
		if (pthread_join(t, &ret) != 0 || ret) {
			pp_fail = ret ? ret : "pthread_join";
			return NULL;
		}
		const char *e = tls_check(300);
		if (e && !pp_fail)
			pp_fail = e;
		pthread_mutex_lock(&churn_mu);
		churn_count++;
		pthread_mutex_unlock(&churn_mu);
		struct timespec ts = {0, 500 * 1000};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	return NULL;
}

static void on_usr1(int sig)
{
	(void)sig;
	verify_req = 1;
}

static uint64_t total_blocks(void)
{
	uint64_t t = 0;
	for (int i = 0; i < NW; i++)
		t += w[i].blocks;
	return t;
}

static const char *any_fail(void)
{
	for (int i = 0; i < NW; i++)
		if (w[i].fail)
			return w[i].fail;
	return pp_fail;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static uint64_t locked_get(pthread_mutex_t *mu, uint64_t *v)
{
	pthread_mutex_lock(mu);
	uint64_t r = *v;
	pthread_mutex_unlock(mu);
	return r;
}

/* Everything must go on: each worker does blocks and answers, the token and the ball move. */
static const char *verify(void)
{
	uint64_t b0[NW], ring0 = locked_get(&ring_mu, &ring_passes);
	uint64_t pp0 = locked_get(&pp_mu, &pp_count);
	uint64_t churn0 = locked_get(&churn_mu, &churn_count);
	for (int i = 0; i < NW; i++)
		b0[i] = w[i].blocks;
	const char *e = self_check(-1, (pid_t)getpid(), "zdtm-threads");
	if (e)
		return e;
	for (int tries = 0; tries < 3000; tries++) { /* 60 s */
		int done = 1;
		for (int i = 0; i < NW; i++)
			done &= w[i].seen_checks && w[i].blocks > b0[i] + 1;
		done &= locked_get(&ring_mu, &ring_passes) > ring0 + NW;
		done &= locked_get(&pp_mu, &pp_count) > pp0 + 2;
		done &= locked_get(&churn_mu, &churn_count) > churn0 + 2;
		if (done || any_fail())
			break;
		sleep_ms(20);
	}
	if (any_fail())
		return any_fail();
	for (int i = 0; i < NW; i++)
		if (!w[i].seen_checks || w[i].blocks <= b0[i] + 1)
			return "a worker stopped";
	if (locked_get(&ring_mu, &ring_passes) <= ring0 + NW)
		return "the token ring stopped";
	if (locked_get(&pp_mu, &pp_count) <= pp0 + 2)
		return "the ping-pong stopped";
	if (locked_get(&churn_mu, &churn_count) <= churn0 + 2)
		return "thread creation and join stopped";
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: zdtm-threads OUT_FD [anytid]\n");
		return 2;
	}
	out_fd = atoi(argv[1]);
	any_tid = argc > 2 && strcmp(argv[2], "anytid") == 0;
	unsigned a, b, c, d;
	__cpuid_count(7, 0, a, b, c, d);
	have_avx512 = (b & (1u << 16)) && (b & (1u << 30)); /* avx512f, avx512bw */
	(void)a, (void)c, (void)d;
	tls_set(-1);
	pthread_setname_np(pthread_self(), "zdtm-threads");
	signal(SIGUSR1, on_usr1);
	/* SIGUSR2 stays pending on worker 1 (which blocks it) from before the checkpoint. */
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &s, NULL); /* inherited by workers; the even ones unblock */
	for (int i = 0; i < NW; i++) {
		w[i].idx = i;
		seed(&w[i]);
	}
	for (int i = 0; i < NW; i++)
		if (pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0)
			return 3;
	pthread_t pp[2];
	for (int i = 0; i < 2; i++)
		if (pthread_create(&pp[i], NULL, pp_main, (void *)(intptr_t)i) != 0)
			return 3;
	pthread_t churn;
	if (pthread_create(&churn, NULL, churn_main, NULL) != 0)
		return 3;
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	int ready = 0;
	for (;;) {
		const char *e = any_fail();
		if (e) {
			dprintf(out_fd, "fail %s\n", e);
			return 1;
		}
		if (verify_req) {
			e = verify();
			dprintf(out_fd, e ? "fail %s\n" : "ok\n", e);
			return e ? 1 : 0;
		}
		if (!ready) {
			ready = 1;
			for (int i = 0; i < NW; i++)
				ready &= w[i].blocks >= 2 && w[i].tid != 0;
			ready &= pp_tid[0] && pp_tid[1] && locked_get(&churn_mu, &churn_count) > 2;
			if (ready) {
				pthread_kill(w[1].th, SIGUSR2);
				char l[256];
				int n = snprintf(l, sizeof(l), "tids %d", (int)getpid());
				for (int i = 0; i < NW; i++)
					n += snprintf(l + n, sizeof(l) - (size_t)n, " %d", (int)w[i].tid);
				snprintf(l + n, sizeof(l) - (size_t)n, " %d %d %d\n", (int)pp_tid[0],
					 (int)pp_tid[1], (int)churn_tid);
				dprintf(out_fd, "%sready\n", l);
			}
		}
		dprintf(out_fd, "tick %llu\n", (unsigned long long)total_blocks());
		sleep_ms(20);
	}
}
