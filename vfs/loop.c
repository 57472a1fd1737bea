/* The request loop: our own worker threads around libfuse's fuse_session_process_buf, instead
 * of fuse_session_loop_mt, so that large WRITEs can stay in a pipe (splice) while everything
 * else is read plainly.
 *
 * Why not libfuse's splice reading: libfuse 3.14 sizes its per-thread pipe to its fixed buffer
 * size (1 MiB + 4 KiB), which needs CAP_SYS_RESOURCE (pipe-max-size is 1 MiB), and then
 * splices every request, small ones too (splice + read: one more syscall on every metadata
 * round trip). Here a worker makes itself a 1 MiB pipe (allowed unprivileged) when it first
 * reads a large WRITE, max_write keeps every WRITE within it (VFS_MAX_WRITE plus the header
 * fits its 256 slots: a request that did not fit would fail with EIO in the kernel), and the
 * worker splices from then on, until a run of small requests sends it back to plain reads.
 * Either way of reading is correct for any request; the switch only decides which costs less
 * (the first large WRITE a worker sees is copied, as are all when no such pipe can be had).
 *
 * Stopping: fuse_session_exit, then VFS_WAKE_SIGNAL (a no-op handler without SA_RESTART) to
 * each worker until it is joined: a worker waiting in read/splice on /dev/fuse gets EINTR and
 * sees the exit flag. The workers also end by themselves when the mount goes away (ENODEV). */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/ck.h"
#include "vfs/vfs-internal.h"

/* The start of every request, from the kernel's FUSE protocol (linux/fuse.h, whose macros
 * clash with libfuse's headers): only the length and the opcode are looked at here. */
struct req_head {
	uint32_t len;
	uint32_t opcode;
};
#define REQ_HEADER_SIZE	  40u /* struct fuse_in_header */
#define WRITE_HEADER_SIZE 40u /* struct fuse_write_in */
#define OP_WRITE	  16u /* FUSE_WRITE */

/* Requests below this size in a pipe are copied out and handled from memory. */
#define SMALL_REQ (REQ_HEADER_SIZE + WRITE_HEADER_SIZE + 4096u)
/* A WRITE at least this large puts the worker in splice mode ... */
#define SPLICE_TRIGGER (128u * 1024u)
/* ... for this many small requests in a row before it reads plainly again. */
#define SPLICE_CREDIT 16u
#define PIPE_SIZE     (1u << 20)
#define BUF_SIZE      (VFS_MAX_WRITE + 4096u)

struct vfs_worker {
	struct vfs *v;
	pthread_t thread;
	bool started;
	int pipe[2];	 /* made at the first large WRITE; -1 until then */
	bool no_pipe;	 /* no pipe of PIPE_SIZE could be had: never splice */
	unsigned credit; /* > 0: splice mode */
	char *buf;
};

static void wake_handler(int sig)
{
	(void)sig;
}

static uint32_t opcode_of(const char *buf)
{
	struct req_head h;
	memcpy(&h, buf, sizeof(h));
	return h.opcode;
}

/* Empty the pipe after a request: libfuse leaves data there when a handler did not consume
 * it (and on its error paths it resets its own pipe, not ours). */
static int drain_pipe(struct vfs_worker *w)
{
	for (;;) {
		int left = 0;
		if (ioctl(w->pipe[0], FIONREAD, &left) < 0)
			return -errno;
		if (left <= 0)
			return 0;
		ssize_t k = read(w->pipe[0], w->buf, CK_MIN((size_t)left, (size_t)BUF_SIZE));
		if (k < 0 && errno != EINTR)
			return -errno;
	}
}

/* Give up splicing on @w (its pipe is in an unknown state, or none could be made). */
static void pipe_close(struct vfs_worker *w)
{
	if (w->pipe[0] >= 0) {
		close(w->pipe[0]);
		close(w->pipe[1]);
	}
	w->pipe[0] = w->pipe[1] = -1;
	w->no_pipe = true;
	w->credit = 0;
}

/* The worker's pipe, made when first needed: a job that never writes large files holds none
 * (the user's pipe-user-pages-soft budget, 64 MiB, is shared by all of the user's pipes). */
static int pipe_get(struct vfs_worker *w)
{
	if (w->pipe[0] >= 0)
		return 0;
	if (w->no_pipe)
		return -ENOSPC;
	if (pipe2(w->pipe, O_CLOEXEC) < 0) {
		w->pipe[0] = w->pipe[1] = -1;
		w->no_pipe = true;
		return -errno;
	}
	/* Fails past that budget: this worker then only reads. */
	if (fcntl(w->pipe[1], F_SETPIPE_SZ, PIPE_SIZE) < (int)PIPE_SIZE) {
		pipe_close(w);
		return -ENOSPC;
	}
	return 0;
}

