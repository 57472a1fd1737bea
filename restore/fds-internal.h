/* Private to restore/: the kind-specific part of the fd table, both sides (dump-fds-kinds.c,
 * sockdiag.c, restore-fds-kinds.c). */
#ifndef RESTORE_FDS_INTERNAL_H
#define RESTORE_FDS_INTERNAL_H

#include "restore/dump-internal.h"
#include "restore/restore-internal.h"

#include <stdio.h>

/* The dump refuses the fd, in one line (@err may be NULL). */
#define REFUSE(err, ...)                                                       \
	do {                                                                   \
		if (err)                                                       \
			snprintf((err)->msg, sizeof((err)->msg), __VA_ARGS__); \
		return -EOPNOTSUPP;                                            \
	} while (0)

/* sockdiag.c: NETLINK_SOCK_DIAG queries in the caller's network namespace (the job's: it has
 * none of its own). */
struct sockdiag_unix {
	uint32_t state;		 /* TCP_LISTEN, TCP_ESTABLISHED, TCP_CLOSE... */
	uint64_t peer_ino;	 /* 0: no peer */
	uint32_t rqueue, wqueue; /* listening: pending connections, backlog */
	uint8_t shutdown;	 /* sk_shutdown: 1 receive, 2 send */
};
/** A NETLINK_SOCK_DIAG socket: fd or -errno. */
int sockdiag_open(void);
/** Unix socket @ino, asked on @diag (sockdiag_open). -ENOENT if there is none, -errno else. */
int sockdiag_unix_get(int diag, uint64_t ino, struct sockdiag_unix *ret);

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

/* dump-fds-sockets.c */
#define DUMP_SOCKOPTS_N	 19
#define DUMP_FRESH_CACHE 8
/* What the socket dumps of one checkpoint share. */
struct dump_sockets {
	int diag;		      /* sockdiag_open(), -1 until a unix socket needs it */
	struct sockdiag_listener *ls; /* the TCP listeners of the namespace */
	size_t nls;
	/* option values of a fresh socket, per (family, type, protocol) */
	struct dump_fresh {
		int family, type, protocol;
		int val[DUMP_SOCKOPTS_N];
		bool ok[DUMP_SOCKOPTS_N];
	} fresh[DUMP_FRESH_CACHE];
	size_t nfresh;
};
/** Pipe state: buffered bytes (on the first fd of each pipe), size, other end outside. */
int dump_pipes_state(pid_t pid, int pidfd, struct restore_image *img, struct restore_err *err);
/** Socket state of @f; refuses (-EOPNOTSUPP, err->msg) what cannot be checkpointed. */
int dump_socket_state(int pidfd, const struct restore_image *img, struct restore_fd *f,
		      struct dump_sockets *ds, struct restore_err *err);
/** pidfd_getfd of the job's @fd: a new fd or -errno. */
int dump_fd_getfd(int pidfd, int fd);

/* restore-fds-kinds.c */
/** Set @fd's file status flags to image fd @i's, move it above the image's numbers and make it
 *  c->fds[i].tmp. Closes @fd on failure. */
int rst_fd_take(struct rst_ctx *c, size_t i, int fd);
/** rst_fail() with errno and "fd N (kind): @what: strerror". */
int rst_fd_sys_fail(struct rst_ctx *c, const struct restore_fd *f, const char *what);
/* restore-fds-sockets.c */
int rst_plan_pipe(struct rst_ctx *c, size_t i);
int rst_plan_socket(struct rst_ctx *c, size_t i);

/* restore-fds-kinds.c */
/** Recreate image fd @i (kinds pipe, socket, eventfd, timerfd, signalfd, epoll, inotify), and
 *  with it every other fd of the same pipe or socket pair, into c->fds[].tmp. */
int rst_fd_kind_plan(struct rst_ctx *c, size_t i);
/** After every fd is at its number: the epoll registrations. */
int rst_fds_epoll_install(struct rst_ctx *c);

#endif
