/* The checkpoint thread. A checkpoint runs on a thread of its own, which is the job's tracer
 * from seize to resume (ptrace answers only the thread that seized), so the main loop goes on
 * serving the terminal, the control socket and the proxy while the job is frozen and dumped.
 *
 * What the main loop owns (the ptyproxy, the netproxy) the thread never touches: it asks the
 * main thread to run a function (sup_ckpt_on_main) and waits until it has run. The main thread
 * never waits for the checkpoint thread, except in sup_ckpt_wait, which goes on running those
 * calls until the thread ends: a wait that did not would deadlock on the thread's next call.
 * One checkpoint at a time; its end (reply, --stop's kill, logs) runs on the main thread. */
#include "supervisor.h"

#include "common/ck.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

struct sup_ckpt_thread {
	struct sup *s;
	int efd; /* eventfd: a call is pending or the thread ended */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	void (*call)(struct sup *s, void *arg); /* taken (NULL) by the main thread */
	void *arg;
	bool called;		    /* the main thread has run the call */
	bool ended;		    /* the checkpoint is over: join the thread */
	struct sup_ckpt_task *task; /* non-NULL while a checkpoint is in progress */
};

int sup_ckpt_thread_setup(struct sup *s, char *err, size_t errlen)
{
	struct sup_ckpt_thread *t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	t->s = s;
	t->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = t->efd};
	if (t->efd < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, t->efd, &ev) < 0) {
		int r = -errno;
		snprintf(err, errlen, "cannot set up the checkpoint thread: %m");
		if (t->efd >= 0)
			close(t->efd);
		free(t);
		return r;
	}
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	s->ckt = t;
	return 0;
}

bool sup_ckpt_busy(const struct sup *s)
{
	return s->ckt && s->ckt->task;
}

static void wake_main(struct sup_ckpt_thread *t)
{
	uint64_t one = 1;
	while (write(t->efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

void sup_ckpt_on_main(struct sup *s, void (*fn)(struct sup *s, void *arg), void *arg)
{
	struct sup_ckpt_thread *t = s->ckt;
	pthread_mutex_lock(&t->lock);
	t->call = fn;
	t->arg = arg;
	t->called = false;
	pthread_mutex_unlock(&t->lock);
	wake_main(t);
	pthread_mutex_lock(&t->lock);
	while (!t->called)
		pthread_cond_wait(&t->cond, &t->lock);
	pthread_mutex_unlock(&t->lock);
}

static void *thread_main(void *arg)
{
	struct sup_ckpt_thread *t = arg;
	sup_ckpt_run(t->s, t->task);
	pthread_mutex_lock(&t->lock);
	t->ended = true;
	pthread_mutex_unlock(&t->lock);
	wake_main(t);
	return NULL;
}

int sup_ckpt_thread_start(struct sup *s, struct sup_ckpt_task *task)
{
	struct sup_ckpt_thread *t = s->ckt;
	if (!t || t->task)
		return -EBUSY;
	t->task = task;
	t->ended = false;
	/* The thread must not take the supervisor's signals (signalfd): block them all. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int r = -pthread_create(&t->thread, NULL, thread_main, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		t->task = NULL;
	return r;
}

bool sup_ckpt_thread_owns(const struct sup *s, int fd)
{
	return s->ckt && fd == s->ckt->efd;
}

void sup_ckpt_thread_dispatch(struct sup *s)
{
	struct sup_ckpt_thread *t = s->ckt;
	uint64_t n;
	(void)!read(t->efd, &n, sizeof(n));
	pthread_mutex_lock(&t->lock);
	void (*fn)(struct sup *, void *) = t->call;
	void *arg = t->arg;
	bool ended = t->ended;
	t->call = NULL;
	pthread_mutex_unlock(&t->lock);
	if (fn) {
		fn(s, arg);
		pthread_mutex_lock(&t->lock);
		t->called = true;
		pthread_cond_signal(&t->cond);
		pthread_mutex_unlock(&t->lock);
	}
	if (!ended || !t->task)
		return;
	pthread_join(t->thread, NULL);
	struct sup_ckpt_task *task = TAKE_PTR(t->task);
	t->ended = false;
	sup_ckpt_ended(s, task);
	free(task);
}

void sup_ckpt_thread_wait(struct sup *s)
{
	while (sup_ckpt_busy(s)) {
		struct pollfd p = {.fd = s->ckt->efd, .events = POLLIN};
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return; /* cannot happen with a valid fd; leaving beats spinning */
		sup_ckpt_thread_dispatch(s);
	}
}

void sup_ckpt_thread_close(struct sup *s)
{
	struct sup_ckpt_thread *t = s->ckt;
	if (!t)
		return;
	sup_ckpt_thread_wait(s);
	close(t->efd);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
	free(t);
	s->ckt = NULL;
}
