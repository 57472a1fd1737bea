/* The supervisor's side of `ckptenv checkpoint`: freeze the job's command process, hold the
 * terminal's input and let the screen model catch up, prepare the vfs epoch (syncfs of the
 * job's /tmp), dump the process into jobs/NAME/checkpoints/.ID.tmp/image, save the terminal
 * state, make the epoch visible as "ckpt-ID", write the manifest, rename the directory to ID
 * (the checkpoint exists from here on), replace LATEST, then resume the job (or end it with
 * --stop). The checkpoint runs on its own thread (sup-ckpt-thread.c), the tracer from freeze to
 * resume; the steps on the terminal and the proxy it has the main thread run (sup_ckpt_on_main),
 * which keeps serving them, and the control socket, meanwhile. The vfs threads keep answering
 * the job's /tmp requests. */
#include "ckpt-gc.h"
#include "ckpt.h"
#include "control.h"
#include "supervisor.h"

#include "common/ck.h"
#include "ptyproxy/ptyproxy.h"
#include "restore/restore.h"
#include "vfs/vfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>

/* Dead or dying (exiting, or a SIGKILL on its way: the dump's reads then fail with EIO or
 * ESRCH, which would say nothing to the user). */
static bool process_gone(pid_t pid)
{
	if (sup_proc_exiting(pid))
		return true;
	/* A pending SIGKILL: the tracee is still 't', but its pending sets have it. */
	char path[48];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return true;
	char line[128];
	bool killed = false;
	while (!killed && fgets(line, sizeof(line), f))
		if (!strncmp(line, "ShdPnd:", 7) || !strncmp(line, "SigPnd:", 7))
			killed = strtoull(line + 7, NULL, 16) & (1ull << (SIGKILL - 1));
	fclose(f);
	return killed;
}

/* Children of the init (host pids), at most @max. Returns the count or -errno. */
static int init_children(pid_t init, pid_t *out, int max)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)init, (int)init);
	char buf[4096];
	int r = (int)ck_read_small(path, buf, sizeof(buf));
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

/* /proc/PID/task/TID/status of thread @tid of @pid into @buf. 0 or -errno. */
static int read_status(pid_t pid, pid_t tid, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
	int r = ck_read_small(path, buf, len);
	return r < 0 ? r : 0;
}

/* Where the value of @key ("\nName:") starts in a status file's text, or NULL. */
static char *status_value(char *buf, const char *key)
{
	char *l = strstr(buf, key);
	return l ? l + strlen(key) : NULL;
}

