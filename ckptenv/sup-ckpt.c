/* The supervisor's side of `ckptenv checkpoint`: freeze the job's command process, hold the
 * terminal's input and let the screen model catch up, prepare the vfs epoch (syncfs of the
 * job's /tmp), dump the process into jobs/NAME/checkpoints/.ID.tmp/image, save the terminal
 * state, make the epoch visible as "ckpt-ID", write the manifest, rename the directory to ID
 * (the checkpoint exists from here on), replace LATEST, then resume the job (or end it with
 * --stop). Every step runs on the main thread, which is the tracer from freeze to resume; the
 * vfs threads keep answering the job's /tmp requests meanwhile. */
#include "ckpt.h"
#include "control.h"
#include "supervisor.h"

#include "common/ck.h"
#include "ptyproxy/ptyproxy.h"
#include "restore/restore.h"
#include "vfs/vfs.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

/* A small /proc file (st_size 0: read until EOF) into @buf, NUL-terminated. */
static int read_proc(const char *path, char *buf, size_t len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = ck_read_full(fd, buf, len - 1);
	if (n < 0)
		return (int)n;
	buf[n] = 0;
	return 0;
}

/* Children of the init (host pids), at most @max. Returns the count or -errno. */
static int init_children(pid_t init, pid_t *out, int max)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)init, (int)init);
	char buf[4096];
	int r = read_proc(path, buf, sizeof(buf));
	if (r < 0)
		return r;
	int n = 0;
	for (char *p = buf, *end; *p; p = end) {
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		if (n < max)
			out[n] = (pid_t)v;
		n++;
	}
	return n;
}

/* The pid of @pid in its own (innermost) pid namespace: last field of NSpid. */
static pid_t ns_pid(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	char buf[8192];
	if (read_proc(path, buf, sizeof(buf)) < 0)
		return -1;
	char *l = strstr(buf, "\nNSpid:");
	if (!l)
		return -1;
	l += 7;
	char *eol = strchr(l, '\n');
	if (eol)
		*eol = 0;
	char *last = strrchr(l, '\t');
	return (pid_t)atoi(last ? last + 1 : l);
}

/* The frozen job during a dump. The job is resumed as soon as its memory is copied out
 * (restore_dump_opts.copied), before the image's fsyncs: it is frozen for the copy, not for
 * the disk. */
struct ckpt_live {
	struct sup *s;
	struct restore_freeze *f; /* NULL once resumed */
	int client;		  /* the CLI's socket, for progress reports */
	bool stop;		  /* --stop: stays frozen, ended after the checkpoint */
	uint64_t frozen_ns;	  /* set when resumed */
	uint64_t expected;	  /* resident anonymous + shared bytes of the job (estimate) */
};

static void live_progress(uint64_t bytes, void *userdata)
{
	struct ckpt_live *l = userdata;
	uint8_t p[24];
	ck_put_le64(p, bytes);
	ck_put_le64(p + 8, l->expected);
	ck_put_le64(p + 16, l->f ? 0 : l->frozen_ns);
	if (l->client >= 0)
		(void)control_send(l->client, CONTROL_CKPT_PROGRESS, p, sizeof(p), NULL, 0);
}

static void live_copied(void *userdata)
{
	struct ckpt_live *l = userdata;
	if (l->stop || !l->f)
		return;
	l->frozen_ns = restore_freeze_elapsed_ns(l->f);
	restore_freeze_resume(TAKE_PTR(l->f));
	if (l->s->pp)
		ptyproxy_hold_input(l->s->pp, false);
}

/* RssAnon + RssShmem of @pid from /proc/PID/status: about what a dump stores. 0 unknown. */
static uint64_t resident_bytes(pid_t pid)
{
	char path[64], buf[8192];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (read_proc(path, buf, sizeof(buf)) < 0)
		return 0;
	uint64_t sum = 0;
	static const char *const keys[] = {"\nRssAnon:", "\nRssShmem:"};
	for (size_t i = 0; i < CK_ARRAY_SIZE(keys); i++) {
		const char *l = strstr(buf, keys[i]);
		if (l)
			sum += strtoull(l + strlen(keys[i]), NULL, 10) << 10;
	}
	return sum;
}

