/* The job's /tmp is served by the supervisor's own threads, and the supervisor's checkpoint
 * thread (sup-ckpt-thread.c) itself makes requests on that mount while it checkpoints (syncfs
 * of /tmp, fstat of the job's open files). A SIGKILL of the supervisor at such an instant kills
 * the serving threads at once, while that thread waits, uninterruptibly, for the answer to a
 * request already handed to them: the process never finishes dying, keeps the job's lock, and
 * the job cannot be restored. Only an abort of the FUSE connection (fusectl) frees it.
 *
 * So a small watchdog process is forked by a dedicated thread of the supervisor with
 * PR_SET_PDEATHSIG: when that thread dies (a SIGKILL takes every thread down, whatever the main
 * thread is stuck in), the watchdog gets SIGTERM and aborts the connection, through a fusectl
 * mounted in a mount namespace of its own. The normal way out closes the control pipe first:
 * the watchdog and the thread both see end of file, the watchdog leaves without aborting, and
 * the thread reaps it before it exits, so the death signal never fires for a live session.
 * Root only (fusectl cannot be mounted otherwise); as another user the watchdog is not started.
 *
 * The connection is named by the device number of its superblock, and the kernel hands freed
 * numbers out again at once: by the time a killed supervisor's watchdog runs, its mount could
 * be gone and the number another job's (seen in CI: a parallel test's kill -9 aborted net-opts'
 * freshly restored /tmp, "Transport endpoint is not connected"). So the watchdog holds an O_PATH
 * fd on the mount's root: the superblock, and its number, stay ours until the watchdog leaves. */
#include "supervisor.h"

#include "common/ck.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

struct fusewatch {
	pthread_t thread;
	int ctl[2]; /* the watchdog and the thread read ctl[0]; closing ctl[1] stops them */
	int pin;    /* O_PATH fd on the mount's root (see above) */
	dev_t dev;  /* the connection: s_dev of the job's /tmp mount */
	pid_t sup;
	pid_t child;
};

/* An O_PATH fd on the job's /tmp (the fuse.ckptenv mount in @init's mount namespace) and the
 * kernel's encoding of its s_dev (major << 20 | minor, which names the fusectl directory). */
static int tmp_pin(pid_t init, int *ret_fd, dev_t *ret_dev)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/root/tmp", (int)init);
	int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct statfs sf;
	struct stat st;
	int r = 0;
	if (fstatfs(fd, &sf) < 0 || fstat(fd, &st) < 0)
		r = -errno;
	else if (sf.f_type != FUSE_SUPER_MAGIC)
		r = -ENOENT; /* not our mount (yet) */
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret_fd = fd;
	*ret_dev = (dev_t)((major(st.st_dev) << 20) | minor(st.st_dev));
	return 0;
}

/* In the watchdog, after fork: only system calls from here on. */
static void abort_conn(dev_t dev)
{
	char path[80] = "/sys/fs/fuse/connections/", num[24];
	int n = 0;
	unsigned long long v = (unsigned long long)dev;
	do
		num[n++] = (char)('0' + v % 10);
	while ((v /= 10) && n < 23);
	size_t at = strlen(path);
	while (n)
		path[at++] = num[--n];
	memcpy(path + at, "/abort", 7);
	/* Our own fusectl, unless one is mounted there already (then the mount fails with EBUSY
	 * and the one we see serves as well). */
	if (unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0)
		(void)mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, NULL);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)!write(fd, "1", 1);
		close(fd);
	}
}

static void watchdog(struct fusewatch *w) __attribute__((noreturn));
static void watchdog(struct fusewatch *w)
{
	/* Nothing of the supervisor's: above all not its job lock, which would outlive it. */
	int keep[2] = {w->ctl[0], w->pin};
	ck_close_all_but(3, keep, 2);
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);
	int sfd = signalfd(-1, &term, SFD_CLOEXEC);
	if (sfd < 0 || prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != w->sup)
		_exit(0); /* gone already (or cannot watch): nothing to do */
	struct pollfd p[2] = {{.fd = w->ctl[0], .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
	for (;;) {
		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents) /* the thread died: the supervisor is being killed */
			abort_conn(w->dev);
		if (p[0].revents || p[1].revents)
			_exit(0);
	}
}

static void *watch_thread(void *arg)
{
	struct fusewatch *w = arg;
	pid_t c = fork();
	if (c == 0)
		watchdog(w);
	w->child = c;
	if (c > 0) {
		char b;
		while (read(w->ctl[0], &b, 1) < 0 && errno == EINTR)
			;
		while (waitpid(c, NULL, __WALL) < 0 && errno == EINTR)
			;
	}
	return NULL;
}

int sup_fusewatch_start(struct sup *s)
{
	if (geteuid() != 0 || s->fusewatch)
		return 0;
	struct fusewatch *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	int r = tmp_pin(s->job.init_pid, &w->pin, &w->dev);
	if (r == 0 && pipe2(w->ctl, O_CLOEXEC) < 0) {
		r = -errno;
		close(w->pin);
	}
	if (r < 0) {
		free(w);
		sup_log(s, "no watchdog for the /tmp connection: %s", strerror(-r));
		return r;
	}
	w->sup = getpid();
	/* The thread must not take the supervisor's signals (signalfd): block them all. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = -pthread_create(&w->thread, NULL, watch_thread, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		close(w->ctl[0]);
		close(w->ctl[1]);
		close(w->pin);
		free(w);
		sup_log(s, "no watchdog for the /tmp connection: %s", strerror(-r));
		return r;
	}
	s->fusewatch = w;
	return 0;
}

void sup_fusewatch_stop(struct sup *s)
{
	struct fusewatch *w = s->fusewatch;
	if (!w)
		return;
	close(w->ctl[1]); /* end of file for the watchdog (leaves quietly) and the thread */
	pthread_join(w->thread, NULL);
	close(w->ctl[0]);
	close(w->pin);
	free(w);
	s->fusewatch = NULL;
}