/* The pid of @pid in its own (innermost) pid namespace: last field of NSpid. */
static pid_t ns_pid(pid_t pid)
{
	char buf[8192];
	char *l = read_status(pid, pid, buf, sizeof(buf)) < 0 ? NULL : status_value(buf, "\nNSpid:");
	if (!l)
		return -1;
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

static void release_input(struct sup *s, void *arg)
{
	(void)arg;
	if (s->pp)
		ptyproxy_hold_input(s->pp, false);
}

static void live_copied(void *userdata)
{
	struct ckpt_live *l = userdata;
	if (l->stop || !l->f)
		return;
	l->frozen_ns = restore_freeze_elapsed_ns(l->f);
	restore_freeze_resume(TAKE_PTR(l->f));
	sup_ckpt_on_main(l->s, release_input, NULL);
}

/* RssAnon + RssShmem of @pid from /proc/PID/status: about what a dump stores. 0 unknown. */
static uint64_t resident_bytes(pid_t pid)
{
	char buf[8192];
	if (read_status(pid, pid, buf, sizeof(buf)) < 0)
		return 0;
	uint64_t sum = 0;
	static const char *const keys[] = {"\nRssAnon:", "\nRssShmem:"};
	for (size_t i = 0; i < CK_ARRAY_SIZE(keys); i++) {
		const char *v = status_value(buf, keys[i]);
		if (v)
			sum += strtoull(v, NULL, 10) << 10;
	}
	return sum;
}

struct ckpt_run {
	pid_t init_pid;
	uint64_t id;
	char tmp[40], name[24];
	int ckdir, tmpfd;
	struct vfs_commit *vc;
	struct sup_net_cut *net;
	struct ckpt_manifest man;
	uint64_t *phase; /* SUP_CKPT_PHASE_* ns, accumulated */
};

/* Adds the time since *t0 to @phase and restarts the clock. */
static void lap(struct ckpt_run *k, enum sup_ckpt_phase phase, uint64_t *t0)
{
	uint64_t now = ck_now_ns();
	k->phase[phase] += now - *t0;
	*t0 = now;
}

/* A failure to write into the state directory: say when it is a full disk, and what to do. */
static void write_error(struct sup *s, int r, const char *what, char *err, size_t errlen)
{
	if (r == -ENOSPC || r == -EDQUOT)
		snprintf(err, errlen,
			 "%s: no space left in %s; free space, or drop old checkpoints with "
			 "'ckptenv rm %s --checkpoint ID'; the job goes on, older checkpoints "
			 "are intact",
			 what, s->a->job_dir, s->a->name);
	else
		snprintf(err, errlen, "%s: %s", what, strerror(-r));
}

/* The terminal state and the proxy's table belong to the main loop: saved from there. */
struct main_save {
	int dirfd, r;
	const struct sup_net_cut *net;
	struct restore_dump_opts *dump; /* pty_save_main fills its given stdio pipes */
};

static void pty_save_main(struct sup *s, void *arg)
{
	struct main_save *m = arg;
	m->r = s->a->pty && s->pp ? ptyproxy_state_save(s->pp, m->dirfd) : 0;
	/* Pipe mode: the job's stdio pipes, which a restore gives anew also where the job moved
	 * them (ssh's stdout at fd 5). */
	for (int k = 0; !s->a->pty && s->pp && k < 3; k++) {
		dev_t dev;
		ino_t ino;
		if (ptyproxy_pipe_ident(s->pp, k, &dev, &ino) == 0) {
			m->dump->given[k].dev = dev;
			m->dump->given[k].ino = ino;
		}
	}
}

static void net_save_main(struct sup *s, void *arg)
{
	struct main_save *m = arg;
	m->r = sup_ckpt_net_save(s, m->net, m->dirfd);
}

/* Everything between freeze and resume; @err gets one line on failure. */
static int dump_all(struct sup *s, struct ckpt_live *l, struct ckpt_run *k, char *err,
		    size_t errlen)
{
	uint64_t t0 = ck_now_ns();
	pid_t pid = restore_freeze_pid(l->f);
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/root/tmp", (int)k->init_pid);
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
	/* What an interrupted checkpoint left (none can be in progress: we are the only writer). */
	struct ckpt_sweep_stats sw;
	if (ckpt_sweep(k->ckdir, s->v, s->store_dir, &sw) == 0 && (sw.dirs || sw.refs))
		sup_log(s, "removed %zu unfinished checkpoint director%s and %zu orphan ref%s",
			sw.dirs, sw.dirs == 1 ? "y" : "ies", sw.refs, sw.refs == 1 ? "" : "s");
	k->id = ckpt_next_id(k->ckdir);
	snprintf(k->name, sizeof(k->name), "%llu", (unsigned long long)k->id);
	snprintf(k->tmp, sizeof(k->tmp), ".%s.tmp", k->name);
	if (mkdirat(k->ckdir, k->tmp, 0700) < 0 ||
	    (k->tmpfd = openat(k->ckdir, k->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = -errno;
		char what[300];
		snprintf(what, sizeof(what), "cannot create %s/%s/%s", s->a->job_dir, CKPT_DIR,
			 k->tmp);
		write_error(s, r, what, err, errlen);
		return r;
	}
	lap(k, SUP_CKPT_PHASE_COMMIT, &t0);
	r = vfs_epoch_prepare(s->v, mfd, &k->vc);
	lap(k, SUP_CKPT_PHASE_VFS, &t0);
	if (r < 0) {
		k->vc = NULL;
		char what[300];
		snprintf(what, sizeof(what), "cannot commit the job's /tmp (%s)", vfs_last_error());
		write_error(s, r, what, err, errlen);
		return r;
	}
	/* The terminal's state of the frozen moment: saved before the dump may resume the job. */
	struct restore_dump_opts o = {.progress = live_progress,
				      .copied = live_copied,
				      .userdata = l,
				      .strict = true,
				      .tty_given = s->a->pty};
	struct main_save ms = {.dirfd = k->tmpfd, .net = k->net, .dump = &o};
	sup_ckpt_on_main(s, pty_save_main, &ms);
	if ((r = ms.r) < 0) {
		write_error(s, r, "cannot save the terminal state", err, errlen);
		return r;
	}
	lap(k, SUP_CKPT_PHASE_PTY, &t0);
	struct restore_err rerr = {0};
	struct restore_dump_stats st = {0};
	pid_t nspid = ns_pid(pid);
	r = restore_dump(l->f, k->tmpfd, CKPT_IMAGE, &o, &st, &rerr);
	lap(k, SUP_CKPT_PHASE_MEM, &t0);
	if (r < 0) {
		if (r == -ENOSPC || r == -EDQUOT)
			write_error(s, r, "cannot save the process", err, errlen);
		else if (process_gone(pid))
			snprintf(err, errlen, "the job ended during the checkpoint (killed, or removed "
					      "with 'rm --force'); no checkpoint was made");
		else
			snprintf(err, errlen, "%s", rerr.msg[0] ? rerr.msg : strerror(-r));
		return r;
	}
	sup_ckpt_on_main(s, net_save_main, &ms);
	if ((r = ms.r) < 0) {
		write_error(s, r, "cannot save the job's connections", err, errlen);
		return r;
	}
	lap(k, SUP_CKPT_PHASE_NET, &t0);
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
	/* The ref before the rename: a visible checkpoint always has its epoch (ckpt-gc.c). */
	r = vfs_epoch_finish(s->v, k->vc, ref);
	k->vc = NULL;
	lap(k, SUP_CKPT_PHASE_VFS, &t0);
	if (r < 0) {
		char what[300];
		snprintf(what, sizeof(what), "cannot commit the job's /tmp (%s)", vfs_last_error());
		write_error(s, r, what, err, errlen);
		/* A ref set before the failure would leak its epoch: the next sweep drops it. */
		return r;
	}
	/* The job's command with it: a restore after another `run` of the name still shows and
	 * records the command it brings back. */
	if ((r = job_spec_write(k->tmpfd, s->a->spec)) < 0 ||
	    (r = ckpt_manifest_write(k->tmpfd, &k->man)) < 0 ||
	    (fsync(k->tmpfd) < 0 && (r = -errno)) ||
	    (renameat(k->ckdir, k->tmp, k->ckdir, k->name) < 0 && (r = -errno)) ||
	    (fsync(k->ckdir) < 0 && (r = -errno))) {
		char what[300];
		snprintf(what, sizeof(what), "cannot complete checkpoint %s", k->name);
		write_error(s, r, what, err, errlen);
		(void)vfs_ref_drop(s->v, ref);
		return r;
	}
	k->tmp[0] = 0; /* renamed: nothing to clean up */
	if ((r = ckpt_latest_write(k->ckdir, k->id)) < 0)
		sup_log(s, "cannot update %s/LATEST: %s", CKPT_DIR, strerror(-r));
	lap(k, SUP_CKPT_PHASE_COMMIT, &t0);
	return 0;
}

/* Commit /tmp once while the job still runs: the commit under the freeze then only carries
 * what changed since (a job that just wrote a thousand files is frozen for milliseconds, not
 * for a thousand fsyncs). That epoch is "head" until the checkpoint's own moves head on;
 * nothing refers to it then, and the store folds it. A failure here is only logged: the
 * commit under the freeze does all the work then, and reports. */
static void precommit(struct sup *s, pid_t init_pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/root/tmp", (int)init_pid);
	_cleanup_close_ int mfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	uint64_t e;
	int r = mfd < 0 ? -errno : vfs_epoch_commit(s->v, mfd, NULL, &e);
	if (r < 0)
		sup_log(s, "checkpoint: pre-commit of /tmp failed (%s); doing it all frozen",
			mfd < 0 ? strerror(-r) : vfs_last_error());
}

/* After a new checkpoint: drop the oldest beyond the policy's keep. Logged, never fatal. */
static void prune(struct sup *s)
{
	if (!s->policy.keep)
		return;
	_cleanup_close_ int ckdir = -1;
	if (ckpt_dir_open(s->a->job_fd, false, &ckdir) < 0)
		return;
	uint64_t ids[8];
	size_t n = 0;
	int r = ckpt_prune(ckdir, s->v, s->policy.keep, ids, 8, &n);
	for (size_t i = 0; i < n && i < 8; i++)
		sup_log(s, "dropped checkpoint %llu (keeping the newest %u)",
			(unsigned long long)ids[i], s->policy.keep);
	if (r < 0)
		sup_log(s, "cannot drop old checkpoints: %s", strerror(-r));
}

/* The seccomp filter count of thread @tid of @pid, or -errno. */
static int seccomp_filters(pid_t pid, pid_t tid)
{
	char buf[8192];
	int r = read_status(pid, tid, buf, sizeof(buf));
	const char *n = r < 0 ? NULL : status_value(buf, "\nSeccomp_filters:");
	return r < 0 ? r : n ? atoi(n) : -ENOENT;
}

/* Seccomp filters in any thread of @kid beyond the ones every process of the job has from its
 * init (the network filter): the image records none, so a restore would silently drop them.
 * How many more; 0 also when unreadable (the dump decides then). Strict mode cannot occur:
 * the kernel refuses it to a task that already has filters, as every job's task has. */
static int own_seccomp_filters(pid_t init, pid_t kid)
{
	int base = seccomp_filters(init, init), most = 0;
	if (base < 0)
		return 0;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)kid);
	DIR *d = opendir(path);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		int n = e->d_name[0] != '.' ? seccomp_filters(kid, (pid_t)atoi(e->d_name)) : -1;
		if (n - base > most)
			most = n - base;
	}
	if (d)
		closedir(d);
	return most;
}

