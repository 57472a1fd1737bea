/* netproxy internals: shared by the files of netproxy/ only. */
#ifndef NETPROXY_INTERNAL_H
#define NETPROXY_INTERNAL_H

#include "common/ck.h"
#include "netproxy/netproxy.h"

#include <linux/seccomp.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <sys/uio.h>

/* The proxy side of a job-side leg sends with a fixed SO_SNDBUF so that what it may hold
 * unsent (SIOCOUTQ) is bounded; the down ring keeps that many bytes after writing them, so a
 * detach can hand the job exactly from the offset the job's socket received to. */
#define NP_LEG_SNDBUF (1u << 20)
#define NP_KEEP	      (2u * NP_LEG_SNDBUF + (512u << 10))
/* What a detach may have to absorb from the job (its socket buffers) on top of the ring. */
#define NP_DETACH_MAX (64u << 20)
/* What a session keeps of the up stream after a cut, to check a restored job's replay. */
#define NP_RETAIN (4u << 20)

/* A byte queue over absolute stream offsets: [lo, mid) already written out but kept,
 * [mid, hi) pending. Byte at offset x lives at data[x % cap]. */
struct np_ring {
	uint8_t *data;
	size_t cap;
	uint64_t lo, mid, hi;
	size_t keep; /* how much behind mid to retain */
};

int np_ring_init(struct np_ring *r, size_t cap, size_t keep, uint64_t off);
void np_ring_free(struct np_ring *r);
static inline size_t np_ring_pending(const struct np_ring *r)
{
	return (size_t)(r->hi - r->mid);
}
/* Free space for new bytes (dropping kept bytes beyond ->keep as needed). */
size_t np_ring_space(struct np_ring *r);
/* iovecs for reading into the free space (the buffer is allocated here, at the first use:
 * -ENOMEM) / writing out the pending bytes. */
int np_ring_in_iov(struct np_ring *r, struct iovec iov[2]);
int np_ring_out_iov(const struct np_ring *r, struct iovec iov[2]);
void np_ring_copy_out(const struct np_ring *r, uint64_t off, void *dst, size_t len);
int np_ring_grow(struct np_ring *r, size_t cap);
/* Put @len bytes after hi (grown as needed, keeping every held byte). */
int np_ring_append(struct np_ring *r, const void *src, size_t len);

#define NP_PASSED_OPTS_MAX 16
/* Job-side legs made ahead, per family (leg.c). */
#define NP_LEG_POOL 4
/* Options of a job socket that differ from a fresh socket's (notify.c). */
struct np_opt_set {
	size_t n;
	struct {
		int level, name, v;
	} o[NP_PASSED_OPTS_MAX];
};

enum np_kind { NP_EP_NOTIFY, NP_EP_LEGLISTEN, NP_EP_TIMER, NP_EP_PS, NP_EP_US };

struct np_ep {
	enum np_kind kind;
	void *ptr;
	int fd;
	uint32_t events; /* currently registered */
};

struct np_listener {
	struct np_ep ep;
	struct np_listener *next;
};

struct np_session {
	struct netproxy *np;
	struct np_session *prev, *next;
	uint32_t id;
	int family; /* the job socket's domain (AF_INET or AF_INET6) */
	struct sockaddr_storage peer, local;
	struct np_ep ps; /* proxy side of the job leg; fd -1 when none */
	struct np_ep us; /* upstream */
	ino_t leg_ino;	 /* inode of the job-side socket, to recognise it */
	uint64_t leg_base;
	struct np_ring up, down;
	uint64_t bytes_up;

	/* connect still being answered */
	bool answer_pending;
	int notify_fd;
	uint64_t notif_id;
	int job_fd;
	pid_t job_tid; /* the connecting thread, for its fd's FD_CLOEXEC if we ADDFD a leg */
	bool job_nonblock;
	bool needs_leg; /* the job's socket is bound, or MPTCP: it gets a leg of ours (ADDFD) */
	struct np_opt_set opts; /* the job socket's options, for the upstream and the leg */
	uint64_t deadline_ns;

	bool connecting;     /* upstream connect in progress */
	bool job_eof;	     /* read EOF from the job side */
	bool job_shut_sent;  /* shutdown(SHUT_WR) done upstream */
	bool peer_eof;	     /* read EOF from the upstream */
	bool peer_shut_sent; /* shutdown(SHUT_WR) done on the job leg */
	bool peer_reset;     /* upstream reset: flush, then reset the job leg */
	bool detached;
	bool dead;
	int jsock;     /* pidfd_getfd duplicate of the job's socket while the answer is pending */
	bool captured; /* detach had the job socket: consumed/delivered are exact */
	uint64_t consumed, delivered, unread_sum;

