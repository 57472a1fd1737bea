/* The proxy object: one epoll fd of its own (handed to the supervisor's loop), the seccomp
 * listeners, the leg listeners, a timer for connects waiting on an answer, and the sessions. */
#include "netproxy/netproxy-internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>

int np_ep_set(struct netproxy *np, struct np_ep *ep, uint32_t events)
{
	if (ep->fd < 0)
		return 0;
	if (ep->events == events && events != 0)
		return 0;
	struct epoll_event ev = {.events = events, .data.ptr = ep};
	int op = ep->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (events == 0) {
		if (ep->events && epoll_ctl(np->epfd, EPOLL_CTL_DEL, ep->fd, NULL) < 0)
			return -errno;
		ep->events = 0;
		return 0;
	}
	if (epoll_ctl(np->epfd, op, ep->fd, &ev) < 0)
		return -errno;
	ep->events = events;
	return 0;
}

void np_ep_del(struct netproxy *np, struct np_ep *ep)
{
	(void)np_ep_set(np, ep, 0);
}

uint64_t netproxy_instance(const struct netproxy *np)
{
	return np->instance;
}

int netproxy_new(const struct netproxy_config *cfg, struct netproxy **ret)
{
	struct seccomp_notif_sizes sz;
	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sz) < 0)
		return -errno;
	struct netproxy *np = calloc(1, sizeof(*np));
	if (!np)
		return -ENOMEM;
	if (cfg)
		np->cfg = *cfg;
	if (!np->cfg.max_sessions)
		np->cfg.max_sessions = NETPROXY_MAX_SESSIONS_DEFAULT;
	if (!np->cfg.buf_size)
		np->cfg.buf_size = 1u << 20;
	if (!np->cfg.nonblock_wait_ms)
		np->cfg.nonblock_wait_ms = 500;
	np->notif_size = CK_MAX((size_t)sz.seccomp_notif, sizeof(struct seccomp_notif));
	np->resp_size = CK_MAX((size_t)sz.seccomp_notif_resp, sizeof(struct seccomp_notif_resp));
	np->next_id = 1;
	while (!np->instance) /* never 0: a cut without one names no proxy */
		if (getrandom(&np->instance, sizeof(np->instance), 0) != sizeof(np->instance))
			np->instance = ck_now_ns() ^ ((uint64_t)getpid() << 32);
	for (int i = 0; i < 2; i++) {
		np->leglisten[i].fd = -1;
		np->refuser[i] = -1;
	}
	np->timer = (struct np_ep){.kind = NP_EP_TIMER, .fd = -1};
	np->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (np->epfd < 0)
		goto fail;
	np->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (np->timer.fd < 0 || np_ep_set(np, &np->timer, EPOLLIN) < 0)
		goto fail;
	*ret = np;
	return 0;
fail:;
	int r = -errno;
	netproxy_free(np);
	return r;
}

void netproxy_free(struct netproxy *np)
{
	if (!np)
		return;
	/* A session that sent all its job wrote and passed on its EOF closes its upstream
	 * normally: the kernel still delivers what sits in the socket's send queue, as for the
	 * socket of a process that exited. The others are reset. */
	while (np->sessions)
		np_session_destroy(np->sessions, !np->sessions->job_shut_sent);
	while (np->listeners) {
		struct np_listener *l = np->listeners;
		np->listeners = l->next;
		close(l->ep.fd);
		free(l);
	}
	np_leg_pool_free(np);
	for (int i = 0; i < 2; i++) {
		if (np->leglisten[i].fd >= 0)
			close(np->leglisten[i].fd);
		if (np->refuser[i] >= 0)
			close(np->refuser[i]);
	}
	if (np->timer.fd >= 0)
		close(np->timer.fd);
	if (np->epfd >= 0)
		close(np->epfd);
	free(np);
}

unsigned netproxy_sending(const struct netproxy *np, uint64_t *ret_bytes_up)
{
	unsigned n = 0;
	uint64_t up = 0;
	for (const struct np_session *s = np->sessions; s; s = s->next) {
		up += s->bytes_up;
		if (!s->job_shut_sent && !s->detached && !s->held && !s->peer_reset &&
		    !s->connecting && s->us.fd >= 0 && (s->ps.fd >= 0 || np_ring_pending(&s->up)))
			n++;
	}
	*ret_bytes_up = up;
	return n;
}

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

