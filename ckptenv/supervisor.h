/* The supervisor's private state, shared by supervisor.c (control socket, job life) and
 * sup-stdio.c (the job's terminal or pipes through ptyproxy, the attach socket). */
#ifndef CKPTENV_SUPERVISOR_H
#define CKPTENV_SUPERVISOR_H

#include "ckptenv.h"
#include "control.h"
#include "launch.h"

#define SUP_MAX_CLIENTS 64

struct ptyproxy;
struct netproxy;

struct sup {
	const struct supervisor_args *a;
	struct vfs *v;
	int ep;
	int listen_fd;
	int attach_fd; /* attach.sock, listening */
	int sig_fd;
	int clients[SUP_MAX_CLIENTS]; /* control clients; -1: free slot */
	struct launch_job job;	      /* init_pid > 0 once started */
	struct ptyproxy *pp;	      /* the job's stdio, once started */
	struct netproxy *np;	      /* the job's TCP connections (sup-net.c), once started */
	uint64_t np_refused_logged;   /* connects refused by the limit, already logged */
	uint64_t np_refused_log_ns;   /* when the last such line was written */
	int job_stdio[3];	      /* pipe mode, until launched: the job's ends */
	int sup_stdio[3];	      /* pipe mode, until handed to ptyproxy: ours */
	bool started;
	bool go_pending;	  /* started, but the init waits for a client (launch_go) */
	uint64_t go_deadline_ns;  /* ... or for this time */
	bool job_ended;		  /* reaped; ptyproxy drains to the clients */
	uint64_t end_deadline_ns; /* give up on slow clients then */
	bool done;
	int exit_code;
	int64_t started_at;
	uint64_t run_id;
};

__attribute__((format(printf, 2, 3))) void sup_log(const struct sup *s, const char *fmt, ...);

/** Listen on jobs/NAME/attach.sock (0600) and watch it. Returns 0 or -errno (@err set). */
int sup_stdio_setup(struct sup *s, char *err, size_t errlen);
/** Before launch_job: pipe mode makes the pipes and puts the job's ends in la->stdio; pty mode
 *  sets la->pty. Returns 0 or -errno. */
int sup_stdio_prepare(struct sup *s, struct launch_args *la);
/** After launch_job: serve @pty_fd (taken over; -1 in pipe mode) or the pipes through
 *  ptyproxy, close the job's pipe ends. Returns 0 or -errno. */
int sup_stdio_start(struct sup *s, int pty_fd);
/** Accept attach clients (uid checked) and hand them to ptyproxy. */
void sup_attach_accept(struct sup *s);
/** The job was reaped with @wstatus: tell the clients (after their pending output). */
void sup_stdio_job_exited(struct sup *s, int wstatus);
/** After each loop round: launch_go once a client is attached (or for --detach, or late). Also
 *  says whether the supervisor may finish, and the epoll timeout it needs (-1: none). */
int sup_stdio_tick(struct sup *s);
/** CONTROL_CHECKPOINT from client socket @c (sup-ckpt.c); replies itself. */
void sup_checkpoint(struct sup *s, int c, const struct control_msg *m);
/** Close everything (clients get EOF), unlink attach.sock. */
void sup_stdio_close(struct sup *s);

/* sup-net.c: the job's network through netproxy. */
/** Serve the job's seccomp listener @net_fd (taken over, closed on error too) and watch
 *  netproxy's fd in s->ep. Returns 0 or -errno. */
int sup_net_start(struct sup *s, int net_fd);
/** Whether @fd is netproxy's (then call sup_net_dispatch). */
bool sup_net_owns(const struct sup *s, int fd);
void sup_net_dispatch(struct sup *s);
/** CONTROL_NET_STATUS from client socket @c: replies NET_STATUS_REPLY. */
void sup_net_status(struct sup *s, int c);
/** Reset every proxied connection and free the proxy. NULL-safe. */
void sup_net_close(struct sup *s);

#endif
