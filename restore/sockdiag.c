/* NETLINK_SOCK_DIAG: what only the kernel's socket tables tell about a socket the dumper holds
 * a duplicate of: the peer of a unix socket (to pair socketpairs), and the backlog of a
 * listening one (sk_max_ack_backlog, which no getsockopt returns). The job shares the
 * supervisor's network namespace, so the tables queried here are the job's. */
#include "restore/fds-internal.h"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#define DIAG_BUF 32768

static int diag_open(void)
{
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	return fd < 0 ? -errno : fd;
}

static int diag_send(int fd, const void *req, size_t len)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	ssize_t n = sendto(fd, req, len, 0, (struct sockaddr *)&sa, sizeof(sa));
	if (n < 0)
		return -errno;
	return n == (ssize_t)len ? 0 : -EIO;
}

/* Receive one datagram of netlink messages; call @fn for each. 1 when NLMSG_DONE was seen. */
static int diag_recv(int fd, uint8_t *buf, int (*fn)(const struct nlmsghdr *, void *), void *u)
{
	ssize_t n;
	do
		n = recv(fd, buf, DIAG_BUF, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	size_t left = (size_t)n;
	for (const struct nlmsghdr *h = (const void *)buf; NLMSG_OK(h, left);
	     h = NLMSG_NEXT(h, left)) {
		if (h->nlmsg_type == NLMSG_DONE)
			return 1;
		if (h->nlmsg_type == NLMSG_ERROR) {
			const struct nlmsgerr *e = NLMSG_DATA(h);
			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
				return -EIO;
			return e->error ? e->error : 1;
		}
		int r = fn(h, u);
		if (r != 0)
			return r;
	}
	return 0;
}

static int unix_one(const struct nlmsghdr *h, void *u)
{
	struct sockdiag_unix *ret = u;
	const struct unix_diag_msg *m = NLMSG_DATA(h);
	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
		return -EIO;
	ret->state = m->udiag_state;
	size_t alen = h->nlmsg_len - NLMSG_LENGTH(sizeof(*m));
	for (const struct rtattr *a = (const void *)(m + 1); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
		if (a->rta_type == UNIX_DIAG_PEER && RTA_PAYLOAD(a) >= 4)
			ret->peer_ino = *(const uint32_t *)RTA_DATA(a);
		else if (a->rta_type == UNIX_DIAG_RQLEN && RTA_PAYLOAD(a) >= 8) {
			const struct unix_diag_rqlen *q = RTA_DATA(a);
			ret->rqueue = q->udiag_rqueue;
			ret->wqueue = q->udiag_wqueue;
		}
	}
	return 1;
}

int sockdiag_unix_get(uint64_t ino, struct sockdiag_unix *ret)
{
	_cleanup_close_ int fd = diag_open();
	if (fd < 0)
		return fd;
	struct {
		struct nlmsghdr h;
		struct unix_diag_req r;
	} req = {
		.h = {.nlmsg_len = sizeof(req),
		      .nlmsg_type = SOCK_DIAG_BY_FAMILY,
		      .nlmsg_flags = NLM_F_REQUEST},
		.r = {.sdiag_family = AF_UNIX,
		      .udiag_states = ~0u,
		      .udiag_ino = (uint32_t)ino,
		      .udiag_show = UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN,
		      /* no cookie: look the socket up by inode alone */
		      .udiag_cookie = {INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE}},
	};
	int r = diag_send(fd, &req, sizeof(req));
	if (r < 0)
		return r;
	_cleanup_free_ uint8_t *buf = malloc(DIAG_BUF);
	if (!buf)
		return -ENOMEM;
	struct sockdiag_unix u = {0};
	r = diag_recv(fd, buf, unix_one, &u);
	if (r < 0)
		return r;
	*ret = u;
	return 0;
}

struct listeners {
	struct sockdiag_listener *v;
	size_t n, cap;
};

static int listener_one(const struct nlmsghdr *h, void *u)
{
	struct listeners *l = u;
	const struct inet_diag_msg *m = NLMSG_DATA(h);
	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
		return -EIO;
	if (m->idiag_state != TCP_LISTEN)
		return 0;
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 16;
		struct sockdiag_listener *v = realloc(l->v, nc * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = nc;
	}
	struct sockdiag_listener *s = &l->v[l->n++];
	*s = (struct sockdiag_listener){
		.family = m->idiag_family,
		.port = ntohs(m->id.idiag_sport),
		.ino = m->idiag_inode,
		.backlog = m->idiag_wqueue, /* sk_max_ack_backlog for a listener */
	};
	memcpy(s->addr, m->id.idiag_src, m->idiag_family == AF_INET ? 4 : 16);
	return 0;
}

int sockdiag_tcp_listeners(struct sockdiag_listener **ret, size_t *ret_n)
{
	_cleanup_close_ int fd = diag_open();
	if (fd < 0)
		return fd;
	_cleanup_free_ uint8_t *buf = malloc(DIAG_BUF);
	if (!buf)
		return -ENOMEM;
	struct listeners l = {0};
	int r = 0;
	const int fams[] = {AF_INET, AF_INET6};
	for (size_t k = 0; k < 2 && r >= 0; k++) {
		struct {
			struct nlmsghdr h;
			struct inet_diag_req_v2 r;
		} req = {
			.h = {.nlmsg_len = sizeof(req),
			      .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			      .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP},
			.r = {.sdiag_family = (uint8_t)fams[k],
			      .sdiag_protocol = IPPROTO_TCP,
			      .idiag_states = 1u << TCP_LISTEN},
		};
		r = diag_send(fd, &req, sizeof(req));
		while (r == 0)
			r = diag_recv(fd, buf, listener_one, &l);
	}
	if (r < 0) {
		free(l.v);
		return r;
	}
	*ret = l.v;
	*ret_n = l.n;
	return 0;
}
