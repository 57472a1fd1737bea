/* ckvfs-serve: serve a vfs store on a mount point in a private mount namespace and run a
 * command there. A developer tool for profiling the vfs (bench/fs.sh measures through the real
 * `ckptenv run` instead).
 *
 *   ckvfs-serve [-t THREADS] [-m MOUNTPOINT] [-c] STORE_DIR -- CMD [ARG...]
 *
 * The child unshares its mount namespace, mounts the vfs on MOUNTPOINT (default /tmp) with
 * vfs_mount_fuse, passes the /dev/fuse fd up and execs CMD; this process serves the store
 * (vfs_open + vfs_serve) until CMD exits, then closes it (-c: committing the head first).
 * On exit it prints how many WRITE bytes were spliced and copied and how many requests of each
 * kind arrived (vfs_io_stats), and the CPU time of this process (the daemon: all its threads)
 * and of CMD.
 * The exit status is CMD's. The serving side's pid is printed on stderr as "serve pid N" so a
 * profiler (perf record -p, strace -p) can attach to it. */
#include <fcntl.h>
#include <linux/fuse.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/ck.h"
#include "vfs/vfs.h"

/* The opcodes a file-system workload sends, by name (linux/fuse.h); others print as numbers. */
#define OP(name) [FUSE_##name] = #name
static const char *const op_names[VFS_OPCODES] = {
	OP(LOOKUP),    OP(FORGET),	 OP(GETATTR),	OP(SETATTR),	 OP(READLINK),
	OP(SYMLINK),   OP(MKNOD),	 OP(MKDIR),	OP(UNLINK),	 OP(RMDIR),
	OP(RENAME),    OP(LINK),	 OP(OPEN),	OP(READ),	 OP(WRITE),
	OP(STATFS),    OP(RELEASE),	 OP(FSYNC),	OP(GETXATTR),	 OP(FLUSH),
	OP(INIT),      OP(OPENDIR),	 OP(READDIR),	OP(RELEASEDIR),	 OP(CREATE),
	OP(INTERRUPT), OP(BATCH_FORGET), OP(FALLOCATE), OP(READDIRPLUS), OP(RENAME2),
	OP(LSEEK),     OP(SYNCFS),
};
#undef OP

static double cpu_ms(const struct rusage *ru)
{
	return (double)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1e3 +
	       (double)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1e3;
}

static void print_stats(struct vfs *v)
{
	struct vfs_io_stats io;
	vfs_io_stats(v, &io);
	fprintf(stderr, "serve: write bytes spliced %llu, copied %llu\nserve: requests",
		(unsigned long long)io.write_bytes_spliced,
		(unsigned long long)io.write_bytes_copied);
	for (unsigned i = 0; i < VFS_OPCODES; i++) {
		if (!io.requests[i])
			continue;
		if (op_names[i])
			fprintf(stderr, " %s %llu", op_names[i],
				(unsigned long long)io.requests[i]);
		else
			fprintf(stderr, " op%u %llu", i, (unsigned long long)io.requests[i]);
	}
	struct rusage self, cmd;
	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &cmd);
	fprintf(stderr, "\nserve: cpu ms daemon %.1f, command %.1f\n", cpu_ms(&self), cpu_ms(&cmd));
}

static void usage(void)
{
	fprintf(stderr,
		"usage: ckvfs-serve [-t THREADS] [-m MOUNTPOINT] [-c] STORE_DIR -- CMD [ARG...]\n");
	exit(2);
}

/* The job side: own mount namespace, mount, hand the fd up, wait for "serving", exec. */
static void child(int sock, const char *mnt, char **cmd)
{
	int fd = -1, r;
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		perror("ckvfs-serve: mount namespace");
		_exit(125);
	}
	r = vfs_mount_fuse(mnt, true, &fd);
	if (r < 0) {
		fprintf(stderr, "ckvfs-serve: mount on %s: %s\n", mnt, strerror(-r));
		_exit(125);
	}
	char ok = 'M';
	if (ck_send_fds(sock, &ok, 1, &fd, 1) < 0)
		_exit(125);
	close(fd);
	size_t nfds = 0;
	if (ck_recv_fds(sock, &ok, 1, NULL, 0, &nfds) != 1 || ok != 'S')
		_exit(125);
	close(sock);
	if (strcmp(mnt, "/tmp") == 0 && chdir("/tmp") < 0)
		_exit(125);
	execvp(cmd[0], cmd);
	fprintf(stderr, "ckvfs-serve: exec %s: %s\n", cmd[0], strerror(errno));
	_exit(127);
}

int main(int argc, char **argv)
{
	struct vfs_options o = {0};
	const char *mnt = "/tmp";
	bool commit = false;
	int opt;
	while ((opt = getopt(argc, argv, "+t:m:c")) != -1) {
		switch (opt) {
		case 't':
			o.max_threads = (unsigned)atoi(optarg);
			break;
		case 'm':
			mnt = optarg;
			break;
		case 'c':
			commit = true;
			break;
		default:
			usage();
		}
	}
	if (optind + 2 > argc || strcmp(argv[optind + 1], "--") != 0 || optind + 2 >= argc)
		usage();
	o.store_dir = argv[optind];
	char **cmd = argv + optind + 2;

	int sp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		perror("socketpair");
		return 125;
	}
	struct vfs *v = NULL;
	int r = vfs_open(&o, &v);
	if (r < 0) {
		fprintf(stderr, "ckvfs-serve: %s\n", vfs_last_error());
		return 125;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 125;
	}
	if (pid == 0) {
		close(sp[0]);
		child(sp[1], mnt, cmd);
	}
	close(sp[1]);
	fprintf(stderr, "serve pid %d\n", (int)getpid());

	char m = 0;
	int fd = -1;
	size_t nfds = 0;
	int status = 0;
	if (ck_recv_fds(sp[0], &m, 1, &fd, 1, &nfds) != 1 || nfds != 1) {
		waitpid(pid, &status, 0);
		vfs_close(v, false);
		return 125;
	}
	r = vfs_serve(v, fd);
	if (r < 0) {
		fprintf(stderr, "ckvfs-serve: serve: %s\n", strerror(-r));
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		vfs_close(v, false);
		return 125;
	}
	m = 'S';
	if (ck_send_fds(sp[0], &m, 1, NULL, 0) < 0)
		kill(pid, SIGKILL);
	close(sp[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	print_stats(v);
	r = vfs_close(v, commit);
	if (r < 0)
		fprintf(stderr, "ckvfs-serve: close: %s\n", vfs_last_error());
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
