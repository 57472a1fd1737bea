/* Shared test fixture for the ptyproxy suites: a tiny epoll "supervisor" around one
 * struct ptyproxy, and helpers to act as an attach client over a socketpair. */
#ifndef PTYPROXY_FIXTURE_H
#define PTYPROXY_FIXTURE_H

#include <check.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "ptyproxy/ptyproxy-internal.h"

#define CHECK(x) ck_assert_msg((x), "%s", #x)

struct fx {
	int ep;
	struct ptyproxy *p;
	int nlogs;
	char lastlog[256];
	int hup;
};

static int fx_watch(void *ud, int fd, uint32_t ev)
{
	struct fx *f = ud;
	struct epoll_event e = {.events = ev, .data.fd = fd};
	if (!ev)
		return epoll_ctl(f->ep, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
	if (epoll_ctl(f->ep, EPOLL_CTL_MOD, fd, &e) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;
	return epoll_ctl(f->ep, EPOLL_CTL_ADD, fd, &e) < 0 ? -errno : 0;
}

static void fx_log(void *ud, const char *line)
{
	struct fx *f = ud;
	f->nlogs++;
	snprintf(f->lastlog, sizeof(f->lastlog), "%s", line);
}

static const struct ptyproxy_ops fx_ops = {.watch = fx_watch, .log = fx_log};

static inline void fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	signal(SIGPIPE, SIG_IGN);
	f->ep = epoll_create1(EPOLL_CLOEXEC);
	CHECK(f->ep >= 0);
}

static inline struct ptyproxy_config fx_config(struct fx *f)
{
	return (struct ptyproxy_config){.ops = &fx_ops, .userdata = f, .log_dirfd = -1};
}

/* How long a test waits for what must happen. Generous: a loaded CI machine stalls a process
 * for seconds; every wait ends as soon as its condition holds. */
#define FX_PATIENCE_MS 30000

/* Run the loop for @ms milliseconds. Without @idle, never call ptyproxy_idle(): a supervisor
 * that is always busy (a flood) does not feed the model, whatever the machine's speed. */
static inline void fx_pump_events(struct fx *f, int ms, bool idle)
{
	uint64_t end = ck_now_ns() + (uint64_t)ms * 1000000;
	for (uint64_t now; (now = ck_now_ns()) < end;) {
		int t = idle ? ptyproxy_idle(f->p) : -1;
		int left = (int)((end - now) / 1000000) + 1;
		if (t < 0 || t > left)
			t = left;
		struct epoll_event ev[8];
		int n = epoll_wait(f->ep, ev, 8, t);
		for (int i = 0; i < n; i++)
			if (ptyproxy_handle(f->p, ev[i].data.fd, ev[i].events) == PTYPROXY_HUP)
				f->hup = 1;
	}
}

static inline void fx_pump(struct fx *f, int ms)
{
	fx_pump_events(f, ms, true);
}

/* Pump until @cond holds (checked every 5 ms) or FX_PATIENCE_MS pass; true if it held. */
#define FX_PUMP_UNTIL(f, cond)                                                              \
	({                                                                                  \
		uint64_t fx_end_ = ck_now_ns() + (uint64_t)FX_PATIENCE_MS * 1000000;        \
		bool fx_ok_;                                                                \
		while (!(fx_ok_ = (cond)) && ck_now_ns() < fx_end_)                         \
			fx_pump((f), 5);                                                    \
		fx_ok_;                                                                     \
	})

/* `sh -c @cmd` on the pty's @slave (closed here), as the job. */
static inline pid_t fx_spawn(int slave, const char *cmd)
{
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		if (ptyproxy_child_setup(slave) < 0)
			_exit(126);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(slave);
	return pid;
}

static inline void fx_free(struct fx *f)
{
	ptyproxy_free(f->p);
	close(f->ep);
}

/* Connect a client (socketpair); returns our end, after sending HELLO. */
static inline int fx_client(struct fx *f, uint32_t flags, unsigned rows, unsigned cols)
{
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	CHECK(ptyproxy_client_add(f->p, sv[0]) == 0);
	struct ptyproxy_hello h = {.flags = flags, .ws = {(unsigned short)rows,
							  (unsigned short)cols, 0, 0}};
	strcpy(h.term, "xterm-256color");
	uint8_t b[128];
	size_t n = ptyproxy_hello_pack(&h, b, sizeof(b));
	CHECK(ptyproxy_send_msg(sv[1], PTYPROXY_MSG_HELLO, b, n) == 0);
	return sv[1];
}

/* What a test client received so far. */
struct fx_rx {
	uint8_t buf[1 << 20];
	size_t len;
	struct ck_buf out;   /* OUTPUT + REDRAW payloads, concatenated */
	struct ck_buf err;   /* STDERR payloads */
	int nredraw, exited, eof;
	int wstatus;
};

/* Read what is available on @fd (nonblocking) into @rx. */
static inline void fx_rx_poll(int fd, struct fx_rx *rx)
{
	for (;;) {
		ssize_t n = recv(fd, rx->buf + rx->len, sizeof(rx->buf) - rx->len, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			rx->eof = 1;
			break;
		}
		if (n < 0)
			break;
		rx->len += (size_t)n;
		size_t off = 0;
		struct ptyproxy_msg m;
		ssize_t k;
		while ((k = ptyproxy_msg_parse(rx->buf + off, rx->len - off, &m)) > 0) {
			off += (size_t)k;
			if (m.type == PTYPROXY_MSG_OUTPUT || m.type == PTYPROXY_MSG_REDRAW)
				ck_buf_append(&rx->out, m.payload, m.len);
			if (m.type == PTYPROXY_MSG_REDRAW)
				rx->nredraw++;
			if (m.type == PTYPROXY_MSG_STDERR)
				ck_buf_append(&rx->err, m.payload, m.len);
			if (m.type == PTYPROXY_MSG_EXITED) {
				rx->exited = 1;
				rx->wstatus = (int)ck_get_le32(m.payload);
			}
		}
		CHECK(k == 0);
		memmove(rx->buf, rx->buf + off, rx->len - off);
		rx->len -= off;
	}
}

static inline bool fx_rx_has(struct fx_rx *rx, const char *s)
{
	return rx->out.len && memmem(rx->out.data, rx->out.len, s, strlen(s));
}

/* Pump the loop and collect @fd until @s shows up in the output (or @ms pass). */
static inline bool fx_wait_for(struct fx *f, int fd, struct fx_rx *rx, const char *s, int ms)
{
	uint64_t end = ck_now_ns() + (uint64_t)ms * 1000000;
	while (ck_now_ns() < end) {
		fx_pump(f, 5);
		fx_rx_poll(fd, rx);
		if (fx_rx_has(rx, s))
			return true;
	}
	return false;
}

#endif
