/* Timers of the restored process, inside the blob: the leader's last step that can fail, once
 * every thread exists and before any of them runs job code (restorer.c). POSIX timers were
 * created at their old ids, disarmed, by restore-timers.c before the point of no return; here
 * they and the itimers get their time. Every signal is still blocked in every thread, so an
 * expiry from here on is only queued until the sigreturns install the saved masks. */
#include "sys.h"

#pragma GCC visibility push(hidden)

#define NR_setitimer	 38
#define NR_timer_settime 223
#define NR_clock_gettime 228
#define TIMER_ABSTIME_	 1

void ckr_timers_arm(const struct ckr_args *a)
{
	for (uint32_t i = 0; i < a->ntimers; i++) {
		const struct ckr_timer *t = &a->timers[i];
		uint64_t v = t->value_ns;
		long r;
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