/* Receive one request into @fb; 0 when the session is over, -errno to retry. */
static ssize_t receive(struct vfs_worker *w, int fd, struct fuse_buf *fb)
{
	struct fuse_session *se = w->v->se;
	ssize_t n;
	bool spliced = w->credit > 0 && w->pipe[0] >= 0;
	if (spliced)
		n = splice(fd, NULL, w->pipe[1], NULL, PIPE_SIZE, 0);
	else
		n = read(fd, w->buf, BUF_SIZE);
	int err = errno;
	if (fuse_session_exited(se))
		return 0;
	if (n < 0) {
		if (err == ENODEV) { /* unmounted, or the connection aborted */
			fuse_session_exit(se);
			return 0;
		}
		return -err; /* EINTR, EAGAIN, ENOENT (interrupted before we read it): retry */
	}
	if ((size_t)n < REQ_HEADER_SIZE)
		return -EIO;
	*fb = (struct fuse_buf){.size = (size_t)n, .mem = w->buf};
	if (!spliced) {
		if (opcode_of(w->buf) == OP_WRITE && n >= SPLICE_TRIGGER && pipe_get(w) == 0)
			w->credit = SPLICE_CREDIT;
		return n;
	}
	if ((size_t)n < SMALL_REQ) {
		ssize_t k = ck_read_full(w->pipe[0], w->buf, (size_t)n);
		if (k != n)
			return -EIO;
		w->credit--;
		return n;
	}
	w->credit = SPLICE_CREDIT;
	fb->mem = NULL;
	fb->flags = FUSE_BUF_IS_FD;
	fb->fd = w->pipe[0];
	return n;
}

static void *worker_main(void *p)
{
	struct vfs_worker *w = p;
	struct fuse_session *se = w->v->se;
	int fd = fuse_session_fd(se);
	sigset_t wake;
	sigemptyset(&wake);
	sigaddset(&wake, VFS_WAKE_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &wake, NULL);
	while (!fuse_session_exited(se)) {
		struct fuse_buf fb;
		ssize_t n = receive(w, fd, &fb);
		if (n == 0)
			break;
		if (n == -EIO) {
			/* A short or broken request: start over with an empty pipe. */
			if (w->pipe[0] >= 0 && drain_pipe(w) < 0)
				pipe_close(w);
			continue;
		}
		if (n < 0)
			continue;
		fuse_session_process_buf(se, &fb);
		if ((fb.flags & FUSE_BUF_IS_FD) && drain_pipe(w) < 0)
			pipe_close(w); /* plain reads from now on */
	}
	return NULL;
}

static int worker_init(struct vfs *v, struct vfs_worker *w)
{
	w->v = v;
	w->pipe[0] = w->pipe[1] = -1;
	w->buf = malloc(BUF_SIZE);
	return w->buf ? 0 : -ENOMEM;
}

static void workers_free(struct vfs *v)
{
	for (unsigned i = 0; i < v->n_workers; i++) {
		pipe_close(&v->workers[i]);
		free(v->workers[i].buf);
	}
	free(v->workers);
	v->workers = NULL;
	v->n_workers = 0;
}

void vfs_loop_stop(struct vfs *v)
{
	if (!v->workers)
		return;
	fuse_session_exit(v->se);
	for (unsigned i = 0; i < v->n_workers; i++) {
		struct vfs_worker *w = &v->workers[i];
		if (!w->started)
			continue;
		/* Until it is joined: a signal sent just before it enters read is lost. */
		for (;;) {
			pthread_kill(w->thread, VFS_WAKE_SIGNAL);
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 50 * 1000 * 1000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			int r = pthread_timedjoin_np(w->thread, NULL, &ts);
			if (r != ETIMEDOUT && r != EINTR)
				break;
		}
		w->started = false;
	}
	workers_free(v);
}

int vfs_loop_start(struct vfs *v)
{
	/* No SA_RESTART: the signal must make read/splice return EINTR. */
	struct sigaction sa = {.sa_handler = wake_handler};
	sigemptyset(&sa.sa_mask);
	if (sigaction(VFS_WAKE_SIGNAL, &sa, NULL) < 0)
		return -errno;

	v->workers = calloc(v->max_threads, sizeof(*v->workers));
	if (!v->workers)
		return -ENOMEM;
	v->n_workers = v->max_threads;
	for (unsigned i = 0; i < v->n_workers; i++) {
		if (worker_init(v, &v->workers[i]) < 0) {
			workers_free(v);
			return -ENOMEM;
		}
	}
	/* Workers run with every signal blocked but the wake signal: the supervisor's signals
	 * are for its own threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int r = 0;
	for (unsigned i = 0; i < v->n_workers && r == 0; i++) {
		r = -pthread_create(&v->workers[i].thread, NULL, worker_main, &v->workers[i]);
		v->workers[i].started = r == 0;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		vfs_loop_stop(v);
	return r;
}
