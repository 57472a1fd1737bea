/* Timers and clocks of a frozen process, read from inside it (dump_timers()).
 *
 * The kernel tells a tracer which POSIX timers exist (/proc/PID/timers: id, signal and
 * sigev_value, notify kind and target, clock) but not how they are armed, and nothing at all of
 * the itimers. So, in one injection session of its own (inject.c) on the leader: getitimer x3,
 * timer_gettime + timer_getoverrun per POSIX timer, then clock_gettime of CLOCK_MONOTONIC and
 * CLOCK_BOOTTIME (the process's own view, its time namespace's offsets included). Each injected
 * call costs a ptrace round trip (tens of microseconds, more on a loaded machine): with the
 * clocks read last, "deadline = clock + time left" as the restorer computes it is never earlier
 * than the real deadline, only late by that much. Results go to a scratch page mmap'ed in the
 * target and unmapped before the dump reads the memory maps. A separate session rather than a
 * part of inject_collect(): one more PTRACE_GETREGS/SETREGS pair, and the two evolve
 * independently. */
#include "restore/dump-internal.h"

#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>

/* Scratch page layout. */
#define SCR_CLOCKS  0	/* 2 x struct timespec (16 bytes) */
#define SCR_ITIMERS 64	/* 3 x struct itimerval (32 bytes) */
#define SCR_POSIX   256 /* struct itimerspec (32 bytes) per timer, in batches */
#define SCR_BATCH   ((RESTORE_PAGE_SIZE - SCR_POSIX) / 32)

static uint64_t ts_ns(const uint8_t *p) /* struct timespec / timeval as the kernel wrote it */
{
	return ck_get_le64(p) * 1000000000ull + ck_get_le64(p + 8);
}

static int cmp_id(const void *a, const void *b)
{
	const struct restore_posix_timer *x = a, *y = b;
	return (x->id > y->id) - (x->id < y->id);
}

/* Parse /proc/PID/timers: blocks of "ID: n", "signal: s/VALUE", "notify: KIND/pid|tid.N",
 * "ClockID: c". The tid is as the dumper's /proc shows it, like the image's thread ids. */
int dump_timers_parse(const char *text, struct restore_timers *t)
{
	size_t cap = 0;
	const char *l = text;
	struct restore_posix_timer *cur = NULL;
	while (l && *l) {
		int id, sig, n, clk;
		unsigned long long val;
		char kind[16], who[8];
		if (sscanf(l, "ID: %d", &id) == 1) {
			if (t->nposix == RESTORE_MAX_TIMERS)
				return -E2BIG;
			if (t->nposix == cap) {
				cap = cap ? cap * 2 : 8;
				struct restore_posix_timer *v = realloc(t->posix, cap * sizeof(*v));
				if (!v)
					return -ENOMEM;
				t->posix = v;
			}
			cur = &t->posix[t->nposix++];
			*cur = (struct restore_posix_timer){.id = id};
		} else if (cur && sscanf(l, "signal: %d/%llx", &sig, &val) == 2) {
			cur->signo = sig;
			cur->value = val;
		} else if (cur && sscanf(l, "notify: %15[a-z]/%7[a-z].%d", kind, who, &n) == 3) {
			if (!strcmp(kind, "none"))
				cur->notify = SIGEV_NONE;
			else if (!strcmp(kind, "signal"))
				cur->notify = SIGEV_SIGNAL;
			else
				return -EOPNOTSUPP; /* "thread": not something the kernel does itself */
			if (!strcmp(who, "tid")) {
				cur->notify = SIGEV_THREAD_ID;
				cur->tid = n;
			}
		} else if (cur && sscanf(l, "ClockID: %d", &clk) == 1) {
			cur->clockid = clk;
		}
		l = strchr(l, '\n');
		if (l)
			l++;
	}
	if (t->nposix)
		qsort(t->posix, t->nposix, sizeof(*t->posix), cmp_id);
	return 0;
}

static bool is_thread_of(const struct restore_image *img, pid_t tid)
{
	for (size_t i = 0; i < img->nthreads; i++)
		if (img->threads[i].tid == tid)
			return true;
	return false;
}

int dump_timers_check(pid_t pid, const struct restore_image *img, struct restore_err *err)
{
	struct restore_timers t = {0};
	int r = dump_timers_parse(img->proc.timers ? img->proc.timers : "", &t);
	for (size_t i = 0; r == 0 && i < t.nposix; i++) {
		const struct restore_posix_timer *p = &t.posix[i];
		if (p->notify != SIGEV_THREAD_ID || is_thread_of(img, p->tid))
			continue;
		r = -EOPNOTSUPP;
		if (err)
			snprintf(err->msg, sizeof(err->msg),
				 "POSIX timer %d of pid %d signals thread %d, which is not one of "
				 "its threads; delete the timer or aim it at a live thread",
				 p->id, (int)pid, p->tid);
	}
	if (r < 0 && r != -EOPNOTSUPP && err)
		snprintf(err->msg, sizeof(err->msg), "cannot read /proc/%d/timers: %s", (int)pid,
			 strerror(-r));
	free(t.posix);
	return r;
}