int netproxy_add_listener(struct netproxy *np, int notify_fd)
{
	/* Linux 6.6: the answer wakes the job's thread on the CPU that answered, a direct hand
	 * over instead of a trip through the scheduler (made for gVisor's round trips). Older
	 * kernels: EINVAL, and nothing changes. No difference was measurable on the shared,
	 * overloaded 2-CPU machine this was written on (docs/net.md). */
	(void)ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
	struct np_listener *l = calloc(1, sizeof(*l));
	if (!l) {
		close(notify_fd);
		return -ENOMEM;
	}
	l->ep = (struct np_ep){.kind = NP_EP_NOTIFY, .fd = notify_fd, .ptr = l};
	int r = np_ep_set(np, &l->ep, EPOLLIN);
	if (r < 0) {
		close(notify_fd);
		free(l);
		return r;
	}
	l->next = np->listeners;
	np->listeners = l;
	np->nlisteners++;
	return 0;
}

static void listener_drop(struct netproxy *np, struct np_listener *l)
{
	for (struct np_listener **pp = &np->listeners; *pp; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	}
	/* Sessions still waiting for an answer through it can never be answered. */
	for (struct np_session *s = np->sessions, *n; s; s = n) {
		n = s->next;
		if (s->answer_pending && s->notify_fd == l->ep.fd)
			np_session_destroy(s, true);
	}
	np_ep_del(np, &l->ep);
	close(l->ep.fd);
	free(l);
	np->nlisteners--;
}

int netproxy_fd(const struct netproxy *np)
{
	return np->epfd;
}

void netproxy_counters_get(const struct netproxy *np, struct netproxy_counters *ret)
{
	*ret = (struct netproxy_counters){.sessions = np->nsessions,
					  .max_sessions = np->cfg.max_sessions,
					  .connects = np->nconnects,
					  .refused_limit = np->nrefused_limit,
					  .replay_mismatch = np->nreplay_mismatch,
					  .held = np->nheld};
}

unsigned netproxy_listener_count(const struct netproxy *np)
{
	return np->nlisteners;
}

void np_timer_arm(struct netproxy *np)
{
	bool need = false;
	for (struct np_session *s = np->sessions; s && !need; s = s->next)
		need = s->answer_pending;
	if (need == np->timer_armed)
		return;
	np->timer_armed = need;
	struct itimerspec its = {0};
	if (need)
		its.it_value.tv_nsec = its.it_interval.tv_nsec = 50 * 1000 * 1000;
	(void)timerfd_settime(np->timer.fd, 0, &its, NULL);
}

static void timer_tick(struct netproxy *np)
{
	uint64_t n;
	(void)!read(np->timer.fd, &n, sizeof(n));
	uint64_t now = ck_now_ns();
	for (struct np_session *s = np->sessions, *nx; s; s = nx) {
		nx = s->next;
		if (!s->answer_pending)
			continue;
		/* The job died, or a signal (or a freeze) aborted its connect(): drop the
		 * half-made session; a restarted connect() is a new notification. */
		if (!np_id_valid(s->notify_fd, s->notif_id))
			np_session_destroy(s, true);
		else if (s->job_nonblock && now >= s->deadline_ns)
			np_connect_expire(s);
	}
	np_timer_arm(np);
}