	/* Since its first cut (cut.c): every byte from the job goes through the up ring, which
	 * keeps NP_RETAIN bytes behind what it sent (stream offset = ring offset + up_delta), so
	 * a restored job's replay can be compared; a leg's EOF or reset while the job's process
	 * is exiting is held (detached, upstream kept) until a restore or the job's end. */
	bool retain;
	bool held;
	int held_err; /* 0: the leg had EOF; else the error it failed with */
	uint64_t up_delta;
	uint64_t replay_pos, replay_end; /* restored job's bytes [pos, end) are compared */
};

struct netproxy {
	struct netproxy_config cfg;
	int epfd;
	struct np_ep timer;
	bool timer_armed;
	struct np_listener *listeners;
	unsigned nlisteners;
	struct np_ep leglisten[2]; /* [0] AF_INET 127.0.0.1, [1] AF_INET6 ::1; fd -1 until used */
	struct sockaddr_storage legaddr[2];
	int refuser[2]; /* bound, never listening: a connect to it is refused at once */
	int pool[2][NP_LEG_POOL][2]; /* legs made ahead: [family idx][k] = {job end, proxy end} */
	unsigned npool[2];
	bool pool_want[2]; /* a leg of that family was used: keep the pool full */
	struct sockaddr_storage refaddr[2];
	uint64_t netns_cookie; /* of our network namespace, once a leg listener exists; 0 before */
	struct np_session *sessions;
	struct np_session *dead; /* destroyed during a dispatch batch, freed at its end */
	bool in_dispatch;
	unsigned nsessions;
	uint64_t nconnects, nrefused_limit;
	uint64_t nreplay_mismatch; /* restored jobs that sent other bytes than before (cut.c) */
	unsigned nheld;		   /* sessions held after their leg ended (cut.c) */
	uint32_t next_id;
	uint64_t instance; /* netproxy_instance */
	size_t notif_size, resp_size;
};

/* netproxy.c */
int np_ep_set(struct netproxy *np, struct np_ep *ep, uint32_t events);
void np_ep_del(struct netproxy *np, struct np_ep *ep);
void np_timer_arm(struct netproxy *np);
struct np_session *np_session_by_id(struct netproxy *np, uint32_t id);
struct np_session *np_session_by_ino(struct netproxy *np, ino_t ino);
void np_session_destroy(struct np_session *s, bool reset_upstream);

/* notify.c */
struct np_opt {
	int level, name;
};
/* Socket options a proxied socket passes on to its upstream (before connect: copied; after:
 * with NETPROXY_FILTER_SOCKOPTS, set on both). */
extern const struct np_opt np_passed_opts[];
extern const size_t np_passed_opts_n;
int np_notify_handle(struct netproxy *np, struct np_listener *l);
int np_session_new(struct netproxy *np, int family, struct np_session **ret);
void np_opts_apply(const struct np_opt_set *set, int to);
/* Connect s->us (made, options set) to s->peer, non-blocking; the result comes through
 * np_connect_complete, at once or from the loop. */
void np_upstream_connect(struct np_session *s);
int np_respond(int notify_fd, uint64_t id, int64_t val, int err, uint32_t flags);
bool np_id_valid(int notify_fd, uint64_t id);
void np_connect_complete(struct np_session *s, int err);
void np_connect_expire(struct np_session *s);

/* leg.c */
int np_leg_new(struct netproxy *np, int family, int *ret_js, int *ret_ps);
/* A leg for a restored job's socket: its job end blocking (the caller sets the old fd's flags),
 * its inode in *ret_ino. */
int np_leg_new_restored(struct netproxy *np, int family, int *ret_js, int *ret_ps, ino_t *ret_ino);
int np_leg_attach_job(struct netproxy *np, int family, int jsock, int *ret_ps);
void np_leg_pool_refill(struct netproxy *np);
void np_leg_pool_free(struct netproxy *np);
int np_leg_refused(struct netproxy *np, int family, int *ret_js);
void np_leg_accept_foreign(struct netproxy *np, int idx);
void np_reset_close(int fd);
bool np_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
int np_family_idx(int family);
/** The loopback address of @family (AF_INET6, else AF_INET), port 0, in @ss; its length. */
socklen_t np_loopback(int family, struct sockaddr_storage *ss);

/* cut.c */
bool np_cut_hold_leg(struct np_session *s, int err);
ssize_t np_cut_replay_fill(struct np_session *s);

/* relay.c */
void np_relay_pump(struct np_session *s);
int np_relay_start(struct np_session *s, int ps);

#endif
