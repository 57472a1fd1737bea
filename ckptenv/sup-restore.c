/* The job ended but its supervisor stays: "parked". After `ckptenv checkpoint N --stop` (until
 * `restore` or `rm`), and after a crash (killed by a fatal signal it did not get from a client:
 * SIGKILL of the OOM killer, SIGSEGV, SIGBUS, ...) of a job started with a checkpoint policy
 * (--checkpoint-every or --checkpoint-on-term) that has a checkpoint, for CKPTENV_CRASH_KEEP_SECONDS
 * (default 10 minutes). Parked,
 * the supervisor keeps the job's store, its attached clients (who see one notice line) and
 * accepts new ones; `ckptenv restore N [ID]` then rolls the store back to the checkpoint's epoch
 * and restores the job in this same supervisor (sup_job_start with s->restore_id), and the
 * terminal clients are redrawn with the checkpoint's screen (ptyproxy_restart). A parked crash
 * nobody restores ends like any job end once the grace period is over (clients get EXITED).
 * A job that exits by itself, or is killed by a client's signal, is never parked. */
#include "ckpt.h"
#include "control.h"
#include "supervisor.h"

#include "common/ck.h"
#include "ptyproxy/ptyproxy.h"
#include "vfs/vfs.h"

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a crashed job is kept: CKPTENV_CRASH_KEEP_SECONDS (the CLI refused a bad value). */
static unsigned park_grace_s(const struct sup *s)
{
	const char *v = getenv(CRASH_KEEP_ENV);
	unsigned n = CRASH_KEEP_DEFAULT_S;
	if (v && *v && env_count_parse(v, CRASH_KEEP_MAX_S, &n) < 0) {
		sup_log(s, "%s=%s is not a number of seconds in 1..%u; using %u", CRASH_KEEP_ENV,
			v, CRASH_KEEP_MAX_S, CRASH_KEEP_DEFAULT_S);
		n = CRASH_KEEP_DEFAULT_S;
	}
	return n;
}

/* "10 minutes", "45 seconds": for the notice and the log. */
static const char *grace_text(unsigned sec, char *buf, size_t len)
{
	if (sec % 60 == 0)
		snprintf(buf, len, "%u minute%s", sec / 60, sec == 60 ? "" : "s");
	else
		snprintf(buf, len, "%u second%s", sec, sec == 1 ? "" : "s");
	return buf;
}

static bool fatal_signal(int sig)
{
	switch (sig) {
	case SIGKILL:
	case SIGSEGV:
	case SIGBUS:
	case SIGILL:
	case SIGFPE:
	case SIGABRT:
	case SIGSYS:
	case SIGTRAP:
	case SIGXCPU:
	case SIGXFSZ:
		return true;
	default:
		return false;
	}
}

