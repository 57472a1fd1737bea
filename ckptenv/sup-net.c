/* The supervisor's side of the job's network: the netproxy that serves the job's seccomp
 * listener (connect, getpeername/getsockname, passed-on socket options) and relays every proxied
 * TCP connection. netproxy has one fd of its own in our epoll; netproxy_dispatch() never blocks
 * on the job (upstream connects are non-blocking), so the loop stays responsive.
 *
 * The limit on sessions comes from CKPTENV_NET_MAX_SESSIONS in the supervisor's environment
 * (the `run` that started it), default netproxy's 1024; connects beyond it fail with EAGAIN in
 * the job, and the log says why (at most once per 10 s). */
#include "control.h"
#include "supervisor.h"

#include "common/ck.h"
#include "netproxy/netproxy.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>

/* A session holds up to 4 fds (job leg, upstream, the splice pipe); the default soft limit of
 * 1024 would make the fd limit, not the session limit, the one a busy job meets. Returns how
 * many sessions the fd limit we got allows (@max_sessions when it is enough). */
static unsigned raise_nofile(unsigned max_sessions)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return max_sessions;
	rlim_t want = (rlim_t)max_sessions * 4 + 256;
	if (rl.rlim_cur >= want)
		return max_sessions;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return max_sessions;
	return rl.rlim_cur >= want ? max_sessions
	       : rl.rlim_cur > 256 + 4 ? (unsigned)((rl.rlim_cur - 256) / 4)
				       : 1;
}

/* The CLI refused a bad value before starting us; a default is only a fallback. */
static unsigned max_sessions_from_env(struct sup *s)
{
	const char *v = getenv("CKPTENV_NET_MAX_SESSIONS");
	unsigned n = 0;
	if (v && *v && net_max_sessions_parse(v, &n) < 0)
		sup_log(s,
			"CKPTENV_NET_MAX_SESSIONS=%s is not a number in 1..%u; using the default",
			v, NET_MAX_SESSIONS_MAX);
	return n;
}

int sup_net_new(struct sup *s)
{
	unsigned want = max_sessions_from_env(s);
	if (!want)
		want = NETPROXY_MAX_SESSIONS_DEFAULT;
	struct netproxy_config cfg = {.max_sessions = raise_nofile(want)};
	s->np_fd_bound = cfg.max_sessions < want;
	if (s->np_fd_bound)
		/* A hard open-file limit too low for the session limit: the proxy ran out of fds
		 * and the job's connect got ECONNABORTED, unexplained. The limit it can keep. */
		sup_log(s,
			"the open-file limit allows %u proxied connections, not %u; raise the hard "
			"limit (ulimit -Hn) for more",
			cfg.max_sessions, want);
	int r = netproxy_new(&cfg, &s->np);
	if (r < 0)
		return r;
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = netproxy_fd(s->np)};
	if (epoll_ctl(s->ep, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0)
		return -errno;
	return 0;
}

int sup_net_start(struct sup *s, int net_fd)
{
	/* s->np exists already in a restore in place (the sessions the restored job got are
	 * here) and in a restore that reconnected a connection (sup-ckpt-net.c). */
	int r = s->np ? 0 : sup_net_new(s);
	if (r < 0) {
		close(net_fd);
		return r;
	}
	return netproxy_add_listener(s->np, net_fd);
}

bool sup_net_owns(const struct sup *s, int fd)
{
	return s->np && fd == netproxy_fd(s->np);
}

/* At most one line per 10 s (@force: now, if any), with the count since the last one: a job
 * retrying in a loop must not fill the log. */
static void log_refused(struct sup *s, bool force)
{
	struct netproxy_counters c;
	netproxy_counters_get(s->np, &c);
	uint64_t now = ck_now_ns();
	if (c.refused_limit > s->np_refused_logged &&
	    (force || s->np_refused_log_ns == 0 || now - s->np_refused_log_ns >= 10000000000ull)) {
		s->np_refused_log_ns = now;
		sup_log(s,
			"the job's connect() failed with EAGAIN %llu time(s): %u proxied "
			"connections is the limit; close some, or start the job %s",
			(unsigned long long)(c.refused_limit - s->np_refused_logged),
			c.max_sessions,
			s->np_fd_bound ? "from a shell with a higher hard open-file limit "
					 "(ulimit -Hn): this one set the limit"
				       : "with CKPTENV_NET_MAX_SESSIONS set higher");
		s->np_refused_logged = c.refused_limit;
	}
}

/* Whether the job's command process is exiting or gone (PF_EXITING in /proc/PID/stat's
 * flags): then a job-side socket that just ended was closed by its death, not by the job. */
static bool job_exiting(struct sup *s)
{
	if (!s->started || s->job_ended || s->parked || s->job.init_pid <= 0)
		return true;
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)s->job.init_pid,
		 (int)s->job.init_pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : ck_read_full(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return true;
	buf[n] = 0;
	return sup_proc_exiting(atoi(buf));
}

