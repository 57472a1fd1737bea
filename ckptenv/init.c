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
#include "netproxy/netproxy.h"
#include "ptyproxy/ptyproxy.h"
#include "restore/restore.h"
#include "vfs/vfs.h"

#include <linux/sched.h>
#include <sys/syscall.h>

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
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
	umask(spec->umask & 0777);
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

/* Other fds on the job's terminal get the new slave (0, after the terminal setup). Files of
 * the job's /tmp that the image has open are reopened here and handed over: the vfs
 * mount is a new one, so its st_dev differs from the one recorded, which the restorer's own
 * identity check (dev, ino, size, mtime) would refuse. Checked here on ino and size only: the
 * epoch is the checkpoint's by construction, and the mtime the vfs stored for a page flushed
 * from the writeback cache at the commit's syncfs can differ from the one the kernel had cached
 * (seen in a user namespace). */
static int open_tmp_files(int dirfd, const char *id, struct restore_fd_map **ret_maps,
			  size_t *ret_n, struct restore_err *err)
{
	struct restore_image *img;
	int r = restore_image_load(dirfd, id, &img, err);
	if (r < 0)
		return r;
	/* Appended to the *ret_n maps there: at most one per fd of the image. */
	size_t n = *ret_n, max = n + img->nfds;
	struct restore_fd_map *maps = realloc(*ret_maps, (max + 1) * sizeof(*maps));
	if (!maps) {
		restore_image_free(img);
		snprintf(err->msg, sizeof(err->msg), "out of memory for %zu fds", img->nfds);
		return -ENOMEM;
	}
	*ret_maps = maps;
	for (size_t i = 0; i < img->nfds && r == 0; i++) {
		const struct restore_fd *f = &img->fds[i];
		/* More fds on the job's terminal: bash's 255, /dev/tty (less, getpass). */
		if (f->fd > 2 && f->kind == RESTORE_FD_TTY &&
		    (!strncmp(f->target, "/dev/pts/", 9) || !strcmp(f->target, "/dev/tty")) &&
		    n < max && isatty(0)) {
			/* A copy: the restorer must not take (or mark close-on-exec) fd 0 itself. */
			int fd = fcntl(0, F_DUPFD_CLOEXEC, 100);
			if (fd < 0) {
				r = -errno;
				snprintf(err->msg, sizeof(err->msg), "dup of the terminal: %m");
				break;
			}
			maps[n++] = (struct restore_fd_map){.target = f->fd, .fd = fd};
			continue;
		}
		if (f->kind != RESTORE_FD_REGULAR || strncmp(f->target, "/tmp/", 5))
			continue; /* 0, 1, 2 too: a job that redirected one there gets it back */
		/* A file unlinked while open (tmpfile(), Python's TemporaryFile): the epoch kept
		 * it as an orphan, which the vfs opens by its inode number. */
		char byino[80] = "/tmp";
		bool unlinked = strstr(f->target, " (deleted)") != NULL;
		if (unlinked && vfs_inode_path(f->ident.ino, byino + 4, sizeof(byino) - 4) < 0)
			continue; /* the restorer says why it cannot */
		if (f->st.present && f->st.dup_of >= 0)
			continue; /* the restorer dups the lower fd: they share the offset again */
		if (n == max) {
			snprintf(err->msg, sizeof(err->msg), "too many open files in /tmp (%zu)", n);
			r = -EMFILE;
			break;
		}
		int flags = (int)f->flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC);
		int fd = open(unlinked ? byino : f->target, flags | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0) {
			r = -errno;
			snprintf(err->msg, sizeof(err->msg), "cannot reopen fd %d (%s): %m", f->fd,
				 f->target);
		} else if (st.st_ino != f->ident.ino || (uint64_t)st.st_size != f->ident.size) {
			r = -ESTALE;
			snprintf(err->msg, sizeof(err->msg),
				 "%s is not as it was at checkpoint time (inode %llu, size %llu; "
				 "was %llu, %llu)",
				 f->target, (unsigned long long)st.st_ino,
				 (unsigned long long)st.st_size, (unsigned long long)f->ident.ino,
				 (unsigned long long)f->ident.size);
		} else if (lseek(fd, (off_t)f->pos, SEEK_SET) < 0 && errno != ESPIPE) {
			r = -errno;
			snprintf(err->msg, sizeof(err->msg), "cannot seek fd %d (%s): %m", f->fd,
				 f->target);
		}
		if (r < 0) {
			if (fd >= 0)
				close(fd);
			break;
		}
		maps[n++] = (struct restore_fd_map){.target = f->fd, .fd = fd};
	}
	restore_image_free(img);
	*ret_n = n;
	return r;
}

/* The restore variant of run_command: the job's stdio as it is (a terminal job gets its session
 * and controlling terminal first), then become the checkpointed process. */