struct ckpt_run {
	uint64_t id;
	char tmp[40], name[24];
	int ckdir, tmpfd;
	struct vfs_commit *vc;
	struct ckpt_manifest man;
};

/* Everything between freeze and resume; @err gets one line on failure. */
static int dump_all(struct sup *s, struct ckpt_live *l, struct ckpt_run *k, char *err,
		    size_t errlen)
{
	pid_t pid = restore_freeze_pid(l->f);
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/root/tmp", (int)s->job.init_pid);
	_cleanup_close_ int mfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mfd < 0) {
		snprintf(err, errlen, "cannot open the job's /tmp (%s): %m", path);
		return -errno;
	}
	int r = ckpt_dir_open(s->a->job_fd, true, &k->ckdir);
	if (r < 0) {
		snprintf(err, errlen, "cannot open %s/%s: %s", s->a->job_dir, CKPT_DIR,
			 strerror(-r));
		return r;
	}
	k->id = ckpt_next_id(k->ckdir);
	snprintf(k->name, sizeof(k->name), "%llu", (unsigned long long)k->id);
	snprintf(k->tmp, sizeof(k->tmp), ".%s.tmp", k->name);
	if (mkdirat(k->ckdir, k->tmp, 0700) < 0 ||
	    (k->tmpfd = openat(k->ckdir, k->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "cannot create %s/%s/%s: %m", s->a->job_dir, CKPT_DIR,
			 k->tmp);
		return -errno;
	}
	r = vfs_epoch_prepare(s->v, mfd, &k->vc);
	if (r < 0) {
		k->vc = NULL;
		snprintf(err, errlen, "cannot commit the job's /tmp: %s", vfs_last_error());
		return r;
	}
	/* The terminal's state of the frozen moment: saved before the dump may resume the job. */
	if (s->a->pty && s->pp && (r = ptyproxy_state_save(s->pp, k->tmpfd)) < 0) {
		snprintf(err, errlen, "cannot save the terminal state: %s", strerror(-r));
		return r;
	}
	struct restore_err rerr = {0};
	struct restore_dump_stats st = {0};
	struct restore_dump_opts o = {
		.progress = live_progress, .copied = live_copied, .userdata = l};
	pid_t nspid = ns_pid(pid);
	r = restore_dump(l->f, k->tmpfd, CKPT_IMAGE, &o, &st, &rerr);
	if (r < 0) {
		snprintf(err, errlen, "%s", rerr.msg[0] ? rerr.msg : strerror(-r));
		return r;
	}
	k->man = (struct ckpt_manifest){.id = k->id,
					.epoch = vfs_commit_epoch(k->vc),
					.created = time(NULL),
					.frozen_ns = l->f ? restore_freeze_elapsed_ns(l->f)
							  : l->frozen_ns,
					.bytes = st.bytes_written,
					.flags = s->a->pty ? CKPT_F_PTY : 0,
					.pid = nspid};
	char ref[48];
	snprintf(ref, sizeof(ref), "ckpt-%s", k->name);
	r = vfs_epoch_finish(s->v, k->vc, ref);
	k->vc = NULL;
	if (r < 0) {
		snprintf(err, errlen, "cannot commit the job's /tmp: %s", vfs_last_error());
		return r;
	}
	if ((r = ckpt_manifest_write(k->tmpfd, &k->man)) < 0 ||
	    (fsync(k->tmpfd) < 0 && (r = -errno)) ||
	    (renameat(k->ckdir, k->tmp, k->ckdir, k->name) < 0 && (r = -errno)) ||
	    (fsync(k->ckdir) < 0 && (r = -errno))) {
		snprintf(err, errlen, "cannot complete checkpoint %s: %s", k->name, strerror(-r));
		return r;
	}
	k->tmp[0] = 0; /* renamed: nothing to clean up */
	if ((r = ckpt_latest_write(k->ckdir, k->id)) < 0)
		sup_log(s, "cannot update %s/LATEST: %s", CKPT_DIR, strerror(-r));
	return 0;
}

