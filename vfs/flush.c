/* Flushing the job's /tmp before a commit: syncfs of the mount, then fsync of every file open for
 * writing through the by-inode path (on this kernel syncfs of a FUSE mount starts writeback of
 * dirty pages — writeback cache, MAP_SHARED — but returns before the WRITE requests are
 * answered, while fsync waits for them).
 *
 * Both wait, uninterruptibly, for WRITE requests that our own worker threads answer. If the
 * supervisor is killed meanwhile (kill -9 at any instant is a supported event), its workers die
 * at once and the waiting thread never wakes: the process can neither finish nor exit, so its
 * /dev/fuse fd stays open and the connection is never aborted — a process stuck in D state
 * forever, with the job's /tmp hung behind it. So the waits happen in a short-lived child that
 * holds no /dev/fuse fd: when the supervisor dies, its fds close, the kernel aborts the
 * connection, and the child's wait ends with an error. The parent's wait for the child is
 * killable. The child is a clone without an exit signal, so the supervisor's SIGCHLD reaper
 * (waitpid(-1)) never takes it; it is reaped here with __WCLONE. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/ck.h"
#include "vfs/vfs-internal.h"

enum flush_stage { FLUSH_OK, FLUSH_SYNCFS, FLUSH_REOPEN, FLUSH_FSYNC };

struct flush_report {
	int32_t stage; /* enum flush_stage */
	int32_t err;   /* positive errno */
	uint64_t ino;
};

/* In the child: only syscalls, then _exit (the parent's locks may be held by its threads). */
static void flush_child(int mount_fd, int out, const uint64_t *inos, char (*paths)[64], size_t n)
{
	ck_close_all_but(0, (const int[]){mount_fd, out}, 2);
	struct flush_report rep = {FLUSH_OK, 0, 0};
	if (syncfs(mount_fd) < 0) {
		rep = (struct flush_report){FLUSH_SYNCFS, errno, 0};
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		int fd = openat(mount_fd, paths[i] + 1, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT || errno == ESTALE)
				continue; /* closed and deleted meanwhile: nothing left to flush */
			rep = (struct flush_report){FLUSH_REOPEN, errno, inos[i]};
			goto out;
		}
		if (fsync(fd) < 0) {
			rep = (struct flush_report){FLUSH_FSYNC, errno, inos[i]};
			goto out;
		}
		close(fd);
	}
out:
	(void)!write(out, &rep, sizeof(rep));
	_exit(0);
}

int vfs_flush_mount(int mount_fd, const uint64_t *inos, size_t n)
{
	_cleanup_free_ char(*paths)[64] = n ? calloc(n, 64) : NULL;
	if (n && !paths)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int r = vfs_inode_path(inos[i], paths[i], 64);
		if (r < 0)
			return r;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	/* A fork without an exit signal: the child runs on a copy of this stack, like fork(). */
	pid_t pid = (pid_t)syscall(SYS_clone, 0ul, NULL, NULL, NULL, 0ul);
	if (pid == 0)
		flush_child(mount_fd, p[1], inos, paths, n);
	int e = errno;
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		vfs_set_error("cannot start the flush of the job's /tmp: %s", strerror(e));
		return -e;
	}
	struct flush_report rep = {FLUSH_SYNCFS, EIO, 0};
	ssize_t got = ck_read_full(p[0], &rep, sizeof(rep));
	close(p[0]);
	while (waitpid(pid, NULL, __WCLONE) < 0 && errno == EINTR)
		;
	if (got != (ssize_t)sizeof(rep))
		rep = (struct flush_report){FLUSH_SYNCFS, EIO, 0}; /* the child died: a failed flush */
	switch (rep.stage) {
	case FLUSH_OK:
		return 0;
	case FLUSH_SYNCFS:
		vfs_set_error("syncfs of the job's /tmp: %s", strerror(rep.err));
		break;
	case FLUSH_REOPEN:
		vfs_set_error("reopening inode %llu to flush it: %s", (unsigned long long)rep.ino,
			      strerror(rep.err));
		break;
	default:
		vfs_set_error("fsync of inode %llu: %s", (unsigned long long)rep.ino,
			      strerror(rep.err));
		break;
	}
	return rep.err > 0 ? -rep.err : -EIO;
}