int netproxy_dispatch(struct netproxy *np)
{
	struct epoll_event evs[64];
	int n = epoll_wait(np->epfd, evs, CK_ARRAY_SIZE(evs), 0);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	/* A session destroyed by an earlier event of this batch stays allocated (marked dead)
	 * until the batch is done, so later events naming it are recognised and skipped. */
	np->in_dispatch = true;
	for (int i = 0; i < n; i++) {
		struct np_ep *ep = evs[i].data.ptr;
		switch (ep->kind) {
		case NP_EP_NOTIFY: {
			struct np_listener *l = ep->ptr;
			if (evs[i].events & EPOLLIN)
				(void)np_notify_handle(np, l);
			else if (evs[i].events & (EPOLLHUP | EPOLLERR))
				listener_drop(np, l);
			break;
		}
		case NP_EP_LEGLISTEN:
			np_leg_accept_foreign(np, (int)(intptr_t)ep->ptr);
			break;
		case NP_EP_TIMER:
			timer_tick(np);
			break;
		case NP_EP_PS:
		case NP_EP_US: {
			struct np_session *s = ep->ptr;
			if (s->dead)
				break;
			if (ep->kind == NP_EP_US && s->connecting) {
				int err = 0;
				socklen_t l = sizeof(err);
				if (getsockopt(s->us.fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
					err = errno;
				np_connect_complete(s, err);
			} else {
				np_relay_pump(s);
			}
			break;
		}
		}
	}
	np->in_dispatch = false;
	while (np->dead) {
		struct np_session *s = np->dead;
		np->dead = s->next;
		free(s);
	}
	/* After the answers: the job goes on meanwhile. */
	np_leg_pool_refill(np);
	return 0;
}

struct np_session *np_session_by_id(struct netproxy *np, uint32_t id)
{
	for (struct np_session *s = np->sessions; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

struct np_session *np_session_by_ino(struct netproxy *np, ino_t ino)
{
	for (struct np_session *s = np->sessions; s; s = s->next)
		if (s->leg_ino == ino && s->ps.fd >= 0)
			return s;
	return NULL;
}

void np_session_destroy(struct np_session *s, bool reset_upstream)
{
	struct netproxy *np = s->np;
	if (s->answer_pending)
		(void)np_respond(s->notify_fd, s->notif_id, 0, ECONNABORTED, 0);
	if (s->jsock >= 0)
		close(s->jsock);
	if (s->held)
		np->nheld--;
	np_ep_del(np, &s->ps);
	np_ep_del(np, &s->us);
	if (s->ps.fd >= 0)
		np_reset_close(s->ps.fd);
	if (s->us.fd >= 0) {
		if (reset_upstream)
			np_reset_close(s->us.fd);
		else
			close(s->us.fd);
	}
	np_ring_free(&s->up);
	np_ring_free(&s->down);
	if (s->prev)
		s->prev->next = s->next;
	else
		np->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	np->nsessions--;
	s->dead = true;
	if (np->in_dispatch) {
		s->next = np->dead;
		np->dead = s;
	} else {
		free(s);
	}
}

static enum netproxy_state session_state(const struct np_session *s)
{
	if (s->connecting)
		return NETPROXY_STATE_CONNECTING;
	if (s->detached)
		return NETPROXY_STATE_DETACHED;
	if (s->peer_reset)
		return NETPROXY_STATE_RESET;
	if (s->job_eof)
		return NETPROXY_STATE_JOB_SHUT;
	if (s->peer_eof)
		return NETPROXY_STATE_PEER_SHUT;
	return NETPROXY_STATE_ESTABLISHED;
}

int netproxy_status(struct netproxy *np, struct netproxy_session_info **ret, size_t *ret_n)
{
	struct netproxy_session_info *v = calloc(np->nsessions ? np->nsessions : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t n = 0;
	for (struct np_session *s = np->sessions; s; s = s->next, n++) {
		v[n] = (struct netproxy_session_info){
			.id = s->id,
			.state = session_state(s),
			.local = s->local,
			.peer = s->peer,
			.bytes_up = s->bytes_up,
			.bytes_down = s->down.mid,
			.consumed = s->consumed,
			.delivered = s->delivered,
		};
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

const char *netproxy_state_to_string(enum netproxy_state state)
{
	static const char *const names[] = {
		[NETPROXY_STATE_CONNECTING] = "connecting",
		[NETPROXY_STATE_ESTABLISHED] = "established",
		[NETPROXY_STATE_JOB_SHUT] = "job-shut",
		[NETPROXY_STATE_PEER_SHUT] = "peer-shut",
		[NETPROXY_STATE_DETACHED] = "detached",
		[NETPROXY_STATE_RESET] = "reset",
		[NETPROXY_STATE_LOST] = "lost",
	};
	if ((unsigned)state < CK_ARRAY_SIZE(names) && names[state])
		return names[state];
	return "unknown";
}

int netproxy_addr_format(const struct sockaddr_storage *addr, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];
	int n;
	if (addr->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)addr;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		n = snprintf(buf, len, "%s:%u", host, ntohs(s4->sin_port));
	} else if (addr->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)addr;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		n = snprintf(buf, len, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		return -EINVAL;
	}
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}
