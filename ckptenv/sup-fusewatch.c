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
 * Root only (fusectl cannot be mounted otherwise); as another user the watchdog is not started. */
#include "supervisor.h"

#include "common/ck.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

struct fusewatch {
	pthread_t thread;
	int ctl[2]; /* the watchdog and the thread read ctl[0]; closing ctl[1] stops them */
	dev_t dev;  /* the connection: s_dev of the job's /tmp mount */
	pid_t sup;
	pid_t child;
};

/* The s_dev of the fuse.ckptenv mount on /tmp in @init's mount namespace (the kernel's
 * encoding, major << 20 | minor, which names the fusectl directory). */
static int tmp_dev(pid_t init, dev_t *ret)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int)init);
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = ck_read_file_at(AT_FDCWD, path, 1 << 20, &buf, &len);
	if (r < 0)
		return r;
	for (char *l = buf, *nl; l && *l; l = nl ? nl + 1 : NULL) {
		nl = strchr(l, '\n');
		if (nl)
			*nl = 0;
		unsigned maj, min;
		char mnt[64];
		const char *sep = strstr(l, " - ");
		if (!sep || sscanf(l, "%*d %*d %u:%u %*s %63s", &maj, &min, mnt) != 3 ||
		    strcmp(mnt, "/tmp") || strncmp(sep + 3, "fuse.ckptenv ", 13))
			continue;
		*ret = (dev_t)((maj << 20) | min);
		return 0;
	}
	return -ENOENT;
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
	ck_close_all_but(3, &w->ctl[0], 1);
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
	int r = tmp_dev(s->job.init_pid, &w->dev);
	if (r < 0 || pipe2(w->ctl, O_CLOEXEC) < 0) {
		r = r < 0 ? r : -errno;
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
	free(w);
	s->fusewatch = NULL;
}