int sup_ckpt_start(struct sup *s, const struct sup_ckpt_task *t, char *err, size_t errlen)
{
	if (sup_ckpt_busy(s)) {
		snprintf(err, errlen,
			 "a checkpoint of job %s is in progress; try again once it is complete",
			 s->a->name);
		return -EBUSY;
	}
	if (s->parked || s->park_on_exit) { /* park_on_exit: a --stop's end, the kill on its way */
		snprintf(err, errlen,
			 "job %s is stopped; 'ckptenv restore %s' resumes it from a checkpoint",
			 s->a->name, s->a->name);
		return -ESRCH;
	}
	if (!s->started || s->job.init_pid <= 0 || s->job_ended) {
		snprintf(err, errlen, "the job is not running");
		return -ESRCH;
	}
	pid_t kids[2];
	int n = init_children(s->job.init_pid, kids, 2);
	if (n <= 0) {
		snprintf(err, errlen, "job %s has no process to checkpoint%s%s", s->a->name,
			 n < 0 ? ": " : "", n < 0 ? strerror(-n) : "");
		return n < 0 ? n : -ESRCH;
	}
	if (n > 1) {
		snprintf(err, errlen,
			 "job %s has %d processes; only single-process jobs can be checkpointed yet",
			 s->a->name, n);
		return -EUSERS;
	}
	/* Stopped: the dump's syscall injection cannot run it, and an image without its signal
	 * handlers' addresses would never restore. */
	if (sup_proc_stopped(kids[0])) {
		snprintf(err, errlen,
			 "job %s's process (pid %d here) is stopped (SIGSTOP or SIGTSTP); a stopped "
			 "process cannot be checkpointed yet: 'kill -CONT %d' resumes it",
			 s->a->name, (int)kids[0], (int)kids[0]);
		return -EAGAIN;
	}
	int own = own_seccomp_filters(s->job.init_pid, kids[0]);
	if (own > 0) {
		snprintf(err, errlen,
			 "job %s installed %d seccomp filter%s of its own; a restore could not put "
			 "%s back, so it cannot be checkpointed yet",
			 s->a->name, own, own == 1 ? "" : "s", own == 1 ? "it" : "them");
		return -EOPNOTSUPP;
	}
	struct sup_ckpt_task *task = malloc(sizeof(*task));
	if (!task) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	*task = *t;
	task->init_pid = s->job.init_pid;
	task->kid = kids[0];
	task->hold_path = getenv("CKPTENV_TEST_CKPT_HOLD");
	task->r = 0;
	task->err[0] = 0;
	/* The thread reports progress on the client's socket: the main loop leaves it alone
	 * until the checkpoint has ended (sup_ckpt_ended puts it back). */
	if (task->client >= 0)
		epoll_ctl(s->ep, EPOLL_CTL_DEL, task->client, NULL);
	int r = sup_ckpt_thread_start(s, task);
	if (r < 0) {
		if (task->client >= 0)
			(void)epoll_ctl(s->ep, EPOLL_CTL_ADD, task->client,
					&(struct epoll_event){.events = EPOLLIN, .data.fd = task->client});
		free(task);
		snprintf(err, errlen, "cannot start the checkpoint thread: %s", strerror(-r));
		return r;
	}
	return 0;
}