__attribute__((noreturn)) static void restore_command(const struct launch_args *a, int dirfd,
						      int slave, const int *hand, int check_fd)
{
	sigset_t none;
	sigemptyset(&none);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
	int r = slave >= 0 ? ptyproxy_child_setup(slave) : (setpgid(0, 0) < 0 ? -errno : 0);
	if (r < 0) {
		fprintf(stderr, "ckptenv: cannot set up the restored job's stdio: %s\n",
			strerror(-r));
		_exit(127);
	}
	restore_nofile_raise(); /* before the /tmp files are opened too */
	struct restore_err err = {0};
	struct restore_fd_map *maps = malloc((a->nhand + 1) * sizeof(*maps));
	size_t nmaps = 0;
	if (!maps) {
		fprintf(stderr, "ckptenv: cannot restore the job: out of memory\n");
		_exit(127);
	}
	/* The job's proxied connections, made by the supervisor (sup-ckpt-net.c). */
	for (size_t i = 0; i < a->nhand; i++)
		maps[nmaps++] = (struct restore_fd_map){.target = a->hand_targets[i], .fd = hand[i]};
	r = open_tmp_files(dirfd, a->restore_id, &maps, &nmaps, &err);
	/* The page checksums are checked by the init as the blob fills the pages (check_pages):
	 * pages.img is read once. */
	struct restore_process_opts o = {
		.blob_err_fd = 2,
		.fds = maps,
		.nfds = nmaps,
		.check_fd = check_fd,
		.allow_paths = a->allow_changed,
		.nallow_paths = a->nallow_changed,
		.vfs_ino_dir = "/tmp" VFS_INODE_DIR};
	if (r == 0)
		r = restore_process(dirfd, a->restore_id, &o, &err);
	fprintf(stderr, "ckptenv: cannot restore the job: %s\n",
		err.msg[0] ? err.msg : strerror(-r));
	_exit(127);
}

/* The parent's side of the restorer's page check (restore_pages_check): a refusal is the
 * blob's last words, in the job's output, where `ckptenv restore` finds it. */
static int check_pages(const struct launch_args *a, int dirfd, pid_t cmd, int check_fd)
{
	struct restore_err err = {0};
	int r = restore_pages_check(dirfd, a->restore_id, cmd, check_fd, &err);
	if (r < 0 && r != -EBADMSG && r != -EPIPE)
		fprintf(stderr, "ckptenv: cannot check the restored pages: %s\n",
			err.msg[0] ? err.msg : strerror(-r));
	close(check_fd);
	return r;
}

/* fork() at pid @want of our pid namespace (clone3 with set_tid), so the restored process has
 * its old pid. */