void sup_checkpoint(struct sup *s, int c, const struct control_msg *m)
{
	uint32_t flags = 0;
	char err[512];
	if (m->len >= 4)
		flags = ck_get_le32(m->payload);
	if (!s->started || s->job.init_pid <= 0 || s->job_ended) {
		control_send_error(c, ESRCH, "the job is not running");
		return;
	}
	pid_t kids[2];
	int n = init_children(s->job.init_pid, kids, 2);
	if (n <= 0) {
		snprintf(err, sizeof(err), "job %s has no process to checkpoint%s%s", s->a->name,
			 n < 0 ? ": " : "", n < 0 ? strerror(-n) : "");
		control_send_error(c, n < 0 ? -n : ESRCH, err);
		return;
	}
	if (n > 1) {
		snprintf(
			err, sizeof(err),
			"job %s has %d processes; only single-process jobs can be checkpointed yet",
			s->a->name, n);
		control_send_error(c, EUSERS, err);
		return;
	}
	struct restore_err rerr = {0};
	struct restore_freeze *f;
	uint64_t expected = resident_bytes(kids[0]);
	int r = restore_freeze(kids[0], &f, &rerr);
	if (r < 0) {
		if (r == -EUSERS)
			snprintf(err, sizeof(err),
				 "job %s has %d processes; only single-process jobs can be "
				 "checkpointed yet",
				 s->a->name, rerr.nprocs);
		else
			snprintf(err, sizeof(err), "cannot freeze the job: %s",
				 rerr.msg[0] ? rerr.msg : strerror(-r));
		sup_log(s, "checkpoint refused: %s", err);
		control_send_error(c, -r, err);
		return;
	}
	if (s->pp) {
		ptyproxy_hold_input(s->pp, true);
		(void)ptyproxy_catch_up(s->pp);
	}
	struct ckpt_run k = {.ckdir = -1, .tmpfd = -1};
	struct ckpt_live l = {.s = s,
			      .f = f,
			      .client = c,
			      .stop = flags & CONTROL_CKPT_STOP,
			      .expected = expected};
	r = dump_all(s, &l, &k, err, sizeof(err));
	uint64_t frozen = l.f ? restore_freeze_elapsed_ns(l.f) : l.frozen_ns;
	if (k.vc)
		vfs_epoch_abort(s->v, k.vc);
	if (r < 0 && k.tmp[0] && k.ckdir >= 0)
		(void)ck_rm_rf_at(k.ckdir, k.tmp);
	bool stop = r == 0 && (flags & CONTROL_CKPT_STOP);
	if (stop) {
		restore_freeze_leave_stopped(TAKE_PTR(l.f));
		kill(s->job.init_pid, SIGKILL);
	} else if (l.f) {
		restore_freeze_resume(TAKE_PTR(l.f));
	}
	if (s->pp)
		ptyproxy_hold_input(s->pp, false);
	if (k.tmpfd >= 0)
		close(k.tmpfd);
	if (k.ckdir >= 0)
		close(k.ckdir);
	if (r < 0) {
		sup_log(s, "checkpoint failed: %s", err);
		control_send_error(c, -r, err);
		return;
	}
	sup_log(s, "checkpoint %s: frozen %.1f ms, %llu bytes, epoch %llu%s", k.name,
		(double)frozen / 1e6, (unsigned long long)k.man.bytes,
		(unsigned long long)k.man.epoch, stop ? "; job stopped" : "");
	uint8_t p[32];
	ck_put_le64(p, k.id);
	ck_put_le64(p + 8, frozen);
	ck_put_le64(p + 16, k.man.epoch);
	ck_put_le64(p + 24, k.man.bytes);
	control_send(c, CONTROL_CHECKPOINTED, p, sizeof(p), NULL, 0);
}