static int read_posix(struct inject *ij, uint64_t scr, struct restore_timers *t)
{
	for (size_t base = 0; base < t->nposix; base += SCR_BATCH) {
		size_t n = CK_MIN(t->nposix - base, (size_t)SCR_BATCH);
		for (size_t i = 0; i < n; i++) {
			struct restore_posix_timer *p = &t->posix[base + i];
			int64_t ret;
			int r = inject_call(ij, SYS_timer_gettime, (uint64_t)p->id,
					    scr + SCR_POSIX + i * 32, 0, 0, &ret);
			if (r == 0)
				r = inject_call(ij, SYS_timer_getoverrun, (uint64_t)p->id, 0, 0, 0,
						&ret);
			if (r < 0)
				return r;
			p->overrun = (int32_t)ret;
		}
		uint8_t raw[SCR_BATCH * 32];
		int r = inject_peek(ij->tid, scr + SCR_POSIX, raw, n * 32);
		if (r < 0)
			return r;
		for (size_t i = 0; i < n; i++) {
			t->posix[base + i].interval_ns = ts_ns(raw + i * 32);
			t->posix[base + i].value_ns = ts_ns(raw + i * 32 + 16);
		}
	}
	return 0;
}

static int collect(struct inject *ij, uint64_t scr, struct restore_timers *t)
{
	int64_t ret;
	int r = 0;
	for (int w = 0; r == 0 && w < 3; w++)
		r = inject_call(ij, SYS_getitimer, (uint64_t)w,
				scr + SCR_ITIMERS + (uint64_t)w * 32, 0, 0, &ret);
	if (r == 0)
		r = read_posix(ij, scr, t);
	/* The clocks last: clock + time left is then never before the real deadline. */
	if (r == 0)
		r = inject_call(ij, SYS_clock_gettime, CLOCK_MONOTONIC, scr + SCR_CLOCKS, 0, 0,
				&ret);
	if (r == 0)
		r = inject_call(ij, SYS_clock_gettime, CLOCK_BOOTTIME, scr + SCR_CLOCKS + 16, 0, 0,
				&ret);
	uint8_t raw[SCR_ITIMERS + 3 * 32];
	if (r == 0)
		r = inject_peek(ij->tid, scr, raw, sizeof(raw));
	if (r < 0)
		return r;
	t->mono_ns = ts_ns(raw + SCR_CLOCKS);
	t->boot_ns = ts_ns(raw + SCR_CLOCKS + 16);
	for (int w = 0; w < 3; w++) {
		/* struct itimerval: it_interval, it_value, each a timeval (sec, usec). */
		const uint8_t *v = raw + SCR_ITIMERS + w * 32;
		t->itimer_interval_ns[w] =
			ck_get_le64(v) * 1000000000ull + ck_get_le64(v + 8) * 1000;
		t->itimer_value_ns[w] =
			ck_get_le64(v + 16) * 1000000000ull + ck_get_le64(v + 24) * 1000;
	}
	t->flags |= RESTORE_TIMERS_F_VALID;
	return 0;
}

/* A timer that expired while we dumped queued its signal after dump_thread() read the pending
 * queues: read them again now, right after the timers, so that signal and timer state agree
 * (an expiry is then either in the queue or still ahead in the timer; one landing in the few
 * microseconds between the two reads would be in both). The process is frozen: the queues
 * only grow, so the later snapshot replaces the earlier one. */
static int repeek(pid_t tid, bool shared, struct restore_siginfo **ret, size_t *ret_n)
{
	struct restore_siginfo *v;
	size_t n;
	int r = dump_peek_siginfo(tid, shared, &v, &n);
	if (r < 0)
		return r;
	free(*ret);
	*ret = v;
	*ret_n = n;
	return 0;
}

static int repeek_all(struct restore_freeze *f, struct restore_image *img)
{
	int r = repeek(f->pid, true, &img->proc.pending, &img->proc.npending);
	for (size_t i = 0; r == 0 && i < img->nthreads; i++)
		r = repeek(img->threads[i].tid, false, &img->threads[i].pending,
			   &img->threads[i].npending);
	return r;
}

int dump_timers(struct restore_freeze *f, struct restore_image *img)
{
	struct restore_timers *t = &img->timers;
	int r = dump_timers_parse(img->proc.timers ? img->proc.timers : "", t);
	if (r < 0)
		return r;
	uint64_t ip;
	r = inject_find_syscall(f->pid, &ip);
	if (r < 0)
		return r;
	struct inject ij;
	r = inject_begin(&ij, f->pid, ip);
	if (r < 0)
		return r;
	int64_t scr;
	const uint64_t prot = PROT_READ | PROT_WRITE, flags = MAP_PRIVATE | MAP_ANONYMOUS;
	const uint64_t a[6] = {0, RESTORE_PAGE_SIZE, prot, flags, (uint64_t)-1, 0};
	r = inject_syscall(&ij, SYS_mmap, a, &scr);
	if (r == 0 && scr < 0 && scr > -4096)
		r = (int)scr;
	if (r == 0) {
		r = collect(&ij, (uint64_t)scr, t);
		int64_t ignored;
		int q = inject_call(&ij, SYS_munmap, (uint64_t)scr, RESTORE_PAGE_SIZE, 0, 0,
				    &ignored);
		if (r == 0)
			r = q;
	}
	int e = inject_end(&ij);
	if (r == 0)
		r = e;
	if (r == 0)
		r = repeek_all(f, img);
	if (r < 0)
		t->flags &= ~RESTORE_TIMERS_F_VALID;
	return r;
}
