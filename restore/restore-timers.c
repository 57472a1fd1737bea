/* Timers of the restored process (C side; the blob arms them, blob/restorer.c arm_timers()).
 *
 * POSIX timers must come back at their old ids: glibc hands the kernel's id to the program as
 * its timer_t. On new kernels (verified on 6.18) prctl(PR_TIMER_CREATE_RESTORE_IDS) makes
 * timer_create() take the wanted id from *created_timer_id (-EBUSY if taken). On an older kernel, ids are handed
 * out in increasing order per process, so creating and deleting timers until the counter
 * reaches the wanted id works too (slow for large ids: bounded by CREATE_TRIES).
 * They are created, disarmed, as the last step before the point of no return (deleted again if
 * that fails), so that a refusal leaves the process as it was; the blob arms them and the
 * itimers right before rt_sigreturn, so nothing expires while the address space is rebuilt.
 * A timer aimed at a thread other than the leader (SIGEV_THREAD_ID; glibc's SIGEV_THREAD is one
 * aimed at its helper thread) needs its thread to exist: the blob creates it after cloning the
 * threads (blob/timers.c), with the prctl only (no create-and-delete walk there).
 *
 * Deadlines: a timer on CLOCK_MONOTONIC/CLOCK_BOOTTIME is armed at the absolute time
 * clock-at-dump + time-left, and ITIMER_REAL (which counts on CLOCK_MONOTONIC) gets what is left
 * of that deadline when it is armed. In the job's time namespace, whose clocks go on from their
 * values at dump time (restore_timens_enter), that is exactly when they were due; CPU-time
 * timers (ITIMER_VIRTUAL/_PROF, CPU clocks) and CLOCK_REALTIME ones get their time left. */
#include "restore/restore-internal.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

#ifndef PR_TIMER_CREATE_RESTORE_IDS
#define PR_TIMER_CREATE_RESTORE_IDS	77
#define PR_TIMER_CREATE_RESTORE_IDS_OFF 0
#define PR_TIMER_CREATE_RESTORE_IDS_ON	1
#endif
#define CREATE_TRIES (1 << 16)

/* The clock a deadline of @clockid is measured on in the image, or NULL (relative arming). */
static const uint64_t *deadline_clock(const struct restore_timers *t, int32_t clockid)
{
	switch (clockid) {
	case CLOCK_MONOTONIC:
		return &t->mono_ns;
	case CLOCK_BOOTTIME:
	case CLOCK_BOOTTIME_ALARM:
		return &t->boot_ns;
	default:
		return NULL;
	}
}

/* A SIGALRM sent by the kernel (SI_KERNEL: ITIMER_REAL) in the process's pending queue. */
static bool alarm_pending(const struct restore_proc *p)
{
	for (size_t i = 0; i < p->npending; i++) {
		const uint8_t *s = p->pending[i].raw;
		if (ck_get_le32(s) == SIGALRM && (int32_t)ck_get_le32(s + 8) == SI_KERNEL)
			return true;
	}
	return false;
}

int rst_timer_thread(const struct restore_image *img, const struct restore_posix_timer *p)
{
	if (p->notify != SIGEV_THREAD_ID)
		return 0;
	for (size_t i = 0; i < img->nthreads; i++)
		if (img->threads[i].tid == p->tid)
			return (int)i;
	return -ENOENT;
}

