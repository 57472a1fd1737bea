/* Job launch (see launch.h).
 *
 * The init is created with clone() rather than unshare()+fork(): the supervisor must stay in the
 * host's namespaces, and CLONE_NEWUSER cannot be unshared by a multi-threaded process. Like
 * fork(), the child may only rely on what was consistent at the clone: the supervisor is
 * single-threaded until vfs_serve(), which runs after the clone. The child
 * first blocks on a pipe so the parent can write its uid/gid maps; PR_SET_PDEATHSIG ties the
 * init (and with it the whole pid namespace and the /tmp mount) to the supervisor's life. */
#include "launch.h"

#include "common/ck.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

struct child_ctx {
	const struct launch_args *a;
	int release_fd; /* read end: one byte once the maps are written */
	int sock;	/* init's end of the socketpair */
};

static void move_fd(int *fd, int to)
{
	if (*fd != to) {
		dup2(*fd, to);
		*fd = to;
	}
}

__attribute__((noreturn)) static void child_main(struct child_ctx *c)
{
	char b;

	/* Die with the supervisor, also if it died before this line: then the pipe reads EOF. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		_exit(1);
	if (read(c->release_fd, &b, 1) != 1)
		_exit(1);
	for (int i = 0; i < 3; i++)
		if (c->a->stdio[i] != i && dup2(c->a->stdio[i], i) < 0)
			_exit(1);
	/* Keep only stdio, the socket (as fd 3) and the checkpoint directory of a restore (as fd
	 * 4): nothing of the supervisor leaks into the job. */
	int rdir = -1;
	if (c->a->restore_dirfd >= 0 && (rdir = fcntl(c->a->restore_dirfd, F_DUPFD, 10)) < 0)
		_exit(1);
	int sock = c->sock;
	move_fd(&sock, 3);
	if (rdir >= 0)
		move_fd(&rdir, 4);
	syscall(SYS_close_range, rdir >= 0 ? 5u : 4u, ~0u, 0u);
	init_main(sock, c->a, rdir);
}

static int write_file(pid_t pid, const char *file, const char *text)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, text, strlen(text));
	if (n < 0)
		return -errno;
	return (size_t)n == strlen(text) ? 0 : -EIO;
}

static int write_maps(pid_t pid)
{
	char line[64];
	snprintf(line, sizeof(line), "%u %u 1\n", (unsigned)geteuid(), (unsigned)geteuid());
	int r = write_file(pid, "uid_map", line);
	if (r < 0)
		return r;
	r = write_file(pid, "setgroups", "deny");
	if (r < 0 && r != -ENOENT)
		return r;
	snprintf(line, sizeof(line), "%u %u 1\n", (unsigned)getegid(), (unsigned)getegid());
	return write_file(pid, "gid_map", line);
}

void launch_abort(struct launch_job *j)
{
	if (j->init_pid > 0) {
		kill(j->init_pid, SIGKILL);
		while (waitpid(j->init_pid, NULL, 0) < 0 && errno == EINTR)
			;
		j->init_pid = -1;
	}
	if (j->sock >= 0)
		close(j->sock);
	j->sock = -1;
	for (size_t i = 0; i < j->nhand; i++)
		close(j->hand[i]);
	free(j->hand);
	j->hand = NULL;
	j->nhand = 0;
}

/* A clone with a user namespace refused because the machine disables them for unprivileged
 * users: ENOSPC is the kernel's answer to user.max_user_namespaces = 0, EPERM Debian's to
 * kernel.unprivileged_userns_clone = 0; neither is about a disk or a permission. */
static bool userns_disabled(bool userns, int clone_errno)
{
	char max[32];
	return userns && (clone_errno == EPERM ||
			  (clone_errno == ENOSPC &&
			   (ck_read_small("/proc/sys/user/max_user_namespaces", max, sizeof(max)) < 0 ||
			    atoi(max) == 0)));
}

/* Wait for the init's report: 'F' with the fuse fd, the netproxy listener (and the pty master
 * when @want_pty), or 'E' le32 errno + text. */