void sup_net_job_ended(struct sup *s)
{
	if (s->np)
		netproxy_release_held(s->np);
}

void sup_net_dispatch(struct sup *s)
{
	int r = netproxy_dispatch(s->np);
	if (r < 0)
		sup_log(s, "network proxy: %s", strerror(-r));
	struct netproxy_counters c;
	netproxy_counters_get(s->np, &c);
	if (c.held && !job_exiting(s))
		netproxy_release_held(s->np);
	if (c.replay_mismatch > s->np_mismatch_logged) {
		sup_log(s, "restore: %llu connection(s) reset: the restored job sent other bytes "
			   "than its previous run had sent after the checkpoint; the peer got none "
			   "of them",
			(unsigned long long)(c.replay_mismatch - s->np_mismatch_logged));
		s->np_mismatch_logged = c.replay_mismatch;
	}
	log_refused(s, false);
}

/* NET_STATUS_REPLY: le32 sessions, le32 limit, le64 connects ever, le64 refused (limit),
 * le32 listed, then per listed session: le32 id, str state, str peer, str local,
 * le64 bytes up, le64 bytes down. As many as fit the payload; the first count tells. */
void sup_net_status(struct sup *s, int c)
{
	struct netproxy_counters cn = {0};
	_cleanup_free_ struct netproxy_session_info *v = NULL;
	size_t n = 0;
	if (s->np) {
		netproxy_counters_get(s->np, &cn);
		int r = netproxy_status(s->np, &v, &n);
		if (r < 0) {
			control_send_error(c, -r, "cannot list the job's connections");
			return;
		}
	}
	struct ck_buf b = {0};
	ck_buf_le32(&b, (uint32_t)n);
	ck_buf_le32(&b, cn.max_sessions);
	ck_buf_le64(&b, cn.connects);
	ck_buf_le64(&b, cn.refused_limit);
	size_t count_at = b.len;
	ck_buf_le32(&b, 0);
	uint32_t listed = 0;
	for (size_t i = 0; i < n && !b.err; i++) {
		char peer[64] = "-", local[64] = "-";
		(void)netproxy_addr_format(&v[i].peer, peer, sizeof(peer));
		(void)netproxy_addr_format(&v[i].local, local, sizeof(local));
		const char *st = netproxy_state_to_string(v[i].state);
		size_t need = 4 + 3 * 4 + strlen(st) + strlen(peer) + strlen(local) + 16;
		if (b.len + need > CONTROL_PAYLOAD_MAX)
			break;
		ck_buf_le32(&b, v[i].id);
		ck_buf_str(&b, st, strlen(st));
		ck_buf_str(&b, peer, strlen(peer));
		ck_buf_str(&b, local, strlen(local));
		ck_buf_le64(&b, v[i].bytes_up);
		ck_buf_le64(&b, v[i].bytes_down);
		listed++;
	}
	if (!b.err)
		ck_put_le32(b.data + count_at, listed);
	if (b.err)
		control_send_error(c, -b.err, "out of memory");
	else
		control_send(c, CONTROL_NET_STATUS_REPLY, b.data, b.len, NULL, 0);
	ck_buf_free(&b);
}

/* The job ended: what it wrote before its sockets closed is still on its way (in its legs
 * and our rings), and a process's exit does not discard that on a real socket either (the
 * kernel delivers an orphaned socket's send queue, then its FIN). So keep relaying until every
 * session passed on all of it, or until nothing moved for NET_LINGER_IDLE_MS (a peer that
 * stopped reading), before the upstreams are closed. */
#define NET_LINGER_IDLE_MS 30000
void sup_net_linger(struct sup *s)
{
	if (!s->np)
		return;
	uint64_t up, last_up = 0, since = ck_now_ns();
	unsigned n = netproxy_sending(s->np, &last_up);
	if (n == 0)
		return;
	sup_log(s, "the job ended: passing on what it wrote on %u connection(s)", n);
	while ((n = netproxy_sending(s->np, &up)) > 0) {
		if (up != last_up) {
			last_up = up;
			since = ck_now_ns();
		} else if (ck_now_ns() - since > NET_LINGER_IDLE_MS * 1000000ull) {
			sup_log(s, "%u connection(s) reset: their peers took nothing for %d s", n,
				NET_LINGER_IDLE_MS / 1000);
			break;
		}
		struct pollfd p = {.fd = netproxy_fd(s->np), .events = POLLIN};
		(void)poll(&p, 1, 1000);
		int r = netproxy_dispatch(s->np);
		if (r < 0) {
			sup_log(s, "network proxy: %s", strerror(-r));
			break;
		}
	}
}

void sup_net_close(struct sup *s)
{
	if (s->np)
		log_refused(s, true);
	netproxy_free(s->np); /* unfinished sessions' upstreams are reset */
	s->np = NULL;
}
