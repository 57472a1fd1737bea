/* The per-job supervisor: a daemon of its own (forked by `ckptenv run`, setsid, stdio on
 * jobs/NAME/log) that owns the job's vfs and serves the control socket until the job ends.
 *
 * Life: hold supervisor.lock (inherited from the CLI, so there is no window in which a second
 * `run` could start) -> vfs_open -> listen on control.sock -> report ready -> wait for START
 * (which carries the job's stdio) -> launch the init -> serve /tmp -> loop over control
 * clients and a signalfd -> on the init's exit: vfs_close(commit head), status file, EXITED to
 * every client, release the lock, exit. A client is only ever closed, never trusted: its uid is
 * checked with SO_PEERCRED and every message is bounded. */
#include "ckpt.h"
#include "control.h"
#include "supervisor.h"

#include "common/ck.h"
#include "ptyproxy/ptyproxy.h"
#include "vfs/vfs.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#define MAX_CLIENTS	 SUP_MAX_CLIENTS
#define START_TIMEOUT_MS 30000
#define CONTROL_SOCK	 "control.sock"

void sup_log(const struct sup *s, const char *fmt, ...)
{
	char msg[1024], ts[32];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
	ck_log("%s ckptenv supervisor %s[%d]: %s", ts, s->a->name, (int)getpid(), msg);
}

static void report_ready(int *fd, const char *err)
{
	if (*fd < 0)
		return;
	if (err)
		(void)ck_write_full(*fd, err, strlen(err));
	else
		(void)ck_write_full(*fd, "", 1);
	close(*fd);
	*fd = -1;
}

static int ep_add(struct sup *s, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
	return epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void client_close(struct sup *s, int i)
{
	if (s->clients[i] < 0)
		return;
	epoll_ctl(s->ep, EPOLL_CTL_DEL, s->clients[i], NULL);
	close(s->clients[i]);
	s->clients[i] = -1;
}

static void client_accept(struct sup *s)
{
	for (;;) {
		_cleanup_close_ int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				sup_log(s, "accept: %m");
			return;
		}
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
			sup_log(s, "client: SO_PEERCRED: %m; closing");
			continue;
		}
		if (cred.uid != getuid() && cred.uid != 0) {
			sup_log(s, "client pid %d uid %u: not our uid; closing", (int)cred.pid,
			     (unsigned)cred.uid);
			continue;
		}
		int slot = -1;
		for (int i = 0; i < MAX_CLIENTS && slot < 0; i++)
			if (s->clients[i] < 0)
				slot = i;
		if (slot < 0) {
			sup_log(s, "client pid %d: too many clients; closing", (int)cred.pid);
			continue;
		}
		if (ep_add(s, fd) < 0) {
			sup_log(s, "epoll: %m");
			continue;
		}
		s->clients[slot] = TAKE_FD(fd);
	}
}

void sup_job_watch_running(struct sup *s)
{
	if (s->job.sock >= 0 && ep_add(s, s->job.sock) < 0) {
		sup_log(s, "epoll: %m; not waiting for the command's exec");
		launch_running(&s->job);
	}
}

void sup_job_report(struct sup *s)
{
	if (s->job.sock < 0)
		return;
	epoll_ctl(s->ep, EPOLL_CTL_DEL, s->job.sock, NULL);
	s->job_rebuilt = launch_running(&s->job);
	if (!s->job_rebuilt)
		return;
	bool in_place = s->in_place;
	s->in_place = false;
	if (!s->restore_id)
		return;
	/* The restored process has its /tmp files open again: the unlinked ones need no pin. */
	vfs_orphans_release(s->v);
	if (s->pp && !s->a->pty)
		ptyproxy_hold_input(s->pp, false); /* what was held since the stop goes to it */
	if (in_place && s->a->pty && s->job.init_pid > 0)
		kill(s->job.init_pid, SIGWINCH); /* its terminal's size may have changed meanwhile */
}

bool sup_job_starting(const struct sup *s)
{
	return s->started && !s->job_ended && !s->parked && (s->go_pending || s->job.sock >= 0);
}

