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
 * One reader at a time: of the workers, only the one holding the reader role waits on
 * /dev/fuse; it handles what it reads itself and reads again. Every worker waiting there would
 * be woken in turn (the kernel wakes the longest waiter), so each request of a sequential
 * metadata workload would wake a different, cold thread: measured on the 5000-file
 * create+stat+unlink, 8 free readers cost 2.2 context switches and 75 us of CPU per file
 * against 1.5 and 60 us with one. The parallelism of several workers stays for requests that
 * take long: a "standby" worker watches the reader, and takes the role over when the reader
 * has been busy with one request for STALL_NS (a large WRITE, a READ from a cold layer, a
 * lock held by a commit); the old reader, when done, parks (or becomes the standby). So a slow
 * request delays the others by at most STALL_NS, and up to max_threads requests can be in
 * progress at once, as before.
 *
 * Spinning: every request of a sequential metadata workload is a wake-up of the reader asleep
 * in read, on the other CPU; on a virtual machine that wake-up (an IPI, a VM exit, the idle
 * CPU's halt exit) costs more than the request itself. So in a burst (a request came less than
 * BURST_NS after the one before) the reader polls /dev/fuse for up to spin_ns before it sleeps:
 * the next request of the same caller, a few microseconds of its time away, finds it awake.
 * Measured on the 10000-file create+stat+unlink of bench/fs.sh (Firecracker guest, 2 CPUs):
 * 3.75-4.84 s without, 2.35 s with 50 us, 2.27 s with 200 us. The cost: up to spin_ns of one
 * CPU after the last request of each burst; a spin that finds nothing makes the reader skip
 * the next few (maybe_spin), so a loaded machine, where the caller is often descheduled, pays
 * little. CKPTENV_SPIN_US changes the time (0: never spin).
 *
 * Stopping: fuse_session_exit and a broadcast to the parked workers, then VFS_WAKE_SIGNAL (a
 * no-op handler without SA_RESTART) to each worker until it is joined: the reader waiting in
 * read/splice on /dev/fuse gets EINTR and sees the exit flag. The workers also end by
 * themselves when the mount goes away (ENODEV). */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
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

/* A reader busy with one request this long gets relieved by the standby. */
#define STALL_NS (1000u * 1000u)
/* While requests come (the last less than ACTIVE_NS ago) the standby looks at the reader every
 * POLL_NS; after that it sleeps until the reader, receiving again, wakes it. */
#define ACTIVE_NS (100ull * 1000 * 1000)
#define POLL_NS	  (1000u * 1000u)
#define SPIN_NS	  (50ull * 1000)
#define BURST_NS  (200ull * 1000)

struct vfs_loop {
	struct vfs_worker *workers;
	unsigned n;
	pthread_mutex_t lock;
	pthread_cond_t parked;	     /* workers with no role */
	pthread_cond_t standby_cond; /* the standby, when the reader needs watching again */
	struct vfs_worker *reader;   /* holds the reader role; atomic reads outside the lock */
	struct vfs_worker *standby;  /* under lock */
	bool stopping;		     /* under lock */
	uint64_t busy_since;   /* atomic: when the reader got its current request (0: in read) */
	uint64_t last_request; /* atomic: when the last request was received */
	uint64_t spin_ns;      /* see "Spinning" */
};

