/* The supervisor's own checkpoints: every policy.every_ns (a CLOCK_MONOTONIC timerfd in the
 * event loop), a final one on SIGTERM with policy CKPT_POLICY_ON_TERM (what a cluster scheduler
 * sends before preemption), and dropping one on request (`ckptenv rm N --checkpoint ID`).
 * Keeping the newest policy.keep is the checkpoint's (sup-ckpt.c). Both run on the checkpoint
 * thread (sup-ckpt-thread.c); their end comes back in sup_periodic_ended. */
#include "ckpt-gc.h"
#include "ckpt.h"
#include "control.h"
#include "supervisor.h"

#include "common/ck.h"
#include "vfs/vfs.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>

int sup_periodic_setup(struct sup *s, char *err, size_t errlen)
{
	const struct supervisor_args *a = s->a;
	if (asprintf(&s->store_dir, "%s/store", a->job_dir) < 0) {
		s->store_dir = NULL;
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int r;
	if (a->restore_id) {
		r = ckpt_policy_read(a->job_fd, &s->policy);
		if (r < 0) { /* the job runs on without periodic checkpoints: say so */
			sup_log(s, "%s/%s is unreadable (%s); no periodic checkpoints", a->job_dir,
				CKPT_POLICY, strerror(-r));
			s->policy = (struct ckpt_policy){0};
		}
	} else {
		s->policy =
			(struct ckpt_policy){.every_ns = a->ckpt_every_ns,
					     .keep = a->ckpt_keep,
					     .flags = a->ckpt_on_term ? CKPT_POLICY_ON_TERM : 0,
					     .log_size = a->log_size};
		r = ckpt_policy_write(a->job_fd, &s->policy);
		if (r < 0) {
			snprintf(err, errlen, "cannot write %s/%s: %s", a->job_dir, CKPT_POLICY,
				 strerror(-r));
			return r;
		}
	}
	/* The last run's periodic failure is no news for a new one; a restore's may still be. */
	if (!a->restore_id)
		(void)unlinkat(a->job_fd, CKPT_FAILED, 0);
	else
		s->periodic_failed = faccessat(a->job_fd, CKPT_FAILED, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	/* A kill -9 during a checkpoint or a drop: its leftovers go now. */
	_cleanup_close_ int ckdir = -1;
	struct ckpt_sweep_stats sw;
	if (ckpt_dir_open(a->job_fd, false, &ckdir) == 0 &&
	    ckpt_sweep(ckdir, s->v, s->store_dir, &sw) == 0 && (sw.dirs || sw.refs))
		sup_log(s, "removed %zu unfinished checkpoint director%s and %zu orphan ref%s",
			sw.dirs, sw.dirs == 1 ? "y" : "ies", sw.refs, sw.refs == 1 ? "" : "s");
	if (!s->policy.every_ns)
		return 0;
	s->periodic_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	struct itimerspec its = {.it_value = {(time_t)(s->policy.every_ns / 1000000000u),
					      (long)(s->policy.every_ns % 1000000000u)}};
	its.it_interval = its.it_value;
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = s->periodic_fd};
	if (s->periodic_fd < 0 || timerfd_settime(s->periodic_fd, 0, &its, NULL) < 0 ||
	    epoll_ctl(s->ep, EPOLL_CTL_ADD, s->periodic_fd, &ev) < 0) {
		snprintf(err, errlen, "cannot arm the checkpoint timer: %m");
		return -errno;
	}
	sup_log(s, "a checkpoint every %.1f s, keeping the newest %u%s",
		(double)s->policy.every_ns / 1e9, s->policy.keep,
		s->policy.flags & CKPT_POLICY_ON_TERM ? ", and one on SIGTERM" : "");
	return 0;
}

/* Record (@err) or clear (NULL) the last periodic checkpoint's failure: a policy that fails
 * every time (a job of two processes) was seen only in the supervisor's log. */
static void periodic_result(struct sup *s, const char *err)
{
	if (!err) {
		if (s->periodic_failed && unlinkat(s->a->job_fd, CKPT_FAILED, 0) == 0)
			s->periodic_failed = false;
		return;
	}
	char line[900];
	int n = snprintf(line, sizeof(line), "%lld %s\n", (long long)time(NULL), err);
	if (n > 0 && ck_write_file_atomic(s->a->job_fd, CKPT_FAILED, line,
					  CK_MIN((size_t)n, sizeof(line) - 1), 0600) == 0)
		s->periodic_failed = true;
}

void sup_periodic_fire(struct sup *s)
{
	uint64_t expirations;
	if (read(s->periodic_fd, &expirations, sizeof(expirations)) != sizeof(expirations))
		return;
	/* Not started yet (waiting for its client), or over: nothing to save. */
	if (!s->started || sup_job_starting(s) || s->job_ended || s->job.init_pid <= 0)
		return;
	struct sup_ckpt_task t = {.origin = SUP_CKPT_PERIODIC, .client = -1};
	char err[768];
	int r = sup_ckpt_start(s, &t, err, sizeof(err));
	if (r == -EBUSY) {
		sup_log(s, "periodic checkpoint skipped: another one is in progress");
	} else if (r < 0) {
		sup_log(s, "periodic checkpoint failed: %s", err);
		periodic_result(s, err);
	}
}

bool sup_periodic_term(struct sup *s)
{
	/* Starting: the init's copy before its exec, or a process half rebuilt, is nothing to
	 * save; the SIGTERM goes to the job as without the policy. */
	if (!(s->policy.flags & CKPT_POLICY_ON_TERM) || !s->started || sup_job_starting(s) ||
	    s->job_ended || s->job.init_pid <= 0)
		return false;
	if (sup_ckpt_busy(s)) { /* the final checkpoint must not be skipped: after this one */
		sup_log(s, "SIGTERM: a checkpoint is in progress; the final one follows it");
		s->term_pending = true;
		return true;
	}
	struct sup_ckpt_task t = {
		.origin = SUP_CKPT_ON_TERM, .flags = CONTROL_CKPT_STOP, .client = -1};
	char err[768];
	int r = sup_ckpt_start(s, &t, err, sizeof(err));
	if (r < 0) {
		sup_log(s, "SIGTERM: final checkpoint failed: %s; forwarding SIGTERM to the job",
			err);
		return false;
	}
	return true;
}

void sup_periodic_ended(struct sup *s, const struct sup_ckpt_task *t)
{
	if (t->origin == SUP_CKPT_PERIODIC) {
		if (t->r < 0)
			sup_log(s, "periodic checkpoint failed: %s", t->err);
		periodic_result(s, t->r < 0 ? t->err : NULL);
		return;
	}
	if (t->r < 0) {
		sup_log(s, "SIGTERM: final checkpoint failed: %s; forwarding SIGTERM to the job",
			t->err);
		if (s->job.init_pid > 0)
			kill(s->job.init_pid, SIGTERM);
		return;
	}
	sup_log(s,
		"SIGTERM: final checkpoint %llu taken, job ended; restore it with "
		"'ckptenv restore %s'",
		(unsigned long long)t->res.id, s->a->name);
}

void sup_ckpt_drop(struct sup *s, int c, const struct control_msg *m)
{
	if (m->len != 8) {
		control_send_error(c, EINVAL, "bad checkpoint drop message");
		return;
	}
	uint64_t id = ck_get_le64(m->payload);
	_cleanup_close_ int ckdir = -1;
	int r = ckpt_dir_open(s->a->job_fd, false, &ckdir);
	uint64_t *ids = NULL;
	size_t n = 0;
	if (r == 0 && s->parked && ckpt_list(ckdir, &ids, &n) == 0 && n == 1 && ids[0] == id) {
		/* A stopped job can only be restored or removed; without a checkpoint, only
		 * removed, its /tmp with it. */
		free(ids);
		char err[400];
		snprintf(err, sizeof(err),
			 "checkpoint %llu is the last one of job %s, which is stopped: without it "
			 "nothing could resume the job; 'ckptenv restore %s' first",
			 (unsigned long long)id, s->a->name, s->a->name);
		control_send_error(c, EBUSY, err);
		return;
	}
	free(ids);
	if (r == 0 && s->parked && id == s->park_ckpt) {
		/* Its restore would resume it from an older one, the work since lost, unsaid. */
		char err[400];
		snprintf(err, sizeof(err),
			 "job %s is stopped at checkpoint %llu: 'ckptenv restore %s' resumes it "
			 "from there; restore it first, or 'ckptenv rm %s' to end it and delete its "
			 "data",
			 s->a->name, (unsigned long long)id, s->a->name, s->a->name);
		control_send_error(c, EBUSY, err);
		return;
	}
	if (r == 0)
		r = ckpt_drop(ckdir, s->v, id);
	if (r < 0) {
		char err[300];
		snprintf(err, sizeof(err),
			 "cannot drop checkpoint %llu: %s; see 'ckptenv "
			 "checkpoints %s'",
			 (unsigned long long)id, r == -ENOENT ? "no such checkpoint" : strerror(-r),
			 s->a->name);
		control_send_error(c, -r, err);
		return;
	}
	sup_log(s, "dropped checkpoint %llu", (unsigned long long)id);
	control_send(c, CONTROL_OK, NULL, 0, NULL, 0);
}

void sup_periodic_close(struct sup *s)
{
	if (s->periodic_fd >= 0)
		close(s->periodic_fd);
	s->periodic_fd = -1;
	free(s->store_dir);
	s->store_dir = NULL;
}
