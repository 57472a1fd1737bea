/* The job's pid 1.
 *
 * Sets up the job's mounts (private propagation, the vfs on /tmp, a /proc of the new pid
 * namespace, and for a terminal job a devpts instance of its own), then runs the command as
 * pid 2 in its own process group (on a terminal: its own session, the pty as controlling
 * terminal, so it is the foreground process group and job control works), reaps every process of
 * the namespace (orphans are reparented to us), forwards the signals the supervisor sends, and
 * exits with the command's status. All signals stay blocked and are taken with sigwaitinfo():
 * the kernel drops signals to a namespace init that has no handler, but queues blocked ones. */
#include "launch.h"

#include "common/ck.h"
#include "ptyproxy/ptyproxy.h"
#include "vfs/vfs.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/wait.h>

extern char **environ;

__attribute__((noreturn, format(printf, 3, 4))) static void fail(int sock, int err, const char *fmt,
								 ...)
{
	uint8_t buf[400];
	va_list ap;
	buf[0] = 'E';
	ck_put_le32(buf + 1, (uint32_t)err);
	va_start(ap, fmt);
	int n = vsnprintf((char *)buf + 5, sizeof(buf) - 5, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	n = CK_MIN(n, (int)sizeof(buf) - 6);
	(void)ck_send_fds(sock, buf, 5 + (size_t)n, NULL, 0);
	_exit(1);
}

__attribute__((noreturn)) static void run_command(const struct job_spec *spec, int slave)
{
	sigset_t none;
	sigemptyset(&none);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (slave >= 0) {
		/* setsid() first (we are no group leader yet), then the pty as our terminal. */
		int r = ptyproxy_child_setup(slave);
		if (r < 0) {
			fprintf(stderr, "ckptenv: cannot attach the job's terminal: %s\n",
				strerror(-r));
			_exit(127);
		}
	} else {
		setpgid(0, 0);
	}
	environ = spec->envp;
	if (chdir(spec->cwd) < 0) {
		fprintf(stderr, "ckptenv: cannot enter %s in the job (%m); starting in /\n",
			spec->cwd);
		if (chdir("/") < 0)
			_exit(127);
	}
	execvp(spec->argv[0], spec->argv);
	int e = errno;
	fprintf(stderr, "ckptenv: cannot run %s: %s\n", spec->argv[0], strerror(e));
	_exit(e == EACCES || e == EPERM || e == EISDIR ? 126 : 127);
}

static int wait_code(int status)
{
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* A devpts instance of the job's own on /dev/pts, its ptmx bound over /dev/ptmx, and a pty
 * pair from it: the slave is /dev/pts/0 inside the job, whatever the host's ptys are. The
 * supervisor gets the master over the socket. */
static int make_pty(const struct winsize *ws, int *ret_master, int *ret_slave)
{
	if (mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		  "newinstance,ptmxmode=0666,mode=0620") < 0)
		return -errno;
	if (mount("/dev/pts/ptmx", "/dev/ptmx", NULL, MS_BIND, NULL) < 0)
		return -errno;
	return ptyproxy_pty_open("/dev/ptmx", NULL, ws, ret_master, ret_slave);
}

void init_main(int sock, const struct job_spec *spec, bool allow_other, const struct winsize *pty_ws)
{
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		fail(sock, errno, "cannot make the job's mounts private: %m");
	int fuse_fd = -1;
	int r = vfs_mount_fuse("/tmp", allow_other, &fuse_fd);
	if (r < 0)
		fail(sock, -r, "cannot mount the job's /tmp: %s", strerror(-r));
	int fds[2] = {fuse_fd, -1}, slave = -1;
	if (pty_ws && (r = make_pty(pty_ws, &fds[1], &slave)) < 0)
		fail(sock, -r, "cannot create the job's terminal (devpts on /dev/pts): %s",
		     strerror(-r));
	r = ck_send_fds(sock, "F", 1, fds, pty_ws ? 2 : 1);
	close(fuse_fd);
	if (fds[1] >= 0)
		close(fds[1]);
	if (r < 0)
		_exit(1);
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		fail(sock, errno, "cannot mount /proc for the job: %m");

	/* Wait until the supervisor serves /tmp (or gives up on us: EOF). */
	char go;
	if (ck_read_full(sock, &go, 1) != 1 || go != 'G')
		_exit(1);
	close(sock);

	pid_t cmd = fork();
	if (cmd < 0) {
		fprintf(stderr, "ckptenv: cannot run %s: fork: %m\n", spec->argv[0]);
		_exit(127);
	}
	if (cmd == 0)
		run_command(spec, slave);
	/* Also here, so a signal right away already finds the group; not for a terminal job,
	 * whose setsid() would fail once it leads a group. */
	if (slave < 0)
		setpgid(cmd, cmd);
	else
		close(slave); /* the job's copies alone keep the terminal open */

	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&all, &si);
		if (sig < 0)
			continue;
		switch (sig) {
		case SIGCHLD: {
			int status;
			pid_t p;
			while ((p = waitpid(-1, &status, WNOHANG)) > 0)
				if (p == cmd)
					_exit(wait_code(status));
			break;
		}
		case SIGINT:
		case SIGQUIT:
			if (kill(-cmd, sig) < 0)
				kill(cmd, sig);
			break;
		case SIGTERM:
		case SIGHUP:
		case SIGUSR1:
		case SIGUSR2:
		case SIGCONT:
		case SIGWINCH:
			kill(cmd, sig);
			break;
		default:
			break;
		}
	}
}