static void notice(struct sup *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notice(struct sup *s, const char *fmt, ...)
{
	char msg[512], line[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sup_log(s, "%s", msg);
	if (s->a->pty)
		snprintf(line, sizeof(line), "\r\n[ckptenv: %s]\r\n", msg);
	else
		snprintf(line, sizeof(line), "ckptenv: %s\n", msg);
	if (s->pp) {
		ptyproxy_notice(s->pp, line);
		ptyproxy_set_attach_notice(s->pp, line); /* for those who attach while stopped */
	}
}

bool sup_park_on_exit(struct sup *s, int wstatus)
{
	uint64_t latest = 0;
	_cleanup_close_ int ckdir = -1;
	bool have =
		ckpt_dir_open(s->a->job_fd, false, &ckdir) == 0 && ckpt_latest(ckdir, &latest) == 0;
	if (s->park_on_exit) {
		s->park_on_exit = false;
		s->park_deadline_ns = 0;
		notice(s, "job %s stopped at checkpoint %llu; 'ckptenv restore %s' resumes it here",
		       s->a->name, (unsigned long long)latest, s->a->name);
	} else {
		int sig = job_status_signal(wstatus);
		if (!sig || !fatal_signal(sig) || sig == s->user_signal || !have ||
		    !(s->policy.every_ns || (s->policy.flags & CKPT_POLICY_ON_TERM)))
			return false;
		unsigned grace = park_grace_s(s);
		char gt[32];
		s->park_deadline_ns = ck_now_ns() + grace * 1000000000ull;
		s->park_grace_s = grace;
		notice(s,
		       "job %s was killed by signal %d (%s); 'ckptenv restore %s' restarts it "
		       "here from checkpoint %llu (within %s)",
		       s->a->name, sig, strsignal(sig), s->a->name, (unsigned long long)latest,
		       grace_text(grace, gt, sizeof(gt)));
	}
	s->parked = true;
	s->park_status = wstatus;
	s->park_ckpt = latest;
	if (s->pp && !s->a->pty)
		ptyproxy_hold_input(s->pp, true); /* stdin for the restored job, not the dead one */
	return true;
}

void sup_park_end(struct sup *s)
{
	if (!s->parked)
		return;
	s->parked = false;
	if (s->pp)
		ptyproxy_set_attach_notice(s->pp, NULL);
	sup_log(s, "the stopped job ends for good");
	sup_stdio_job_exited(s, s->park_status);
}

int sup_park_tick(struct sup *s, int timeout)
{
	if (!s->parked || !s->park_deadline_ns)
		return timeout;
	uint64_t now = ck_now_ns();
	if (now >= s->park_deadline_ns) {
		char gt[32];
		sup_log(s, "no restore within %s: the job and its connections end",
			grace_text(s->park_grace_s, gt, sizeof(gt)));
		sup_park_end(s);
		return 0;
	}
	int t = (int)((s->park_deadline_ns - now) / 1000000u) + 1;
	return timeout < 0 ? t : CK_MIN(timeout, t);
}

void sup_restore_in_place(struct sup *s, int c, const struct control_msg *m)
{
	char err[1024];
	if (m->len < 8 || (m->len > 8 && m->payload[m->len - 1] != 0)) {
		control_send_error(c, EINVAL, "bad restore message");
		return;
	}
	if (!s->parked) {
		snprintf(err, sizeof(err),
			 "the job is running; a checkpoint can only be restored once it ended "
			 "(e.g. 'ckptenv checkpoint %s --stop')",
			 s->a->name);
		control_send_error(c, EBUSY, err);
		return;
	}
	uint64_t id = ck_get_le64(m->payload);
	int r = sup_allow_set(s, (const char *)m->payload + 8, m->len - 8);
	if (r < 0) {
		control_send_error(c, -r, "cannot keep the --allow-changed paths");
		return;
	}
	char name[24], path[64];
	snprintf(name, sizeof(name), "%llu", (unsigned long long)id);
	snprintf(path, sizeof(path), "%s/%s", CKPT_DIR, name);
	_cleanup_close_ int dfd = openat(s->a->job_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct ckpt_manifest man;
	r = dfd < 0 ? -errno : ckpt_manifest_read(dfd, &man);
	if (r < 0 || man.id != id) {
		snprintf(err, sizeof(err), "%s/%s: %s; see 'ckptenv checkpoints %s'", s->a->job_dir,
			 path, r == -ENOENT ? "no such checkpoint" : "truncated or corrupt",
			 s->a->name);
		control_send_error(c, r < 0 ? -r : EBADMSG, err);
		return;
	}
	if (!(man.flags & CKPT_F_PTY) != !s->a->pty) {
		snprintf(err, sizeof(err),
			 "checkpoint %s was taken on %s but the stopped job runs on %s; restore "
			 "another checkpoint, or this one once the job has ended",
			 name, man.flags & CKPT_F_PTY ? "a terminal" : "pipes",
			 s->a->pty ? "a terminal" : "pipes");
		control_send_error(c, EINVAL, err);
		return;
	}
	/* Its /tmp must read back before the stopped job's is closed for it. */
	char why[400];
	if (vfs_epoch_check(s->store_dir, man.epoch, why, sizeof(why)) < 0) {
		snprintf(err, sizeof(err),
			 "checkpoint %s cannot be restored: %s; the job stays stopped, 'ckptenv "
			 "checkpoints %s' lists the others",
			 name, why, s->a->name);
		control_send_error(c, EBADMSG, err);
		return;
	}
	/* /tmp back to the checkpoint's epoch: a fresh writable layer over it, as a new
	 * supervisor would open it (the head committed last is left as it is). */
	sup_fusewatch_stop(s);
	vfs_close(s->v, false);
	s->v = NULL;
	struct vfs_options o = {
		.store_dir = s->store_dir, .from_epoch = man.epoch, .keep_orphans = true};
	r = vfs_open(&o, &s->v);
	if (r < 0) {
		s->v = NULL;
		snprintf(err, sizeof(err), "cannot open the job's /tmp at epoch %llu: %s",
			 (unsigned long long)man.epoch, vfs_last_error());
		sup_log(s, "restore in place: %s", err);
		control_send_error(c, -r, err);
		sup_park_end(s);
		return;
	}
	snprintf(s->restore_buf, sizeof(s->restore_buf), "%s", name);
	s->restore_id = s->restore_buf;
	s->restore_pid = man.pid;
	s->in_place = true;
	s->in_place_status = s->park_status;
	s->in_place_exit = s->exit_code;
	s->parked = false;
	if (s->pp)
		ptyproxy_set_attach_notice(s->pp, NULL);
	s->started = false;
	s->user_signal = 0;
	sup_log(s, "restoring checkpoint %s in place", name);
	int exit_code = s->exit_code;
	if (sup_job_start(s, c) == SUP_START_NOT_LAUNCHED) {
		/* Nothing ran (a checkpoint file unusable, say): the stopped job, its connections
		 * and terminals stay for another restore, as after a refusal above. */
		s->done = false;
		s->exit_code = exit_code;
		s->restore_id = NULL;
		s->in_place = false;
		s->parked = true;
		sup_log(s, "restore in place of checkpoint %s failed; the job stays stopped", name);
	}
}

bool sup_park_failed_restore(struct sup *s)
{
	if (!s->in_place)
		return false;
	s->in_place = false;
	/* Rebuilt, or ended on purpose (`ckptenv kill`, a SIGTERM to us): not a failed restore. */
	if (s->job_rebuilt || s->user_signal == SIGKILL || s->term_seen)
		return false;
	/* The restorer refused the image (its reason is in the job's output) or died: the
	 * process was never rebuilt, so the stopped job is still what there is. */
	notice(s, "the restore of checkpoint %s failed; job %s stays stopped: 'ckptenv restore %s "
		  "ID' restores another checkpoint, 'ckptenv checkpoints %s' lists them",
	       s->restore_id ? s->restore_id : "?", s->a->name, s->a->name, s->a->name);
	s->restore_id = NULL;
	s->parked = true;
	s->park_status = s->in_place_status;
	s->exit_code = s->in_place_exit;
	if (s->pp && !s->a->pty)
		ptyproxy_hold_input(s->pp, true); /* for the next restore (sup_job_report) */
	return true;
}

int sup_stdio_restart(struct sup *s, int pty_fd, struct ptyproxy_state *pst)
{
	int r;
	if (pty_fd >= 0) {
		r = ptyproxy_restart(s->pp, pty_fd, NULL, pst);
		ptyproxy_state_free(pst);
	} else {
		for (int i = 0; i < 3; i++) {
			close(s->job_stdio[i]);
			s->job_stdio[i] = -1;
		}
		if (s->a->spec->flags & JOB_F_DETACH) { /* nobody writes its stdin: EOF */
			close(s->sup_stdio[0]);
			s->sup_stdio[0] = -1;
		}
		r = ptyproxy_restart(s->pp, -1, s->sup_stdio, NULL);
		/* Input held since the stop (sup-ckpt.c) stays held until the process is rebuilt
		 * (sup_job_report): a refused restore would take it along. */
		for (int i = 0; i < 3; i++)
			s->sup_stdio[i] = -1;
	}
	if (r < 0)
		return r;
	/* The restored process runs at once; no client to wait for. */
	s->go_pending = true;
	s->go_deadline_ns = ck_now_ns();
	return 0;
}

int sup_allow_set(struct sup *s, const char *names, size_t len)
{
	sup_allow_clear(s);
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += names[i] == 0;
	if (!n)
		return 0;
	char **v = calloc(n, sizeof(*v));
	char *copy = malloc(len);
	if (!v || !copy) {
		free(v);
		free(copy);
		return -ENOMEM;
	}
	memcpy(copy, names, len);
	for (size_t i = 0, k = 0; i < len; i += strlen(copy + i) + 1)
		v[k++] = copy + i;
	s->allow = v;
	s->nallow = n;
	return 0;
}

void sup_allow_clear(struct sup *s)
{
	if (s->allow)
		free(s->allow[0]); /* one block holds every name */
	free(s->allow);
	s->allow = NULL;
	s->nallow = 0;
}
