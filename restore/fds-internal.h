/* Private to restore/: the kind-specific part of the fd table, both sides (dump-fds-kinds.c,
 * sockdiag.c, restore-fds-kinds.c). */
#ifndef RESTORE_FDS_INTERNAL_H
#define RESTORE_FDS_INTERNAL_H

#include "restore/dump-internal.h"
#include "restore/restore-internal.h"

/* sockdiag.c: NETLINK_SOCK_DIAG queries in the caller's network namespace (the job's: it has
 * none of its own). */
struct sockdiag_unix {
	uint32_t state;	   /* TCP_LISTEN, TCP_ESTABLISHED, TCP_CLOSE... */
	uint64_t peer_ino; /* 0: no peer */
	uint32_t rqueue, wqueue; /* listening: pending connections, backlog */
};
/** Unix socket @ino. -ENOENT if there is none, -errno else. */
int sockdiag_unix_get(uint64_t ino, struct sockdiag_unix *ret);

struct sockdiag_listener {
	int family;
	uint8_t addr[16]; /* network order */
	uint16_t port;	  /* host order */
	uint64_t ino;
	uint32_t backlog;
};
/** Every listening TCP socket (IPv4 and IPv6) into a malloc'd array. 0 or -errno. */
int sockdiag_tcp_listeners(struct sockdiag_listener **ret, size_t *ret_n);

/* dump-fds-kinds.c */
/** Fill img->fds[].st: fd flags (injected F_GETFD when @inject), shared open file
 *  descriptions (kcmp), and each kind's state. -EOPNOTSUPP with err->msg naming the fd and
 *  its kind for an fd that cannot be checkpointed. */
int dump_fds_state(pid_t pid, int pidfd, struct restore_image *img, bool inject,
		   struct restore_err *err);

/* restore-fds-kinds.c */
/** Recreate image fd @i (kinds pipe, socket, eventfd, timerfd, signalfd, epoll, inotify), and
 *  with it every other fd of the same pipe or socket pair, into c->fds[].tmp. */
int rst_fd_kind_plan(struct rst_ctx *c, size_t i);
/** After every fd is at its number: the epoll registrations. */
int rst_fds_epoll_install(struct rst_ctx *c);

#endif
