/* Pty pairs and pipe triples for the job side. */
#include <pty.h>
#include <sys/ioctl.h>

#include "ptyproxy-internal.h"

static int set_flags(int fd, bool nonblock)
{
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
	if (nonblock) {
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
			return -errno;
	}
	return 0;
}

int ptyproxy_pty_open(const char *ptmx, const struct termios *tio, const struct winsize *ws,
		      int *ret_master, int *ret_slave)
{
	struct winsize w = ws && ws->ws_row && ws->ws_col ? *ws : (struct winsize){24, 80, 0, 0};
	_cleanup_close_ int master = -1, slave = -1;
	if (!ptmx) {
		/* openpty's termios argument is const-unclean in older glibc: copy. */
		struct termios t;
		if (tio)
			t = *tio;
		if (openpty(&master, &slave, NULL, tio ? &t : NULL, &w) < 0)
			return -errno;
	} else {
		/* A ptmx of the job's own devpts instance: TIOCGPTPEER finds the slave in that
		 * instance without a path lookup (which would resolve in ours). */
		master = open(ptmx, O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (master < 0)
			return -errno;
		int unlock = 0;
		if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
			return -errno;
		slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (slave < 0)
			return -errno;
		if (tio && tcsetattr(slave, TCSANOW, tio) < 0)
			return -errno;
		if (ioctl(master, TIOCSWINSZ, &w) < 0)
			return -errno;
	}
	int r = set_flags(master, true);
	if (r < 0)
		return r;
	r = set_flags(slave, false);
	if (r < 0)
		return r;
	*ret_master = TAKE_FD(master);
	*ret_slave = TAKE_FD(slave);
	return 0;
}

int ptyproxy_child_setup(int slave_fd)
{
	/* TIOCSCTTY needs a session leader without a controlling tty: setsid() first. */
	if (setsid() < 0 && errno != EPERM)
		return -errno;
	if (ioctl(slave_fd, TIOCSCTTY, 0) < 0)
		return -errno;
	for (int i = 0; i < 3; i++)
		if (slave_fd != i && dup2(slave_fd, i) < 0)
			return -errno;
	if (slave_fd > 2)
		close(slave_fd);
	return 0;
}

int ptyproxy_pipes_create(int job_fds[3], int sup_fds[3])
{
	int p[3][2];
	int n = 0, r = 0;
	for (; n < 3; n++)
		if (pipe2(p[n], O_CLOEXEC) < 0) {
			r = -errno;
			break;
		}
	for (int i = 0; !r && i < 3; i++) {
		/* stdin: the job reads p[0][0]; stdout/err: the job writes p[i][1]. */
		int sup = i == 0 ? p[0][1] : p[i][0];
		r = set_flags(sup, true);
	}
	if (r < 0) {
		for (int i = 0; i < n; i++)
			close(p[i][0]), close(p[i][1]);
		return r;
	}
	job_fds[0] = p[0][0], sup_fds[0] = p[0][1];
	for (int i = 1; i < 3; i++)
		job_fds[i] = p[i][1], sup_fds[i] = p[i][0];
	return 0;
}

int ptyproxy_child_setup_pipes(const int job_fds[3])
{
	int fds[3];
	/* Move them out of 0..2 first, so dup2 onto 0..2 cannot clobber one not yet placed. */
	for (int i = 0; i < 3; i++) {
		fds[i] = fcntl(job_fds[i], F_DUPFD_CLOEXEC, 3);
		if (fds[i] < 0)
			return -errno;
	}
	for (int i = 0; i < 3; i++) {
		if (dup2(fds[i], i) < 0)
			return -errno;
		close(fds[i]);
		if (job_fds[i] > 2)
			close(job_fds[i]);
	}
	return 0;
}