/* Test only (tests/e2e/ckpt/responsive.sh): stay frozen while the file CKPTENV_TEST_CKPT_HOLD
 * names exists, so a test can look at the supervisor during a checkpoint without guessing how
 * long a dump takes. Bounded: a test that dies does not leave the job frozen for good. */
static void test_hold(struct sup *s, const char *path)
{
	if (!path || access(path, F_OK) < 0)
		return;
	sup_log(s, "checkpoint: test hold: the job stays frozen while %s exists", path);
	for (int i = 0; i < 6000 && access(path, F_OK) == 0; i++)
		nanosleep(&(struct timespec){0, 50000000}, NULL);
}

/* Job frozen: the proxy stops delivering first, then the terminal's input is held and the
 * screen model catches up. Both belong to the main loop. */
struct main_freeze {
	pid_t pid;
	struct sup_net_cut *net;
	uint64_t *phase;
	int r;
	char *err;
	size_t errlen;
};

static void freeze_main(struct sup *s, void *arg)
{
	struct main_freeze *m = arg;
	uint64_t t0 = ck_now_ns();
	m->r = sup_ckpt_net_detach(s, m->pid, m->net, m->err, m->errlen);
	uint64_t t1 = ck_now_ns();
	m->phase[SUP_CKPT_PHASE_NET] += t1 - t0;
	if (s->pp) {
		ptyproxy_hold_input(s->pp, true);
		(void)ptyproxy_catch_up(s->pp);
	}
	m->phase[SUP_CKPT_PHASE_PTY] += ck_now_ns() - t1;
}