struct vfs_worker {
	struct vfs *v;
	struct vfs_loop *loop;
	pthread_t thread;
	bool started;
	int pipe[2];	 /* made at the first large WRITE; -1 until then */
	bool no_pipe;	 /* no pipe of PIPE_SIZE could be had: never splice */
	unsigned credit; /* > 0: splice mode */
	char *buf;
	uint64_t last_rx; /* when this worker last received a request */
	bool burst;	  /* that one came less than BURST_NS after the one before */
	unsigned spin_backoff, spin_skip; /* see maybe_spin */
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

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Poll @fd until a request is there (true) or @ns have passed (then read sleeps as usual). */
static bool spin_for_request(int fd, uint64_t ns)
{
	uint64_t end = mono_ns() + ns;
	do {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		if (poll(&pf, 1, 0) != 0)
			return true;
	} while (mono_ns() < end);
	return false;
}

/* Spin only while it pays: after a spin that found nothing, skip the next 1, 3, 7 ... 63
 * chances, so that on a busy machine (the caller descheduled) little CPU goes to waiting. */
static void maybe_spin(const struct vfs_loop *l, struct vfs_worker *w, int fd)
{
	if (!w->burst || !l->spin_ns)
		return;
	if (w->spin_skip) {
		w->spin_skip--;
	} else if (spin_for_request(fd, l->spin_ns)) {
		w->spin_backoff = 0;
	} else {
		w->spin_backoff = CK_MIN(2 * w->spin_backoff + 1, 63u);
		w->spin_skip = w->spin_backoff;
	}
}

static struct timespec mono_ts(uint64_t ns)
{
	return (struct timespec){.tv_sec = (time_t)(ns / 1000000000ull),
				 .tv_nsec = (long)(ns % 1000000000ull)};
}

/* Under l->lock: make @w the reader, and see that some parked worker becomes the standby. */
static void become_reader(struct vfs_loop *l, struct vfs_worker *w)
{
	__atomic_store_n(&l->busy_since, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&l->reader, w, __ATOMIC_RELEASE);
	if (l->standby == w) {
		l->standby = NULL;
		pthread_cond_signal(&l->parked);
	}
}

/* Wait until @w holds the reader role; false when the loop is stopping. The standby takes the
 * role from a reader stuck in one request for STALL_NS. */
static bool take_role(struct vfs_loop *l, struct vfs_worker *w)
{
	pthread_mutex_lock(&l->lock);
	for (;;) {
		if (l->stopping || fuse_session_exited(w->v->se)) {
			pthread_mutex_unlock(&l->lock);
			return false;
		}
		if (!l->reader) {
			become_reader(l, w);
			break;
		}
		if (l->standby && l->standby != w) {
			pthread_cond_wait(&l->parked, &l->lock);
			continue;
		}
		l->standby = w;
		uint64_t now = mono_ns();
		uint64_t busy = __atomic_load_n(&l->busy_since, __ATOMIC_RELAXED);
		if (busy && now - busy >= STALL_NS) {
			become_reader(l, w); /* the old reader parks when it is done */
			break;
		}
		uint64_t last = __atomic_load_n(&l->last_request, __ATOMIC_RELAXED);
		if (busy) {
			struct timespec ts = mono_ts(busy + STALL_NS);
			pthread_cond_timedwait(&l->standby_cond, &l->lock, &ts);
		} else if (now - last < ACTIVE_NS) {
			struct timespec ts = mono_ts(now + POLL_NS);
			pthread_cond_timedwait(&l->standby_cond, &l->lock, &ts);
		} else {
			pthread_cond_wait(&l->standby_cond, &l->lock);
		}
	}
	pthread_mutex_unlock(&l->lock);
	return true;
}

/* The reader got a request at @now: mark it busy; after a quiet spell, wake the standby so it
 * watches again. */
static void reader_busy(struct vfs_loop *l, uint64_t now)
{
	__atomic_store_n(&l->busy_since, now, __ATOMIC_RELAXED);
	uint64_t last = __atomic_exchange_n(&l->last_request, now, __ATOMIC_RELAXED);
	if (now - last >= ACTIVE_NS) {
		pthread_mutex_lock(&l->lock);
		pthread_cond_signal(&l->standby_cond);
		pthread_mutex_unlock(&l->lock);
	}
}

static void loop_stopping(struct vfs_loop *l)
{
	pthread_mutex_lock(&l->lock);
	l->stopping = true;
	pthread_cond_broadcast(&l->parked);
	pthread_cond_broadcast(&l->standby_cond);
	pthread_mutex_unlock(&l->lock);
}

static void *worker_main(void *p)
{
	struct vfs_worker *w = p;
	struct vfs_loop *l = w->loop;
	struct fuse_session *se = w->v->se;
	int fd = fuse_session_fd(se);
	sigset_t wake;
	sigemptyset(&wake);
	sigaddset(&wake, VFS_WAKE_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &wake, NULL);
	while (take_role(l, w)) {
		/* As the reader, until the session ends or the role was taken over. */
		while (__atomic_load_n(&l->reader, __ATOMIC_ACQUIRE) == w) {
			__atomic_store_n(&l->busy_since, 0, __ATOMIC_RELAXED);
			maybe_spin(l, w, fd);
			struct fuse_buf fb;
			ssize_t n = receive(w, fd, &fb);
			if (n == 0) {
				loop_stopping(l);
				return NULL;
			}
			if (n == -EIO) {
				/* A short or broken request: start over with an empty pipe. */
				if (w->pipe[0] >= 0 && drain_pipe(w) < 0)
					pipe_close(w);
				continue;
			}
			if (n < 0)
				continue;
			uint32_t op = fb.mem ? opcode_of(fb.mem) : OP_WRITE;
			__atomic_add_fetch(&w->v->io.requests[op < VFS_OPCODES ? op : 0], 1,
					   __ATOMIC_RELAXED);
			uint64_t now = mono_ns();
			w->burst = now - w->last_rx < BURST_NS;
			w->last_rx = now;
			reader_busy(l, now);
			fuse_session_process_buf(se, &fb);
			if ((fb.flags & FUSE_BUF_IS_FD) && drain_pipe(w) < 0)
				pipe_close(w); /* plain reads from now on */
		}
		/* Relieved: the role is someone else's; wait for it again. */
	}
	return NULL;
}

static int worker_init(struct vfs *v, struct vfs_worker *w)
{
	w->v = v;
	w->loop = v->loop;
	w->pipe[0] = w->pipe[1] = -1;
	w->buf = malloc(BUF_SIZE);
	return w->buf ? 0 : -ENOMEM;
}

static void loop_free(struct vfs *v)
{
	struct vfs_loop *l = v->loop;
	if (!l)
		return;
	for (unsigned i = 0; i < l->n; i++) {
		pipe_close(&l->workers[i]);
		free(l->workers[i].buf);
	}
	free(l->workers);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->parked);
	pthread_cond_destroy(&l->standby_cond);
	free(l);
	v->loop = NULL;
}