static pid_t fork_at(pid_t want)
{
	pid_t tid = want;
	struct clone_args ca = {.exit_signal = SIGCHLD,
				.set_tid = (uint64_t)(uintptr_t)&tid,
				.set_tid_size = 1};
	return (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
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
static int make_pty(const struct winsize *ws, const struct termios *tio, int *ret_master,
		    int *ret_slave)
{
	if (mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		  "newinstance,ptmxmode=0666,mode=0620") < 0)
		return -errno;
	if (mount("/dev/pts/ptmx", "/dev/ptmx", NULL, MS_BIND, NULL) < 0)
		return -errno;
	int master, peer;
	int r = ptyproxy_pty_open("/dev/ptmx", tio, ws, &master, &peer);
	if (r < 0)
		return r;
	/* TIOCGPTPEER keeps O_CLOEXEC in the slave's file flags, and /proc/PID/fdinfo shows
	 * "flags" as the file's flags or'ed with the fd's close-on-exec bit: every fd on that
	 * file would look close-on-exec to the dump, and a restored job would lose its stdio
	 * at its next exec. open() leaves O_CLOEXEC out of the file flags: reopen the slave by
	 * its path in our own devpts instance (mounted above). */
	unsigned n;
	char path[32];
	int slave = -1;
	if (ioctl(master, TIOCGPTN, &n) == 0) {
		snprintf(path, sizeof(path), "/dev/pts/%u", n);
		slave = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	}
	if (slave < 0) {
		r = -errno;
		close(master);
		close(peer);
		return r;
	}
	close(peer);
	*ret_master = master;
	*ret_slave = slave;
	return 0;
}

/* Every job runs in a time namespace of its own, entered by the init right before it forks
 * the job's process (docs/checkpoint.md, "Clocks"): with zero offsets for `run`, and for a
 * restore with the offsets that make CLOCK_MONOTONIC and CLOCK_BOOTTIME go on from the values
 * the image recorded, computed here, as late as possible. A kernel without time namespaces
 * runs a job without one; it cannot restore one. */
static void enter_timens(const struct launch_args *a, int restore_dirfd)
{
	struct restore_err err = {0};
	uint64_t clocks[2];
	bool have = false;
	if (a->restore_id) {
		int r = restore_image_clocks(restore_dirfd, a->restore_id, &clocks[0], &clocks[1],
					     &err);
		if (r < 0 && r != -ENODATA) { /* -ENODATA: an older image, zero offsets */
			fprintf(stderr, "ckptenv: cannot restore the job: %s\n",
				err.msg[0] ? err.msg : strerror(-r));
			_exit(127);
		}
		have = r == 0;
	}
	int r = restore_timens_enter(have ? clocks : NULL, &err);
	if (r < 0 && a->restore_id) {
		fprintf(stderr, "ckptenv: cannot restore the job: %s\n",
			err.msg[0] ? err.msg : strerror(-r));
		_exit(127);
	}
}

void init_main(int sock, const struct launch_args *a, int restore_dirfd)
{
	const struct job_spec *spec = a->spec;
	const struct winsize *pty_ws = a->pty ? &a->ws : NULL;
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		fail(sock, errno, "cannot make the job's mounts private: %m");
	int fuse_fd = -1;
	int r = vfs_mount_fuse("/tmp", a->allow_other, &fuse_fd);
	if (r < 0 && access("/dev/fuse", R_OK | W_OK) < 0)
		fail(sock, -r,
		     "cannot mount the job's /tmp: cannot open /dev/fuse (%m); it must be readable "
		     "and writable by you (mode 0666, as distributions ship it): ask your "
		     "administrator");
	if (r < 0)
		fail(sock, -r, "cannot mount the job's /tmp: %s", strerror(-r));
	int fds[3] = {fuse_fd, -1, -1}, slave = -1;
	if (pty_ws && (r = make_pty(pty_ws, a->tio, &fds[2], &slave)) < 0)
		fail(sock, -r, "cannot create the job's terminal (devpts on /dev/pts): %s",
		     strerror(-r));
	/* The filter goes on the init itself, before it forks the command (or the restorer):
	 * filters are inherited by fork and kept across exec, so every process of the job is
	 * under it, a restored one too (its listener is the new supervisor's). The init makes no
	 * connect of its own. */
	fds[1] = netproxy_filter_install(NETPROXY_FILTER_NAMES | NETPROXY_FILTER_SOCKOPTS);
	if (fds[1] < 0)
		fail(sock, -fds[1],
		     "cannot install the job's network filter (seccomp user notification, "
		     "Linux 5.9 or later, not disabled by a container's own filter): %s",
		     strerror(-fds[1]));
	r = ck_send_fds(sock, "F", 1, fds, pty_ws ? 3 : 2);
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (r < 0)
		_exit(1);
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		fail(sock, errno, "cannot mount /proc for the job: %m");

	/* Wait until the supervisor serves /tmp (or gives up on us: EOF). */
	int *hand = malloc((a->nhand + 1) * sizeof(int));
	size_t nhand = 0;
	if (!hand)
		_exit(1);
	do { /* launch_go: LAUNCH_HAND_CHUNK fds a message, at least one message */
		char go = 0;
		size_t k = 0, want = CK_MIN(a->nhand - nhand, (size_t)LAUNCH_HAND_CHUNK);
		if (ck_recv_fds(sock, &go, 1, hand + nhand, want, &k) != 1 || go != 'G' ||
		    k != want)
			_exit(1);
		nhand += k;
	} while (nhand < a->nhand);

	enter_timens(a, restore_dirfd);
	/* check: the restorer's page check; execed: closed by the command's exec (O_CLOEXEC). */
	int check[2] = {-1, -1}, execed[2] = {-1, -1};
	if (a->restore_id ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, check) < 0
			  : pipe2(execed, O_CLOEXEC) < 0) {
		fprintf(stderr, "ckptenv: cannot %s the job: %s: %m\n",
			a->restore_id ? "restore" : "run", a->restore_id ? "socketpair" : "pipe");
		_exit(127);
	}
	pid_t cmd = a->restore_id && a->restore_pid > 1 ? fork_at(a->restore_pid) : fork();
	if (cmd < 0) {
		fprintf(stderr, "ckptenv: cannot %s %s: fork: %m\n",
			a->restore_id ? "restore" : "run", spec->argv[0]);
		_exit(127);
	}
	if (cmd == 0) {
		close(sock); /* the restorer does not exec: its copy would keep the report open */
		if (a->restore_id) {
			close(check[0]);
			restore_command(a, restore_dirfd, slave, hand, check[1]);
		}
		close(execed[0]);
	}
	for (size_t i = 0; i < nhand; i++)
		close(hand[i]); /* the restored job's copies alone keep them */
	if (cmd == 0)
		run_command(spec, slave);
	bool ok = true;
	if (a->restore_id) {
		close(check[1]);
		ok = check_pages(a, restore_dirfd, cmd, check[0]) == 0;
	} else {
		/* Until the exec, the child is a copy of us, not yet the job: a checkpoint must not
		 * take it. EOF: it exec'd (or died trying). */
		char c;
		close(execed[1]);
		while (read(execed[0], &c, 1) < 0 && errno == EINTR)
			;
		close(execed[0]);
	}
	/* The report (launch_running): 'R' when the command runs or the image's pages are all in
	 * (a failed restore, which ends us, sends nothing), then EOF. */
	if (ok)
		(void)!write(sock, "R", 1);
	close(sock);
	if (restore_dirfd >= 0)
		close(restore_dirfd);
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