struct main_thaw {
	struct sup_net_cut *net;
	bool stop;
	pid_t pid; /* the job's process, still frozen */
};

static void thaw_main(struct sup *s, void *arg)
{
	struct main_thaw *m = arg;
	sup_ckpt_net_finish(s, m->net, m->stop); /* --stop: kept detached for the restore */
	if (!s->pp)
		return;
	if (!m->stop || s->a->pty) { /* keys typed at a stopped job are dropped (docs/pty.md) */
		ptyproxy_hold_input(s->pp, false);
		return;
	}
	/* --stop in pipe mode: stdin is a stream. What the job had not read yet, and what comes
	 * while it is stopped (input stays held), goes to the restored job. */
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd/0", (int)m->pid);
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	ssize_t n = fd < 0 ? 0 : ptyproxy_take_unread_input(s->pp, fd);
	if (fd >= 0)
		close(fd);
	if (n > 0)
		sup_log(s, "checkpoint --stop: %zd bytes of stdin the job had not read are kept for "
			   "the restore",
			n);
}

void sup_ckpt_run(struct sup *s, struct sup_ckpt_task *t)
{
	struct sup_ckpt_result res = {0};
	char *err = t->err;
	size_t errlen = sizeof(t->err);
	uint64_t t0 = ck_now_ns();
	precommit(s, t->init_pid);
	res.precommit_ns = ck_now_ns() - t0;
	t0 = ck_now_ns();
	struct restore_err rerr = {0};
	struct restore_freeze *f;
	uint64_t expected = resident_bytes(t->kid);
	int r = restore_freeze(t->kid, &f, &rerr);
	res.phase_ns[SUP_CKPT_PHASE_FREEZE] = ck_now_ns() - t0;
	if (r < 0) {
		if (r == -EUSERS)
			snprintf(err, errlen,
				 "job %s has %d processes; only single-process jobs can be "
				 "checkpointed yet",
				 s->a->name, rerr.nprocs);
		else
			snprintf(err, errlen, "cannot freeze the job: %s",
				 rerr.msg[0] ? rerr.msg : strerror(-r));
		t->r = r;
		return;
	}
	struct sup_net_cut net = {0}; /* the entries are malloc'd (sup-ckpt-net.c) */
	struct ckpt_run k = {
		.init_pid = t->init_pid, .ckdir = -1, .tmpfd = -1, .phase = res.phase_ns, .net = &net};
	struct main_freeze mf = {.pid = restore_freeze_pid(f), .net = &net, .phase = res.phase_ns,
				 .err = err, .errlen = errlen};
	sup_ckpt_on_main(s, freeze_main, &mf);
	r = mf.r;
	test_hold(s, t->hold_path);
	struct ckpt_live l = {.s = s,
			      .f = f,
			      .client = t->client,
			      .stop = t->flags & CONTROL_CKPT_STOP,
			      .expected = expected};
	if (r == 0)
		r = dump_all(s, &l, &k, err, errlen);
	uint64_t frozen = l.f ? restore_freeze_elapsed_ns(l.f) : l.frozen_ns;
	if (k.vc)
		vfs_epoch_abort(s->v, k.vc);
	if (r < 0 && k.tmp[0] && k.ckdir >= 0)
		(void)ck_rm_rf_at(k.ckdir, k.tmp);
	bool stop = r == 0 && (t->flags & CONTROL_CKPT_STOP);
	t0 = ck_now_ns();
	struct main_thaw mt = {.net = &net, .stop = stop, .pid = mf.pid};
	sup_ckpt_on_main(s, thaw_main, &mt);
	res.phase_ns[SUP_CKPT_PHASE_NET] += ck_now_ns() - t0;
	/* --stop: the init is killed by the main thread (sup_ckpt_ended), which reaps it. */
	if (stop)
		restore_freeze_leave_stopped(TAKE_PTR(l.f));
	else if (l.f)
		restore_freeze_resume(TAKE_PTR(l.f));
	if (k.tmpfd >= 0)
		close(k.tmpfd);
	if (k.ckdir >= 0)
		close(k.ckdir);
	t->r = r;
	if (r < 0)
		return;
	res.id = k.id;
	res.epoch = k.man.epoch;
	res.bytes = k.man.bytes;
	res.frozen_ns = frozen;
	struct vfs_commit_stats vs;
	vfs_last_commit_stats(s->v, &vs);
	sup_log(s, "checkpoint %s: /tmp commit: syncfs %.1f ms, seal %.1f ms, data sync %.1f ms "
		   "(%llu layers, %llu bytes), meta %.1f ms, refs %.1f ms",
		k.name, (double)vs.syncfs_ns / 1e6, (double)vs.seal_ns / 1e6,
		(double)vs.data_sync_ns / 1e6, (unsigned long long)vs.layers,
		(unsigned long long)vs.bytes, (double)vs.meta_write_ns / 1e6,
		(double)vs.refs_write_ns / 1e6);
	sup_log(s,
		"checkpoint %s: frozen %.1f ms (freeze %.1f, net %.1f, vfs %.1f, pty %.1f, memory "
		"%.1f, commit %.1f; /tmp pre-commit before the freeze %.1f), %llu bytes, epoch "
		"%llu%s",
		k.name, (double)frozen / 1e6, (double)res.phase_ns[SUP_CKPT_PHASE_FREEZE] / 1e6,
		(double)res.phase_ns[SUP_CKPT_PHASE_NET] / 1e6,
		(double)res.phase_ns[SUP_CKPT_PHASE_VFS] / 1e6,
		(double)res.phase_ns[SUP_CKPT_PHASE_PTY] / 1e6,
		(double)res.phase_ns[SUP_CKPT_PHASE_MEM] / 1e6,
		(double)res.phase_ns[SUP_CKPT_PHASE_COMMIT] / 1e6, (double)res.precommit_ns / 1e6,
		(unsigned long long)k.man.bytes,
		(unsigned long long)k.man.epoch, stop ? "; job stopped" : "");
	prune(s);
	t->res = res;
}