int rst_timers_plan(struct rst_ctx *c)
{
	const struct restore_image *img = c->img;
	const struct restore_timers *t = &img->timers;
	if (!(t->flags & RESTORE_TIMERS_F_VALID)) {
		if (img->proc.timers && strstr(img->proc.timers, "ID:"))
			return rst_fail(c, -EOPNOTSUPP,
					"the image has POSIX timers but not their settings (dumped "
					"without syscall injection)");
		return 0; /* an older image: itimers unknown, left disarmed */
	}
	c->timers = calloc(t->nposix + 3, sizeof(*c->timers));
	if (!c->timers)
		return -ENOMEM;
	for (size_t i = 0; i < t->nposix; i++) {
		const struct restore_posix_timer *p = &t->posix[i];
		int th = rst_timer_thread(img, p);
		if (th < 0)
			return rst_fail(c, -EBADMSG,
					"POSIX timer %d signals thread %d, which is not a thread "
					"of the image",
					p->id, p->tid);
		if (!p->value_ns && th == 0)
			continue; /* disarmed: created, not armed */
		const uint64_t *base = deadline_clock(t, p->clockid);
		c->timers[c->ntimers++] = (struct ckr_timer){
			.id = p->id,
			.clock = p->clockid,
			.flags = (base ? CKR_TIMER_ABS : 0) | (th > 0 ? CKR_TIMER_CREATE : 0),
			.signo = p->signo,
			.value = p->value,
			.thread = (uint32_t)th,
			.value_ns = p->value_ns && base ? *base + p->value_ns : p->value_ns,
			.interval_ns = p->interval_ns,
		};
	}
	for (int w = 0; w < 3; w++) {
		if (!t->itimer_value_ns[w] && w == ITIMER_REAL && t->itimer_interval_ns[w] &&
		    alarm_pending(&img->proc)) {
			/* An ITIMER_REAL period is re-armed by the kernel when its SIGALRM is
			 * dequeued: until then getitimer() says 0 left. The SIGALRM is re-queued
			 * with the pending signals; arm the next period after it. */
			c->timers[c->ntimers++] = (struct ckr_timer){
				.id = w,
				.flags = CKR_TIMER_ITIMER,
				.value_ns = t->itimer_interval_ns[w],
				.interval_ns = t->itimer_interval_ns[w],
			};
			continue;
		}
		if (!t->itimer_value_ns[w])
			continue;
		bool real = w == ITIMER_REAL;
		c->timers[c->ntimers++] = (struct ckr_timer){
			.id = w,
			.clock = CLOCK_MONOTONIC,
			.flags = CKR_TIMER_ITIMER | (real ? CKR_TIMER_ABS : 0),
			.value_ns = (real ? t->mono_ns : 0) + t->itimer_value_ns[w],
			.interval_ns = t->itimer_interval_ns[w],
		};
	}
	return 0;
}

static int create_one(const struct restore_posix_timer *p, bool exact, int *ret_id)
{
	struct sigevent sev = {0};
	sev.sigev_notify = p->notify;
	sev.sigev_signo = p->signo;
	sev.sigev_value.sival_ptr = (void *)(uintptr_t)p->value;
	if (p->notify == SIGEV_THREAD_ID)
		sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	int id = exact ? p->id : 0;
	if (syscall(SYS_timer_create, p->clockid, &sev, &id) < 0)
		return -errno;
	*ret_id = id;
	return 0;
}

static void delete_created(const struct restore_image *img, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (rst_timer_thread(img, &img->timers.posix[i]) == 0)
			syscall(SYS_timer_delete, img->timers.posix[i].id);
}

int rst_timers_create(struct rst_ctx *c)
{
	const struct restore_timers *t = &c->img->timers;
	if (!(t->flags & RESTORE_TIMERS_F_VALID) || !t->nposix)
		return 0;
	bool exact =
		prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_ON, 0, 0, 0) == 0;
	int r = 0;
	size_t i;
	for (i = 0; i < t->nposix && r == 0; i++) {
		const struct restore_posix_timer *p = &t->posix[i];
		int got = -1;
		if (rst_timer_thread(c->img, p) > 0) {
			/* Its thread does not exist yet: the blob creates it, at its id. */
			if (exact)
				continue;
			r = rst_fail(c, -EOPNOTSUPP,
				     "POSIX timer %d signals thread %d: recreating it needs "
				     "PR_TIMER_CREATE_RESTORE_IDS, which this kernel lacks; "
				     "restore on a newer kernel",
				     p->id, p->tid);
			break;
		}
		if (exact) {
			r = create_one(p, true, &got);
		} else {
			/* Sorted by id: walk the kernel's counter up to each wanted id. */
			for (int k = 0; k < CREATE_TRIES && r == 0; k++) {
				r = create_one(p, false, &got);
				if (r < 0 || got >= p->id)
					break;
				syscall(SYS_timer_delete, got);
			}
		}
		if (r == 0 && got != p->id) {
			if (got >= 0)
				syscall(SYS_timer_delete, got);
			r = -EBUSY;
		}
		if (r < 0) {
			r = rst_fail(
				c, r, "cannot recreate POSIX timer %d (clock %d, signal %d): %s%s",
				p->id, p->clockid, p->signo, strerror(-r),
				exact ? "" : " (no PR_TIMER_CREATE_RESTORE_IDS in this kernel)");
			break;
		}
	}
	if (exact)
		prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_OFF, 0, 0, 0);
	if (r < 0)
		delete_created(c->img, i);
	return r;
}