int sup_job_start(struct sup *s, int c)
{
	sup_job_report(s); /* a restore in place: the last job's report is moot */
	s->job_rebuilt = false;
	if (s->started) {
		control_send_error(c, EBUSY, "the job has already been started");
		return -EBUSY;
	}
	struct launch_args la = {.spec = s->a->spec, .allow_other = geteuid() == 0,
				 .stdio = {0, 1, 2}, .restore_dirfd = -1};
	char err[512] = "";
	int fuse_fd = -1, pty_fd = -1;
	_cleanup_close_ int rdir = -1;
	struct ptyproxy_state *pst = NULL;
	int r = 0;
	if (s->restore_id) {
		char path[64];
		snprintf(path, sizeof(path), "%s/%s", CKPT_DIR, s->restore_id);
		rdir = openat(s->a->job_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (rdir < 0) {
			r = -errno;
			snprintf(err, sizeof(err), "cannot open %s/%s: %m", s->a->job_dir, path);
		} else if (s->a->pty && ptyproxy_state_load(rdir, &pst) < 0) {
			sup_log(s, "no usable terminal state in %s; default modes", path);
		}
		la.restore_dirfd = rdir;
		la.restore_id = CKPT_IMAGE;
		la.restore_pid = s->restore_pid;
		la.allow_changed = s->nallow ? (const char *const *)s->allow : s->a->allow_changed;
		la.nallow_changed = s->nallow ? s->nallow : s->a->nallow_changed;
	}
	_cleanup_free_ int *hand = NULL, *targets = NULL;
	size_t nhand = 0;
	if (r == 0 && rdir >= 0 &&
	    (r = sup_ckpt_net_restore(s, rdir, &hand, &targets, &nhand, err, sizeof(err))) == 0) {
		la.hand_fds = hand;
		la.hand_targets = targets;
		la.nhand = nhand;
	}
	if (r == 0)
		r = sup_stdio_prepare(s, &la);
	if (r == 0 && pst) {
		static struct termios tio;
		tio = *ptyproxy_state_termios(pst);
		la.tio = &tio;
		la.ws = *ptyproxy_state_winsize(pst);
	}
	ptyproxy_state_free(pst);
	if (r < 0 && !err[0])
		snprintf(err, sizeof(err), "cannot create the job's stdio pipes: %s", strerror(-r));
	else if (r == 0)
		r = launch_job(&la, &s->job, &fuse_fd, &pty_fd, err, sizeof(err));
	if (r < 0)
		for (size_t i = 0; i < nhand; i++)
			close(hand[i]);
	if (r < 0) {
		sup_log(s, "cannot start the job: %s", err);
		control_send_error(c, -r, err);
		s->done = true;
		s->exit_code = -1;
		return SUP_START_NOT_LAUNCHED;
	}
	/* The network first: the job's filter notifies the listener from launch_go() on. */
	r = sup_net_start(s, TAKE_FD(s->job.net_fd));
	if (r < 0) {
		close(fuse_fd);
		if (pty_fd >= 0)
			close(pty_fd);
		snprintf(err, sizeof(err), "cannot serve the job's network: %s", strerror(-r));
	} else if ((r = sup_stdio_start(s, pty_fd)) < 0) {
		close(fuse_fd);
		snprintf(err, sizeof(err), "cannot serve the job's %s: %s",
			 s->a->pty ? "terminal" : "stdio", strerror(-r));
	} else if ((r = vfs_serve(s->v, fuse_fd)) < 0) {
		snprintf(err, sizeof(err), "cannot serve the job's /tmp: %s", strerror(-r));
	} else {
		(void)sup_fusewatch_start(s);
	}
	if (r < 0) {
		sup_log(s, "%s", err);
		launch_abort(&s->job);
		control_send_error(c, -r, err);
		s->done = true;
		s->exit_code = -1;
		return r;
	}
	s->started = true;
	s->started_at = time(NULL);
	if (s->restore_id && s->pp) {
		/* The log keeps what the old run printed after the checkpoint: say where the
		 * restored run begins. */
		char note[128], t[32];
		struct tm tm;
		strftime(t, sizeof(t), "%Y-%m-%d %H:%M:%S", localtime_r(&s->started_at, &tm));
		snprintf(note, sizeof(note), "[ckptenv: restored from checkpoint %s at %s]",
			 s->restore_id, t);
		ptyproxy_log_note(s->pp, note);
	}
	if (getrandom(&s->run_id, sizeof(s->run_id), 0) != sizeof(s->run_id))
		s->run_id = ck_now_ns() ^ ((uint64_t)getpid() << 32);
	struct job_run run = {.supervisor_pid = getpid(),
			      .init_pid = s->job.init_pid,
			      .run_id = s->run_id,
			      .started = s->started_at};
	r = job_run_write(s->a->job_fd, &run);
	if (r < 0)
		sup_log(s, "cannot write %s/run: %s", s->a->job_dir, strerror(-r));
	/* launch_go() comes from sup_stdio_tick(), once the client is attached. */
	sup_log(s, "job started, init pid %d, %s", (int)s->job.init_pid,
		s->a->pty ? "on a terminal" : "on pipes");
	/* STARTED: le32 init pid, then what the restore reports (lines, sup-ckpt-net.c). */
	uint64_t kept = s->v ? vfs_kept_head(s->v) : 0;
	if (kept && !s->restore_id) {
		char note[300];
		snprintf(note, sizeof(note),
			 "/tmp as the last run left it is kept as snapshot %llu ('ckptenv snapshot "
			 "%s --drop %llu' frees it)",
			 (unsigned long long)kept, s->a->name, (unsigned long long)kept);
		sup_log(s, "%s", note);
		control_send_note(c, 0, note);
	}
	uint8_t p[4 + sizeof(s->net_report)];
	size_t rl = s->restore_id ? strlen(s->net_report) : 0;
	ck_put_le32(p, (uint32_t)s->job.init_pid);
	memcpy(p + 4, s->net_report, rl);
	control_send(c, CONTROL_STARTED, p, 4 + rl, NULL, 0);
	return 0;
}

/* What a checkpoint in progress would race with (the store's epochs and refs, a restore)
 * waits for its end: the client's message is kept and its socket leaves the epoll set until
 * run_deferred. The other clients go on being served meanwhile. */
static void defer(struct sup *s, int i, const struct control_msg *m)
{
	struct control_msg *copy = malloc(sizeof(*copy));
	if (!copy) {
		control_send_error(s->clients[i], ENOMEM, "out of memory; try again");
		return;
	}
	*copy = *m;
	epoll_ctl(s->ep, EPOLL_CTL_DEL, s->clients[i], NULL);
	s->deferred[i] = copy;
	s->ndeferred++;
}

static bool defer_busy(struct sup *s, int i, const struct control_msg *m)
{
	if (!sup_ckpt_busy(s))
		return false;
	defer(s, i, m);
	return true;
}

static void do_snapshot(struct sup *s, int c)
{
	if (s->parked) { /* stopped: its /tmp mount gone with it */
		char err[300];
		snprintf(err, sizeof(err),
			 "job %s is stopped at a checkpoint: its /tmp is the checkpoint's; 'ckptenv "
			 "restore %s' resumes it, then snapshot",
			 s->a->name, s->a->name);
		control_send_error(c, ESRCH, err);
		return;
	}
	if (!s->started) {
		control_send_error(c, ESRCH, "the job is not running");
		return;
	}
	char path[64], err[512];
	uint64_t t0 = ck_now_ns();
	snprintf(path, sizeof(path), "/proc/%d/root/tmp", (int)s->job.init_pid);
	_cleanup_close_ int mfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mfd < 0) {
		snprintf(err, sizeof(err), "cannot open the job's /tmp (%s): %m", path);
		control_send_error(c, errno, err);
		return;
	}
	struct vfs_commit *vc;
	int r = vfs_epoch_prepare(s->v, mfd, &vc);
	if (r == 0) {
		char ref[64];
		uint64_t epoch = vfs_commit_epoch(vc);
		snprintf(ref, sizeof(ref), "snap-%llu", (unsigned long long)epoch);
		r = vfs_epoch_finish(s->v, vc, ref);
		if (r == 0) {
			uint64_t dt = ck_now_ns() - t0;
			sup_log(s, "snapshot %s committed in %.1f ms", ref, (double)dt / 1e6);
			struct vfs_commit_stats st;
			vfs_last_commit_stats(s->v, &st);
			uint8_t p[40];
			ck_put_le64(p, epoch);
			ck_put_le64(p + 8, dt);
			ck_put_le64(p + 16, st.syncfs_ns);
			ck_put_le64(p + 24, st.seal_ns + st.data_sync_ns + st.meta_write_ns +
						    st.refs_write_ns);
			ck_put_le64(p + 32, st.bytes);
			control_send(c, CONTROL_SNAPPED, p, sizeof(p), NULL, 0);
			return;
		}
	}
	snprintf(err, sizeof(err), "snapshot failed: %s", vfs_last_error());
	sup_log(s, "%s", err);
	control_send_error(c, -r, err);
}

