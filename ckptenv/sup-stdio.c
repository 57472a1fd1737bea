/* The job's stdio in the supervisor: a pty master (the job's /dev/pts/0) or three pipes, served
 * by ptyproxy, and the attach socket jobs/NAME/attach.sock (SOCK_STREAM, 0600 in the 0700 job
 * directory, peer uid checked with SO_PEERCRED on accept).
 *
 * The init holds the command back (launch_go) until the first client said HELLO, so nothing the
 * command prints before `ckptenv run` is attached is missed in pipe mode (ptyproxy does not read
 * pipes before a client came) nor lost to a job that ends at once. --detach has no client: the
 * command runs at once, its output goes to the log, a pipe job's stdin is at end of file. */
#include "ckpt.h"
#include "control.h"
#include "supervisor.h"

#include "common/ck.h"
#include "ptyproxy/ptyproxy.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define GO_TIMEOUT_MS  30000 /* a client that never comes: run the command anyway */
#define END_TIMEOUT_MS 2000  /* clients that do not close once they have the output and EXITED */

static bool detached(const struct sup *s)
{
	return s->a->spec->flags & JOB_F_DETACH;
}

static int watch(void *ud, int fd, uint32_t events)
{
	struct sup *s = ud;
	struct epoll_event ev = {.events = events, .data.fd = fd};
	if (!events)
		return epoll_ctl(s->ep, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
	if (epoll_ctl(s->ep, EPOLL_CTL_MOD, fd, &ev) == 0)
		return 0;
	return epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void pp_log(void *ud, const char *line)
{
	sup_log(ud, "attach: %s", line);
}

static const struct ptyproxy_ops pp_ops = {.watch = watch, .log = pp_log};

int sup_stdio_setup(struct sup *s, char *err, size_t errlen)
{
	/* Accepted only once the job's terminal exists (sup_stdio_start): an attach that comes
	 * earlier (the job shows running from the CLI's lock on) waits in the backlog rather
	 * than find its connection closed. */
	int fd = control_unix_listen(s->a->job_fd, ATTACH_SOCK, SOCK_STREAM);
	if (fd < 0) {
		snprintf(err, errlen, "cannot listen on %s/%s: %s", s->a->job_dir, ATTACH_SOCK,
			 strerror(-fd));
		return fd;
	}
	s->attach_fd = fd;
	return 0;
}

int sup_stdio_prepare(struct sup *s, struct launch_args *la)
{
	if (s->a->pty) {
		la->pty = true;
		la->ws = s->a->ws;
		return 0;
	}
	int r = ptyproxy_pipes_create(s->job_stdio, s->sup_stdio);
	if (r < 0)
		return r;
	for (int i = 0; i < 3; i++)
		la->stdio[i] = s->job_stdio[i];
	return 0;
}

/* A restored terminal job: the checkpoint's pty.state (modes and screen), so the first attach
 * redraws the screen as it was. NULL if none is usable (the job then starts on a blank one). */
static struct ptyproxy_state *restored_pty_state(struct sup *s)
{
	char path[64];
	snprintf(path, sizeof(path), "%s/%s", CKPT_DIR, s->restore_id);
	_cleanup_close_ int dfd = openat(s->a->job_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct ptyproxy_state *pst = NULL;
	if (dfd < 0 || ptyproxy_state_load(dfd, &pst) < 0) {
		sup_log(s, "no usable screen in %s; the restored terminal starts blank", path);
		return NULL;
	}
	return pst;
}

int sup_stdio_start(struct sup *s, int pty_fd)
{
	struct ptyproxy_state *pst =
		pty_fd >= 0 && s->restore_id ? restored_pty_state(s) : NULL;
	if (s->pp) /* restored in place (sup-restore.c): the clients stay */
		return sup_stdio_restart(s, pty_fd, pst);
	struct ptyproxy_config cfg = {
		.ops = &pp_ops,
		.userdata = s,
		.log_dirfd = s->a->job_fd,
		.log_name = OUTPUT_LOG,
		/* run's --log-size, or the one a restore found in ckpt-policy */
		.log_size = s->policy.log_size ? s->policy.log_size : DEFAULT_LOG_SIZE,
		/* `run`'s terminal is the first to attach: the job starts with its modes.
		 * Not a restored one: its termios is the saved one (the program may have set it). */
		.adopt_termios = !detached(s) && !pst,
	};
	int r;
	if (pty_fd >= 0) {
		r = ptyproxy_new(&cfg, pty_fd, pst, &s->pp);
		ptyproxy_state_free(pst);
	} else {
		for (int i = 0; i < 3; i++) {
			close(s->job_stdio[i]);
			s->job_stdio[i] = -1;
		}
		if (detached(s)) { /* no one will ever write the job's stdin: end of file */
			close(s->sup_stdio[0]);
			s->sup_stdio[0] = -1;
		}
		r = ptyproxy_new_pipes(&cfg, s->sup_stdio, &s->pp);
		for (int i = 0; i < 3; i++)
			s->sup_stdio[i] = -1;
		if (r == 0 && detached(s))
			ptyproxy_pipes_release(s->pp);
	}
	if (r < 0)
		return r;
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = s->attach_fd};
	if (epoll_ctl(s->ep, EPOLL_CTL_ADD, s->attach_fd, &ev) < 0)
		return -errno;
	s->go_pending = true;
	s->go_deadline_ns = ck_now_ns() + GO_TIMEOUT_MS * 1000000ull;
	return 0;
}

void sup_attach_accept(struct sup *s)
{
	for (;;) {
		_cleanup_close_ int fd = accept4(s->attach_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				sup_log(s, "attach: accept: %m");
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
			sup_log(s, "attach: SO_PEERCRED: %m; closing");
			continue;
		}
		if (cred.uid != getuid() && cred.uid != 0) {
			sup_log(s, "attach: client pid %d uid %u: not our uid; closing",
				(int)cred.pid, (unsigned)cred.uid);
			continue;
		}
		if (!s->pp || s->job_ended)
			continue; /* not started, or over: the client sees the connection end */
		int r = ptyproxy_client_add(s->pp, TAKE_FD(fd));
		if (r < 0)
			sup_log(s, "attach: cannot add client pid %d: %s", (int)cred.pid,
				strerror(-r));
	}
}

size_t sup_stdio_info_pack(struct sup *s, uint8_t *b, size_t cap)
{
	struct ptyproxy_info info = {0};
	struct ptyproxy_client_info ci[CONTROL_CLIENTS_MAX];
	size_t n = 0;
	if (s->pp) {
		ptyproxy_get_info(s->pp, &info);
		n = ptyproxy_list_clients(s->pp, ci, CK_ARRAY_SIZE(ci));
		n = CK_MIN(n, CK_ARRAY_SIZE(ci));
	}
	n = CK_MIN(n, (cap - 20 - 16) / 12);
	ck_put_le32(b, info.clients);
	ck_put_le32(b + 4, info.writers);
	ck_put_le32(b + 8, (s->pp ? CONTROL_INFO_STARTED : 0) | (info.pipes ? CONTROL_INFO_PIPES : 0) |
				   (s->parked ? CONTROL_INFO_PARKED : 0));
	ck_put_le16(b + 12, info.ws.ws_row);
	ck_put_le16(b + 14, info.ws.ws_col);
	ck_put_le32(b + 16, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		uint8_t *e = b + 20 + 12 * i;
		ck_put_le32(e, (ci[i].read_only ? CONTROL_CLIENT_READ_ONLY : 0) |
				       (ci[i].pipes ? CONTROL_CLIENT_PIPES : 0) |
				       (ci[i].direct ? CONTROL_CLIENT_DIRECT : 0) |
				       (ci[i].size_owner ? CONTROL_CLIENT_SIZE_OWNER : 0));
		ck_put_le16(e + 4, ci[i].ws.ws_row);
		ck_put_le16(e + 6, ci[i].ws.ws_col);
		ck_put_le32(e + 8, (uint32_t)ci[i].pid);
	}
	if (!s->parked)
		return 20 + 12 * n;
	uint8_t *e = b + 20 + 12 * n;
	uint64_t now = ck_now_ns(), left = 0;
	if (s->park_deadline_ns) /* at least 1: 0 says kept until restore or rm */
		left = s->park_deadline_ns > now ? (s->park_deadline_ns - now) / 1000000000u + 1 : 1;
	ck_put_le32(e, (uint32_t)s->park_status);
	ck_put_le32(e + 4, (uint32_t)left);
	ck_put_le64(e + 8, s->park_ckpt);
	return 20 + 12 * n + 16;
}

void sup_stdio_job_exited(struct sup *s, int wstatus)
{
	s->job_ended = true;
	s->end_deadline_ns = ck_now_ns() + END_TIMEOUT_MS * 1000000ull;
	if (s->pp)
		ptyproxy_job_exited(s->pp, wstatus);
}

int sup_stdio_tick(struct sup *s)
{
	if (!s->pp)
		return -1;
	int timeout = ptyproxy_idle(s->pp);
	struct ptyproxy_info info;
	ptyproxy_get_info(s->pp, &info);
	uint64_t now = ck_now_ns();
	if (s->go_pending) {
		if (detached(s) || info.clients || now >= s->go_deadline_ns) {
			s->go_pending = false;
			if (launch_go(&s->job) < 0)
				sup_log(s, "the job's init died before it could run the command");
			else
				sup_job_watch_running(s);
		} else {
			int t = (int)((s->go_deadline_ns - now) / 1000000u) + 1;
			timeout = timeout < 0 ? t : CK_MIN(timeout, t);
		}
	}
	if (s->job_ended) {
		/* A client still taking the job's last output (a slow reader of `run`'s stdout) is
		 * waited for, as the job would have waited on its pipe: after 2 s it lost the rest. */
		if (ptyproxy_output_pending(s->pp))
			s->end_deadline_ns = now + END_TIMEOUT_MS * 1000000ull;
		if (!info.connected || now >= s->end_deadline_ns)
			s->done = true;
		timeout = timeout < 0 || timeout > 20 ? 20 : timeout;
	}
	return timeout;
}

void sup_stdio_close(struct sup *s)
{
	ptyproxy_free(s->pp);
	s->pp = NULL;
	for (int i = 0; i < 3; i++) {
		if (s->job_stdio[i] >= 0)
			close(s->job_stdio[i]);
		if (s->sup_stdio[i] >= 0)
			close(s->sup_stdio[i]);
		s->job_stdio[i] = s->sup_stdio[i] = -1;
	}
	if (s->attach_fd >= 0) {
		unlinkat(s->a->job_fd, ATTACH_SOCK, 0);
		close(s->attach_fd);
		s->attach_fd = -1;
	}
}
