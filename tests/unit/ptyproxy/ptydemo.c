/* ptydemo: a minimal supervisor + attach client over the ptyproxy library, for the e2e scripts
 * and bench/pty.sh until ckptenv's own supervisor is wired. Not a test suite.
 *   ptydemo serve SOCK [--pipes] [--log DIR] -- CMD...   supervise CMD (foreground)
 *   ptydemo run SOCK [attach opts] -- CMD...             serve in the background, attach
 *   ptydemo attach SOCK [--read-only] [--detach-key N|none]
 * Exit status of attach/run: the job's, or 0 on detach ("[detached]" on stderr), 255 lost. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "common/ck.h"
#include "ptyproxy/ptyproxy.h"

static int ep;

static int watch(void *ud, int fd, uint32_t ev)
{
	(void)ud;
	struct epoll_event e = {.events = ev, .data.fd = fd};
	if (!ev)
		return epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e) == 0)
		return 0;
	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0 ? -errno : 0;
}

static void logline(void *ud, const char *line)
{
	(void)ud;
	fprintf(stderr, "ptydemo: %s\n", line);
}

static int serve(const char *sock, bool pipes, const char *logdir, char **cmd, int ready_fd)
{
	signal(SIGPIPE, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	ep = epoll_create1(EPOLL_CLOEXEC);
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	unlink(sock);
	mode_t old = umask(077);
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 16) < 0) {
		perror("ptydemo: listen");
		return 1;
	}
	umask(old);
	int logfd = logdir ? open(logdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	static const struct ptyproxy_ops ops = {.watch = watch, .log = logline};
	struct ptyproxy_config cfg = {.ops = &ops, .log_dirfd = logfd};
	struct ptyproxy *p;
	int job[3], sup[3], master = -1, slave = -1, r;
	if (pipes)
		r = ptyproxy_pipes_create(job, sup);
	else
		r = ptyproxy_pty_open(NULL, NULL, NULL, &master, &slave);
	if (r < 0) {
		fprintf(stderr, "ptydemo: pty: %s\n", strerror(-r));
		return 1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		signal(SIGPIPE, SIG_DFL);
		r = pipes ? ptyproxy_child_setup_pipes(job) : ptyproxy_child_setup(slave);
		if (r < 0)
			_exit(126);
		execvp(cmd[0], cmd);
		_exit(127);
	}
	if (pipes) {
		for (int i = 0; i < 3; i++)
			close(job[i]);
		r = ptyproxy_new_pipes(&cfg, sup, &p);
	} else {
		close(slave);
		r = ptyproxy_new(&cfg, master, NULL, &p);
	}
	if (r < 0) {
		fprintf(stderr, "ptydemo: ptyproxy: %s\n", strerror(-r));
		return 1;
	}
	struct epoll_event e = {.events = EPOLLIN, .data.fd = ls};
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &e);
	e.data.fd = sfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &e);
	if (ready_fd >= 0) {
		(void)!write(ready_fd, "r", 1);
		close(ready_fd);
	}
	bool exited = false;
	uint64_t exit_ns = 0;
	for (;;) {
		int t = ptyproxy_idle(p);
		struct ptyproxy_info info;
		ptyproxy_get_info(p, &info);
		if (exited && (!info.clients || ck_now_ns() - exit_ns > 2000000000ull))
			break;
		if (exited && (t < 0 || t > 50))
			t = 50;
		struct epoll_event ev[16];
		int n = epoll_wait(ep, ev, 16, t);
		for (int i = 0; i < n; i++) {
			int fd = ev[i].data.fd;
			if (fd == ls) {
				int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
				struct ucred cr;
				socklen_t cl = sizeof(cr);
				if (c < 0)
					continue;
				if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 ||
				    cr.uid != getuid()) {
					fprintf(stderr, "ptydemo: refused uid %u\n", cr.uid);
					close(c);
					continue;
				}
				ptyproxy_client_add(p, c);
			} else if (fd == sfd) {
				struct signalfd_siginfo si;
				while (read(sfd, &si, sizeof(si)) > 0) {
				}
				int st;
				if (!exited && waitpid(pid, &st, WNOHANG) == pid) {
					ptyproxy_job_exited(p, st);
					exited = true;
					exit_ns = ck_now_ns();
				}
			} else {
				ptyproxy_handle(p, fd, ev[i].events);
			}
		}
	}
	ptyproxy_free(p);
	unlink(sock);
	return 0;
}

static int do_attach(const char *sock, int argc, char **argv)
{
	struct ptyproxy_client_opts o;
	ptyproxy_client_opts_init(&o);
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--read-only"))
			o.read_only = true;
		else if (!strcmp(argv[i], "--detach-key") && i + 1 < argc) {
			i++;
			o.detach_key = !strcmp(argv[i], "none") ? -1 : (int)strtol(argv[i], NULL, 0);
		}
	}
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("ptydemo: connect");
		return 255;
	}
	int st = 0;
	int r = ptyproxy_client_run(s, &o, &st);
	switch (r) {
	case PTYPROXY_END_EXITED:
		return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	case PTYPROXY_END_DETACHED:
		fprintf(stderr, "[detached]\r\n");
		return 0;
	default:
		fprintf(stderr, "[lost: %d]\r\n", r);
		return 255;
	}
}

int main(int argc, char **argv)
{
	if (argc < 3)
		goto usage;
	int dd = 0;
	for (int i = 3; i < argc; i++)
		if (!strcmp(argv[i], "--")) {
			dd = i;
			break;
		}
	bool pipes = false;
	const char *logdir = NULL;
	for (int i = 3; i < (dd ? dd : argc); i++) {
		if (!strcmp(argv[i], "--pipes"))
			pipes = true;
		if (!strcmp(argv[i], "--log") && i + 1 < argc)
			logdir = argv[++i];
	}
	if (!strcmp(argv[1], "serve") && dd)
		return serve(argv[2], pipes, logdir, argv + dd + 1, -1);
	if (!strcmp(argv[1], "attach"))
		return do_attach(argv[2], argc - 3, argv + 3);
	if (!strcmp(argv[1], "run") && dd) {
		pipes = !isatty(0);
		int pp[2];
		if (pipe2(pp, O_CLOEXEC) < 0)
			return 1;
		pid_t pid = fork();
		if (pid == 0) {
			setsid();
			int null = open("/dev/null", O_RDWR | O_CLOEXEC);
			dup2(null, 0), dup2(null, 1);
			close(pp[0]);
			if (fork() == 0)
				_exit(serve(argv[2], pipes, logdir, argv + dd + 1, pp[1]));
			_exit(0);
		}
		close(pp[1]);
		waitpid(pid, NULL, 0);
		char c;
		if (read(pp[0], &c, 1) != 1)
			return 1;
		return do_attach(argv[2], dd - 3, argv + 3);
	}
usage:
	fprintf(stderr, "usage: ptydemo serve|run SOCK [opts] -- CMD... | attach SOCK [opts]\n");
	return 2;
}