static int read_report(int sock, bool want_pty, int *ret_fuse_fd, int *ret_net_fd, int *ret_pty_fd,
		       char *err, size_t errlen)
{
	uint8_t buf[512];
	int fds[3];
	size_t nfds = 0;
	ssize_t n = ck_recv_fds(sock, buf, sizeof(buf) - 1, fds, 3, &nfds);
	if (n <= 0) {
		snprintf(err, errlen, "the job's init died while setting up (%s)",
			 n < 0 ? strerror((int)-n) : "no report");
		return n < 0 ? (int)n : -ECHILD;
	}
	if (buf[0] == 'F' && nfds == (want_pty ? 3u : 2u)) {
		*ret_fuse_fd = fds[0];
		*ret_net_fd = fds[1];
		*ret_pty_fd = want_pty ? fds[2] : -1;
		return 0;
	}
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	if (buf[0] == 'E' && n >= 5) {
		int e = (int)ck_get_le32(buf + 1);
		buf[n] = 0;
		snprintf(err, errlen, "%s", (char *)buf + 5);
		return e > 0 ? -e : -EIO;
	}
	snprintf(err, errlen, "the job's init sent a bad report");
	return -EBADMSG;
}

int launch_job(const struct launch_args *a, struct launch_job *ret, int *ret_fuse_fd,
	       int *ret_pty_fd, char *err, size_t errlen)
{
	int sp[2], rel[2];
	_cleanup_free_ int *hand = malloc((a->nhand + 1) * sizeof(int));
	if (!hand) {
		snprintf(err, errlen, "out of memory for %zu connections to hand over", a->nhand);
		return -ENOMEM;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		snprintf(err, errlen, "socketpair: %m");
		return -errno;
	}
	if (pipe2(rel, O_CLOEXEC) < 0) {
		int r = -errno;
		snprintf(err, errlen, "pipe: %m");
		close(sp[0]);
		close(sp[1]);
		return r;
	}
	struct child_ctx c = {.a = a, .release_fd = rel[0], .sock = sp[1]};
	int flags = CLONE_NEWNS | CLONE_NEWPID | SIGCHLD;
	bool userns = geteuid() != 0;
	if (userns)
		flags |= CLONE_NEWUSER;

	/* A fork-like raw clone (no new stack): the child continues on a copy of ours, which
	 * sanitizers and unwinders understand, unlike a hand-made clone() stack. */
	pid_t pid = (pid_t)syscall(SYS_clone, (unsigned long)flags, NULL, NULL, NULL, NULL);
	if (pid == 0)
		child_main(&c);
	int clone_errno = errno;
	close(sp[1]);
	close(rel[0]);
	struct launch_job j = {.init_pid = pid, .sock = sp[0], .net_fd = -1};
	if (pid < 0 && userns_disabled(userns, clone_errno))
		snprintf(err, errlen,
			 "cannot create the job's user namespace (%s): unprivileged user namespaces "
			 "are disabled on this machine (sysctl user.max_user_namespaces or "
			 "kernel.unprivileged_userns_clone); ask your administrator, or run as root",
			 strerror(clone_errno));
	else if (pid < 0)
		snprintf(err, errlen, "cannot create the job's namespaces (clone%s): %s",
			 userns ? " with a user namespace" : "", strerror(clone_errno));
	if (pid < 0) {
		close(rel[1]);
		close(sp[0]);
		return -clone_errno;
	}
	int r = 0;
	if (userns && (r = write_maps(pid)) < 0)
		snprintf(err, errlen, "cannot write the job's uid/gid maps: %s", strerror(-r));
	if (r == 0 && write(rel[1], "g", 1) != 1) {
		r = -errno;
		snprintf(err, errlen, "cannot release the job's init: %m");
	}
	close(rel[1]);
	if (r == 0)
		r = read_report(j.sock, a->pty, ret_fuse_fd, &j.net_fd, ret_pty_fd, err, errlen);
	if (r < 0) {
		launch_abort(&j);
		return r;
	}
	j.hand = TAKE_PTR(hand);
	for (size_t i = 0; i < a->nhand; i++)
		j.hand[j.nhand++] = a->hand_fds[i];
	*ret = j;
	return 0;
}

int launch_go(struct launch_job *j)
{
	/* At least one message: 'G' is also the go itself. */
	int r = 0;
	size_t sent = 0;
	do {
		size_t k = CK_MIN(j->nhand - sent, (size_t)LAUNCH_HAND_CHUNK);
		r = ck_send_fds(j->sock, "G", 1, j->hand + sent, k);
		sent += k;
	} while (r >= 0 && sent < j->nhand);
	for (size_t i = 0; i < j->nhand; i++)
		close(j->hand[i]);
	free(j->hand);
	j->hand = NULL;
	j->nhand = 0;
	if (r < 0)
		launch_running(j);
	return r;
}

bool launch_running(struct launch_job *j)
{
	char c = 0;
	if (j->sock < 0)
		return false;
	bool ok = recv(j->sock, &c, 1, MSG_DONTWAIT) == 1 && c == 'R';
	close(j->sock);
	j->sock = -1;
	return ok;
}
