/* The TIMERS section of core.img (docs/image-format.md): the clocks the process saw at dump
 * time, its three itimers and its POSIX timers. Kept apart from image-codec.c so the other
 * sections can change without touching it. Every count is bounded, every value range-checked:
 * the restorer passes these numbers to timer_create/timer_settime/setitimer. */
#include "restore/image-internal.h"

#include <stdlib.h>

#define NS_MAX		(1ull << 62) /* ~146 years: keeps deadline sums far from overflow */
#define POSIX_MIN_BYTES (6 * 4 + 3 * 8)

void img_pack_timers(struct ck_buf *b, const struct restore_timers *t)
{
	ck_buf_le32(b, t->flags);
	ck_buf_le64(b, t->mono_ns);
	ck_buf_le64(b, t->boot_ns);
	ck_buf_le32(b, 3);
	for (int i = 0; i < 3; i++) {
		ck_buf_le64(b, t->itimer_value_ns[i]);
		ck_buf_le64(b, t->itimer_interval_ns[i]);
	}
	ck_buf_le32(b, (uint32_t)t->nposix);
	for (size_t i = 0; i < t->nposix; i++) {
		const struct restore_posix_timer *p = &t->posix[i];
		ck_buf_le32(b, (uint32_t)p->id);
		ck_buf_le32(b, (uint32_t)p->clockid);
		ck_buf_le32(b, (uint32_t)p->notify);
		ck_buf_le32(b, (uint32_t)p->signo);
		ck_buf_le64(b, p->value);
		ck_buf_le32(b, (uint32_t)p->tid);
		ck_buf_le32(b, (uint32_t)p->overrun);
		ck_buf_le64(b, p->value_ns);
		ck_buf_le64(b, p->interval_ns);
	}
}

static bool get_i32(struct ck_rd *r, int32_t *v)
{
	uint32_t u;
	if (!ck_rd_le32(r, &u))
		return false;
	*v = (int32_t)u;
	return true;
}

static bool posix_ok(const struct restore_posix_timer *p, const struct restore_posix_timer *prev)
{
	/* sigev_notify: SIGEV_SIGNAL 0, SIGEV_NONE 1, SIGEV_THREAD_ID 4 (SIGEV_THREAD is glibc's
	 * helper-thread construction on top of SIGEV_THREAD_ID: the kernel never shows it). */
	bool notify = p->notify == 0 || p->notify == 1 || p->notify == 4;
	return p->id >= 0 && (!prev || p->id > prev->id) && notify && p->signo >= 0 &&
	       p->signo <= RESTORE_NSIG && (p->notify == 1 || p->signo > 0) &&
	       (p->notify != 4 || p->tid > 0) && p->value_ns < NS_MAX && p->interval_ns < NS_MAX;
}

int img_unpack_timers(struct ck_rd *r, struct restore_timers *t)
{
	uint32_t n;
	ck_rd_le32(r, &t->flags);
	ck_rd_le64(r, &t->mono_ns);
	ck_rd_le64(r, &t->boot_ns);
	if (ck_rd_le32(r, &n) && n != 3)
		r->err = -EBADMSG;
	for (int i = 0; i < 3; i++) {
		ck_rd_le64(r, &t->itimer_value_ns[i]);
		ck_rd_le64(r, &t->itimer_interval_ns[i]);
		if (!r->err &&
		    (t->itimer_value_ns[i] >= NS_MAX || t->itimer_interval_ns[i] >= NS_MAX))
			r->err = -EBADMSG;
	}
	if (!r->err && (t->mono_ns >= NS_MAX || t->boot_ns >= NS_MAX || t->flags & ~1u))
		r->err = -EBADMSG;
	if (r->err || !ck_rd_le32(r, &n))
		return r->err ? r->err : -EBADMSG;
	if (n > RESTORE_MAX_TIMERS || (uint64_t)n * POSIX_MIN_BYTES > r->len - r->off)
		return -EBADMSG;
	if (n) {
		t->posix = calloc(n, sizeof(*t->posix));
		if (!t->posix)
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct restore_posix_timer *p = &t->posix[i];
		t->nposix = i + 1;
		get_i32(r, &p->id);
		get_i32(r, &p->clockid);
		get_i32(r, &p->notify);
		get_i32(r, &p->signo);
		ck_rd_le64(r, &p->value);
		get_i32(r, &p->tid);
		get_i32(r, &p->overrun);
		ck_rd_le64(r, &p->value_ns);
		ck_rd_le64(r, &p->interval_ns);
		if (r->err)
			return r->err;
		if (!posix_ok(p, i ? p - 1 : NULL))
			return -EBADMSG;
	}
	if (r->off != r->len)
		return -EBADMSG;
	return 0;
}

void img_timers_clear(struct restore_timers *t)
{
	free(t->posix);
	*t = (struct restore_timers){0};
}
