/* Timers of the restored process, inside the blob: the leader's last step that can fail, once
 * every thread exists and before any of them runs job code (restorer.c). POSIX timers aimed at
 * the process or the leader were created at their old ids, disarmed, by restore-timers.c before
 * the point of no return; one aimed at another thread (SIGEV_THREAD_ID, glibc's SIGEV_THREAD
 * helper thread included) can only be created now that its thread exists: here, at its old id
 * (the C side checked that PR_TIMER_CREATE_RESTORE_IDS works). Then they and the itimers get
 * their time. Every signal is still blocked in every thread, so an expiry from here on is only
 * queued until the sigreturns install the saved masks. */
#include "sys.h"

#pragma GCC visibility push(hidden)

#define NR_setitimer		     38
#define NR_timer_settime	     223
#define NR_clock_gettime	     228
#define NR_timer_create		     222
#define NR_prctl		     157
#define TIMER_ABSTIME_		     1
#define SIGEV_THREAD_ID_	     4
#define PR_TIMER_CREATE_RESTORE_IDS_ 77

/* The kernel's struct sigevent (64 bytes): value, signo, notify, then the target tid. */
struct sigevent_ {
	uint64_t value;
	int32_t signo, notify;
	int32_t tid;
	int32_t pad[11];
};

static void create_thread_timer(const struct ckr_args *a, const struct ckr_timer *t)
{
	struct sigevent_ sev = {.value = t->value,
				.signo = t->signo,
				.notify = SIGEV_THREAD_ID_,
				.tid = a->threads[t->thread].cur_tid};
	int32_t id = t->id; /* the id wanted, with PR_TIMER_CREATE_RESTORE_IDS on */
	long r = sys5(NR_prctl, PR_TIMER_CREATE_RESTORE_IDS_, 1, 0, 0, 0);
	if (!is_err(r))
		r = sys3(NR_timer_create, t->clock, &sev, &id);
	sys5(NR_prctl, PR_TIMER_CREATE_RESTORE_IDS_, 0, 0, 0, 0);
	if (!is_err(r) && id != t->id)
		r = -16; /* EBUSY: cannot happen, the C side created the others at their ids */
	if (is_err(r))
		ckr_fail(a, "timer_create of the POSIX timer of a thread", (uint64_t)t->id, r);
}

void ckr_timers_arm(const struct ckr_args *a)
{
	for (uint32_t i = 0; i < a->ntimers; i++) {
		const struct ckr_timer *t = &a->timers[i];
		uint64_t v = t->value_ns;
		long r;
		if (t->flags & CKR_TIMER_CREATE)
			create_thread_timer(a, t);
		if (!v)
			continue; /* disarmed */
		if (t->flags & CKR_TIMER_ITIMER) {
			if (t->flags & CKR_TIMER_ABS) {
				int64_t ts[2] = {0, 0};
				r = sys2(NR_clock_gettime, t->clock, ts);
				if (is_err(r))
					ckr_fail(a, "clock_gettime", (uint64_t)t->clock, r);
				uint64_t now = (uint64_t)ts[0] * 1000000000ull + (uint64_t)ts[1];
				v = v > now ? v - now : 1; /* overdue: expire at once */
			}
			/* struct itimerval in microseconds, rounded up: 0 would disarm. */
			uint64_t vu = (v + 999) / 1000, iu = (t->interval_ns + 999) / 1000;
			int64_t itv[4] = {(int64_t)(iu / 1000000), (int64_t)(iu % 1000000),
					  (int64_t)(vu / 1000000), (int64_t)(vu % 1000000)};
			r = sys3(NR_setitimer, t->id, itv, 0);
			if (is_err(r))
				ckr_fail(a, "setitimer", (uint64_t)t->id, r);
			continue;
		}
		int64_t its[4] = {(int64_t)(t->interval_ns / 1000000000ull),
				  (int64_t)(t->interval_ns % 1000000000ull),
				  (int64_t)(v / 1000000000ull), (int64_t)(v % 1000000000ull)};
		r = sys4(NR_timer_settime, t->id, (t->flags & CKR_TIMER_ABS) ? TIMER_ABSTIME_ : 0,
			 its, 0);
		if (is_err(r))
			ckr_fail(a, "timer_settime of POSIX timer", (uint64_t)t->id, r);
	}
}

#pragma GCC visibility pop