static void do_drop(struct sup *s, int c, const struct control_msg *m)
{
	struct ck_rd rd = {.p = m->payload, .len = m->len};
	const char *p;
	size_t l;
	char ref[64];
	if (!ck_rd_str(&rd, sizeof(ref) - 1, &p, &l) || memchr(p, 0, l)) {
		control_send_error(c, EINVAL, "bad reference name");
		return;
	}
	memcpy(ref, p, l);
	ref[l] = 0;
	int r = vfs_ref_drop(s->v, ref);
	if (r < 0) {
		char err[256];
		snprintf(err, sizeof(err), "cannot drop %s: %s; see 'ckptenv snapshots %s'", ref,
			 r == -ENOENT ? "no such snapshot" : strerror(-r), s->a->name);
		control_send_error(c, -r, err);
		return;
	}
	sup_log(s, "dropped %s", ref);
	control_send(c, CONTROL_OK, NULL, 0, NULL, 0);
}

static void client_request(struct sup *s, int i, const struct control_msg *mp);

/* A client that hung up while its request waited (a CLI stopped with Ctrl-C): its socket is
 * out of the epoll set, so only a look at it tells. */
static bool client_gone(int c)
{
	struct pollfd p = {.fd = c, .events = POLLRDHUP};
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* After a checkpoint: the requests that waited for it, their clients back in the epoll set. */
static void run_deferred(struct sup *s)
{
	for (int i = 0; i < MAX_CLIENTS && s->ndeferred; i++) {
		struct control_msg *m = TAKE_PTR(s->deferred[i]);
		if (!m)
			continue;
		s->ndeferred--;
		if (client_gone(s->clients[i])) { /* its CLI was interrupted: nothing to do for it */
			client_close(s, i);
			free(m);
			continue;
		}
		if (ep_add(s, s->clients[i]) < 0)
			sup_log(s, "epoll: %m"); /* that client then never gets another answer */
		client_request(s, i, m);
		free(m);
	}
}

static void client_message(struct sup *s, int i)
{
	int c = s->clients[i];
	struct control_msg m;
	int r = control_recv(c, &m);
	if (r == -ECONNRESET) {
		client_close(s, i);
		return;
	}
	if (r < 0) {
		sup_log(s, "client %d: %s; closing", i, r == -EBADMSG ? "bad message" : strerror(-r));
		client_close(s, i);
		return;
	}
	if (m.nfds) {
		sup_log(s, "client %d: descriptors on a message of type %u; closing", i, m.type);
		control_msg_close_fds(&m);
		client_close(s, i);
		return;
	}
	client_request(s, i, &m);
}

static void client_request(struct sup *s, int i, const struct control_msg *m)
{
	int c = s->clients[i];
	uint32_t sig;
	switch (m->type) {
	case CONTROL_START:
		(void)sup_job_start(s, c);
		break;
	case CONTROL_INFO: {
		uint8_t b[20 + 12 * CONTROL_CLIENTS_MAX + 16];
		control_send(c, CONTROL_INFO_REPLY, b, sup_stdio_info_pack(s, b, sizeof(b)), NULL, 0);
		break;
	}
	case CONTROL_SIGNAL:
		if (control_parse_u32(m, &sig) < 0 || sig == 0 || sig >= (uint32_t)NSIG) {
			sup_log(s, "client %d: bad SIGNAL message; closing", i);
			client_close(s, i);
			return;
		}
		if (s->started && s->job.init_pid > 0) {
			s->user_signal = (int)sig; /* a job it kills is not a crash to park on */
			kill(s->job.init_pid, (int)sig);
		}
		control_send(c, CONTROL_OK, NULL, 0, NULL, 0);
		break;
	case CONTROL_KILL:
		s->user_signal = SIGKILL;
		if (s->parked)
			sup_park_end(s);
		else if (s->started && s->job.init_pid > 0)
			kill(s->job.init_pid, SIGKILL);
		else if (!s->started)
			s->done = true;
		control_send(c, CONTROL_OK, NULL, 0, NULL, 0);
		break;
	case CONTROL_SNAPSHOT:
		if (!defer_busy(s, i, m))
			do_snapshot(s, c);
		break;
	case CONTROL_DROP:
		if (!defer_busy(s, i, m))
			do_drop(s, c, m);
		break;
	case CONTROL_CHECKPOINT: /* waits for a checkpoint in progress, and for the exec */
		if (sup_ckpt_busy(s) || sup_job_starting(s))
			defer(s, i, m);
		else
			sup_checkpoint(s, c, m);
		break;
	case CONTROL_NET_STATUS:
		sup_net_status(s, c);
		break;
	case CONTROL_CKPT_DROP:
		if (!defer_busy(s, i, m))
			sup_ckpt_drop(s, c, m);
		break;
	case CONTROL_RESTORE:
		if (!defer_busy(s, i, m))
			sup_restore_in_place(s, c, m);
		break;
	default:
		sup_log(s, "client %d: unknown message type %u; closing", i, m->type);
		client_close(s, i);
	}
}

static void handle_signals(struct sup *s)
{
	struct signalfd_siginfo si;
	while (read(s->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGTERM && sup_periodic_term(s))
			continue;
		if (si.ssi_signo != SIGCHLD && s->parked) {
			sup_log(s, "got signal %u: ending the stopped job", si.ssi_signo);
			sup_park_end(s);
			continue;
		}
		if (si.ssi_signo != SIGCHLD) {
			s->term_seen = true;
			sup_log(s, "got signal %u: %s", si.ssi_signo,
			     s->started ? "forwarding SIGTERM to the job" : "exiting");
			if (s->started && s->job.init_pid > 0)
				kill(s->job.init_pid, SIGTERM);
			else if (!s->started)
				s->done = true;
			continue;
		}
		int status;
		pid_t p;
		/* __WNOTHREAD: our own children only. A tracer's whole thread group may wait for
		 * its tracees, and this would take the ptrace stops the checkpoint thread waits
		 * for (and reap the job's process the checkpoint has seized). */
		while ((p = waitpid(-1, &status, WNOHANG | __WNOTHREAD)) > 0) {
			if (!s->started || p != s->job.init_pid)
				continue;
			s->exit_code =
				WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
			s->job.init_pid = -1;
			sup_log(s, "job ended with exit status %d", s->exit_code);
			sup_job_report(s); /* sent before the init ended, if at all */
			if (!sup_park_failed_restore(s) && !sup_park_on_exit(s, status)) {
				sup_net_job_ended(s); /* held connections end as they would have */
				sup_stdio_job_exited(s, status);
			}
		}
	}
}

/* State letter and flags of /proc/PID/stat. -errno when it cannot be read (gone). */
static int proc_stat(pid_t pid, char *ret_state, unsigned long *ret_flags)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -errno : ck_read_full(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return n < 0 ? (int)n : -ENODATA;
	buf[n] = 0;
	const char *p = strrchr(buf, ')'); /* comm may hold spaces: fields after it */
	if (!p || sscanf(p + 1, " %c %*d %*d %*d %*d %*d %lu", ret_state, ret_flags) != 2)
		return -EBADMSG;
	return 0;
}

bool sup_proc_exiting(pid_t pid)
{
	char state;
	unsigned long flags;
	/* PF_EXITING: also set for zombies and dead tasks */
	return proc_stat(pid, &state, &flags) < 0 || (flags & 0x4) != 0;
}

bool sup_proc_stopped(pid_t pid)
{
	char state;
	unsigned long flags;
	return proc_stat(pid, &state, &flags) == 0 && state == 'T';
}

static int setup(struct sup *s, char *err, size_t errlen)
{
	const struct supervisor_args *a = s->a;
	_cleanup_free_ char *store = NULL;
	if (asprintf(&store, "%s/store", a->job_dir) < 0)
		return -ENOMEM;
	struct vfs_options o = {.store_dir = store,
				.from_epoch = a->restore_epoch ? a->restore_epoch : a->spec->from_epoch,
				.keep_orphans = a->restore_epoch != 0,
				.keep_head = a->restore_epoch == 0};
	int r = vfs_open(&o, &s->v);
	if (r < 0) {
		const char *what = vfs_last_error();
		char h[200];
		if (r == -ENOENT && a->spec->from_epoch && !a->restore_epoch) {
			snprintf(err, errlen, "no snapshot %llu of job %s; see 'ckptenv snapshots %s'",
				 (unsigned long long)a->spec->from_epoch, a->name, a->name);
			return r;
		}
		if (r == -ENOENT && a->spec->from_epoch)
			snprintf(h, sizeof(h), "see 'ckptenv snapshots %s'", a->name);
		else if (r == -EBUSY)
			snprintf(h, sizeof(h), "another process uses the store");
		else if (r == -EPROTONOSUPPORT)
			snprintf(h, sizeof(h), "a newer ckptenv wrote this store");
		else if (r == -ENOSPC || r == -EDQUOT)
			snprintf(h, sizeof(h), "free space on the disk of %s and try again", store);
		else
			snprintf(h, sizeof(h), "'ckptenv rm %s' discards the job's data", a->name);
		if (what && *what)
			snprintf(err, errlen, "%s; %s", what, h);
		else
			snprintf(err, errlen, "cannot open the store %s: %s; %s", store,
				 strerror(-r), h);
		return r;
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	s->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	if (s->sig_fd < 0 || s->ep < 0) {
		snprintf(err, errlen, "signalfd/epoll: %m");
		return -errno;
	}
	s->listen_fd = control_listen(a->job_fd, CONTROL_SOCK);
	if (s->listen_fd < 0) {
		snprintf(err, errlen, "cannot listen on %s/%s: %s", a->job_dir, CONTROL_SOCK,
			 strerror(-s->listen_fd));
		return s->listen_fd;
	}
	if ((r = ep_add(s, s->listen_fd)) < 0 || (r = ep_add(s, s->sig_fd)) < 0) {
		snprintf(err, errlen, "epoll: %s", strerror(-r));
		return r;
	}
	if ((r = sup_ckpt_thread_setup(s, err, errlen)) < 0 ||
	    (r = sup_periodic_setup(s, err, errlen)) < 0)
		return r;
	return sup_stdio_setup(s, err, errlen);
}

static void finish(struct sup *s)
{
	sup_ckpt_thread_close(s); /* a checkpoint in progress ends first: it uses what follows */
	run_deferred(s);
	if (s->job.init_pid > 0) { /* leaving early: take the job down with us */
		kill(s->job.init_pid, SIGKILL);
		waitpid(s->job.init_pid, NULL, 0);
	}
	sup_stdio_close(s);
	sup_net_linger(s);
	sup_net_close(s);
	sup_allow_clear(s);
	sup_periodic_close(s);
	sup_fusewatch_stop(s);
	int r = vfs_close(s->v, s->started);
	char note[1024] = "";
	int note_err = -r;
	if (r < 0) {
		sup_log(s, "closing the store failed: %s (%s)", strerror(-r), vfs_last_error());
		/* Told before EXITED: the job ended well, but its /tmp is not what it left. */
		snprintf(note, sizeof(note),
			 "the job's /tmp could not be saved (%s): what it changed there since the "
			 "last checkpoint or snapshot is lost%s",
			 vfs_last_error()[0] ? vfs_last_error() : strerror(-r),
			 r == -ENOSPC ? "; the disk of CKPTENV_HOME is full" : "");
	}
	s->v = NULL;
	if (s->started) {
		struct job_status st = {.exit_code = s->exit_code,
					.run_id = s->run_id,
					.started = s->started_at,
					.ended = time(NULL)};
		r = job_status_write(s->a->job_fd, &st);
		if (r < 0)
			sup_log(s, "cannot write %s/status: %s", s->a->job_dir, strerror(-r));
	}
	if (s->listen_fd >= 0) {
		unlinkat(s->a->job_fd, CONTROL_SOCK, 0);
		close(s->listen_fd);
	}
	/* Release the lock before telling clients, so a `run` right after the CLI returns finds
	 * the job stopped. */
	close(s->a->lock_fd);
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (s->clients[i] < 0)
			continue;
		if (s->started && note[0])
			control_send_note(s->clients[i], note_err, note);
		if (s->started)
			control_send_u32(s->clients[i], CONTROL_EXITED, (uint32_t)s->exit_code);
		client_close(s, i);
	}
}

int supervisor_main(const struct supervisor_args *a)
{
	struct sup s = {.a = a,
			.ep = -1,
			.listen_fd = -1,
			.attach_fd = -1,
			.sig_fd = -1,
			.periodic_fd = -1,
			.restore_id = a->restore_id,
			.restore_pid = a->restore_pid,
			.job = {-1, -1, -1},
			.job_stdio = {-1, -1, -1},
			.sup_stdio = {-1, -1, -1}};
	for (int i = 0; i < MAX_CLIENTS; i++)
		s.clients[i] = -1;
	int ready_fd = a->ready_fd;
	signal(SIGPIPE, SIG_IGN);
	sup_log(&s, "starting");

	char err[1024] = "";
	if (setup(&s, err, sizeof(err)) < 0) {
		sup_log(&s, "%s", err);
		report_ready(&ready_fd, err);
		finish(&s);
		return 1;
	}
	report_ready(&ready_fd, NULL);

	uint64_t deadline = ck_now_ns() + (uint64_t)START_TIMEOUT_MS * 1000000u;
	while (!s.done) {
		if (s.ndeferred && !sup_ckpt_busy(&s) && !sup_job_starting(&s))
			run_deferred(&s);
		int timeout = sup_park_tick(&s, sup_stdio_tick(&s));
		if (s.done)
			break;
		if (!s.started) {
			uint64_t now = ck_now_ns();
			if (now >= deadline) {
				sup_log(&s, "no client started the job in time; exiting");
				break;
			}
			timeout = (int)((deadline - now) / 1000000u) + 1;
		}
		struct epoll_event evs[16];
		int n = epoll_wait(s.ep, evs, 16, timeout);
		if (n < 0 && errno != EINTR) {
			sup_log(&s, "epoll_wait: %m");
			break;
		}
		for (int k = 0; k < n; k++) {
			int fd = evs[k].data.fd;
			if (fd == s.listen_fd) {
				client_accept(&s);
			} else if (fd == s.sig_fd) {
				handle_signals(&s);
			} else if (fd == s.attach_fd) {
				sup_attach_accept(&s);
			} else if (sup_net_owns(&s, fd)) {
				sup_net_dispatch(&s);
			} else if (sup_ckpt_thread_owns(&s, fd)) {
				sup_ckpt_thread_dispatch(&s);
			} else if (fd == s.periodic_fd) {
				sup_periodic_fire(&s);
			} else if (fd == s.job.sock) {
				sup_job_report(&s);
			} else if (!s.pp || ptyproxy_handle(s.pp, fd, evs[k].events) == -ENOENT) {
				for (int i = 0; i < MAX_CLIENTS; i++)
					if (s.clients[i] == fd) {
						client_message(&s, i);
						break;
					}
			}
		}
	}
	finish(&s);
	sup_log(&s, "exiting");
	return s.exit_code < 0 ? 1 : 0;
}
