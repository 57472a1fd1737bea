/* The job's pid 1.
 *
 * Sets up the job's mounts (private propagation, the vfs on /tmp, a /proc of the new pid
 * namespace), then runs the command as pid 2 in its own process group, reaps every process of
 * the namespace (orphans are reparented to us), forwards the signals the supervisor sends, and
 * exits with the command's status. All signals stay blocked and are taken with sigwaitinfo():
 * the kernel drops signals to a namespace init that has no handler, but queues blocked ones. */
#include "launch.h"

#include "common/ck.h"
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

__attribute__((noreturn)) static void run_command(const struct job_spec *spec)
{
	sigset_t none;
	sigemptyset(&none);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setpgid(0, 0);
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

void init_main(int sock, const struct job_spec *spec, bool allow_other)
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
	r = ck_send_fds(sock, "F", 1, &fuse_fd, 1);
	close(fuse_fd);
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
		run_command(spec);
	setpgid(cmd, cmd); /* also here, so a signal right away already finds the group */

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