void vfs_loop_stop(struct vfs *v)
{
	struct vfs_loop *l = v->loop;
	if (!l)
		return;
	fuse_session_exit(v->se);
	loop_stopping(l);
	for (unsigned i = 0; i < l->n; i++) {
		struct vfs_worker *w = &l->workers[i];
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
	loop_free(v);
}

static int loop_new(struct vfs *v)
{
	struct vfs_loop *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->parked, NULL);
	pthread_cond_init(&l->standby_cond, &ca);
	pthread_condattr_destroy(&ca);
	v->loop = l;
	l->workers = calloc(v->max_threads, sizeof(*l->workers));
	if (!l->workers) {
		loop_free(v);
		return -ENOMEM;
	}
	l->n = v->max_threads;
	if (vfs_spin_parse(getenv("CKPTENV_SPIN_US"), &l->spin_ns) < 0)
		l->spin_ns = SPIN_NS; /* `run` and `restore` refuse such a value first */
	for (unsigned i = 0; i < l->n; i++) {
		if (worker_init(v, &l->workers[i]) < 0) {
			loop_free(v);
			return -ENOMEM;
		}
	}
	return 0;
}

int vfs_spin_parse(const char *s, uint64_t *ret_ns)
{
	if (!s || !*s) {
		*ret_ns = SPIN_NS;
		return 0;
	}
	if (strspn(s, "0123456789") != strlen(s) || strlen(s) > 6)
		return -EINVAL;
	*ret_ns = strtoull(s, NULL, 10) * 1000;
	return 0;
}

int vfs_loop_start(struct vfs *v)
{
	/* No SA_RESTART: the signal must make read/splice return EINTR. */
	struct sigaction sa = {.sa_handler = wake_handler};
	sigemptyset(&sa.sa_mask);
	if (sigaction(VFS_WAKE_SIGNAL, &sa, NULL) < 0)
		return -errno;
	int r = loop_new(v);
	if (r < 0)
		return r;
	/* Workers run with every signal blocked but the wake signal: the supervisor's signals
	 * are for its own threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	struct vfs_loop *l = v->loop;
	for (unsigned i = 0; i < l->n && r == 0; i++) {
		r = -pthread_create(&l->workers[i].thread, NULL, worker_main, &l->workers[i]);
		l->workers[i].started = r == 0;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		vfs_loop_stop(v);
	return r;
}