static void reply(struct sup *s, const struct sup_ckpt_task *t)
{
	int c = t->client;
	if (t->r < 0) {
		if (t->r != -ESRCH)
			sup_log(s, "checkpoint failed: %s", t->err);
		control_send_error(c, -t->r, t->err);
		return;
	}
	uint8_t p[32 + 8 * SUP_CKPT_PHASES];
	ck_put_le64(p, t->res.id);
	ck_put_le64(p + 8, t->res.frozen_ns);
	ck_put_le64(p + 16, t->res.epoch);
	ck_put_le64(p + 24, t->res.bytes);
	for (int i = 0; i < SUP_CKPT_PHASES; i++)
		ck_put_le64(p + 32 + 8 * i, t->res.phase_ns[i]);
	control_send(c, CONTROL_CHECKPOINTED, p, sizeof(p), NULL, 0);
}

void sup_ckpt_ended(struct sup *s, const struct sup_ckpt_task *t)
{
	bool stopped = t->r == 0 && (t->flags & CONTROL_CKPT_STOP);
	bool term = s->term_pending;
	s->term_pending = false;
	if (stopped) {
		/* Parked after `checkpoint --stop` (sup-restore.c); not when the supervisor is to
		 * end: a SIGTERM came meanwhile, or this was the final checkpoint on SIGTERM. */
		s->park_on_exit = t->origin == SUP_CKPT_BY_CLIENT && !term;
		s->user_signal = SIGKILL; /* our own kill: not a crash to park on */
		if (s->job.init_pid > 0)
			kill(s->job.init_pid, SIGKILL);
	}
	if (t->client >= 0) {
		reply(s, t);
		if (epoll_ctl(s->ep, EPOLL_CTL_ADD, t->client,
			      &(struct epoll_event){.events = EPOLLIN, .data.fd = t->client}) < 0)
			sup_log(s, "epoll: %m"); /* the client then never gets another answer */
	} else {
		sup_periodic_ended(s, t);
	}
	/* A SIGTERM during the checkpoint was kept for now: handled anew (signalfd). */
	if (term && !stopped)
		kill(getpid(), SIGTERM);
}

void sup_checkpoint(struct sup *s, int c, const struct control_msg *m)
{
	struct sup_ckpt_task t = {.origin = SUP_CKPT_BY_CLIENT, .client = c};
	if (m->len >= 4)
		t.flags = ck_get_le32(m->payload);
	int r = sup_ckpt_start(s, &t, t.err, sizeof(t.err));
	if (r < 0) {
		t.r = r;
		reply(s, &t);
	}
}
