/* Private to the FUSE layer of vfs (vfs.c, fuse*.c, mount.c): the session state and the
 * low-level operation table. The store is reached only through store-internal.h. */
#ifndef VFS_INTERNAL_H
#define VFS_INTERNAL_H

#define FUSE_USE_VERSION 314 /* libfuse 3.14: fuse_loop_cfg_*, low-level API */

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "vfs/store-internal.h"
#include "vfs/vfs.h"

/* Cache timeouts (seconds): only the daemon changes the store, and every change goes through
 * this mount, so the kernel's dentries and attributes never go stale behind its back. */
#define VFS_TIMEOUT 86400.0

#define VFS_DEFAULT_THREADS 8

/* The largest WRITE (and READ): 240 pages. With the 80-byte header that is 241 pipe slots, so
 * a WRITE always fits in a worker's 1 MiB (256-slot) pipe (loop.c); a multiple of the chunk
 * size, so sequential writes stay chunk-aligned (no copy-up at their edges). */
#define VFS_MAX_WRITE (15u * VFS_CHUNK_SIZE)

/* Interrupts a worker's wait on /dev/fuse when the session stops (loop.c). */
#define VFS_WAKE_SIGNAL (SIGRTMIN + 5)

/* The hidden by-inode directory: /.ckptenv/ino/<decimal ino>. Synthetic inode numbers have the
 * high bit set, which the store never hands out. */
#define VFS_CTL_DIRNAME ".ckptenv"
#define VFS_CTL_INODIR	"ino"
#define VFS_CTL_FLAG	(1ull << 63)
#define VFS_CTL_ROOT	(VFS_CTL_FLAG | 1ull)
#define VFS_CTL_BYINO	(VFS_CTL_FLAG | 2ull)

struct vfs {
	struct vfs_store *store;
	struct fuse_session *se;    /* NULL until vfs_serve */
	struct vfs_loop *loop;	    /* loop.c; NULL when not serving */
	unsigned max_threads;
	struct timespec started; /* times of the synthetic directories */
	uint64_t kept_head;	 /* vfs_kept_head */
	pthread_mutex_t stats_lock;
	uint64_t last_syncfs_ns, last_syncfs_epoch; /* of the last vfs_epoch_prepare */
	/* Inodes with a file handle open for writing (count of handles each), under
	 * writers_lock: a commit fsyncs each, because syncfs on a FUSE mount starts their
	 * writeback but does not wait for the WRITE requests to reach us. */
	pthread_mutex_t writers_lock;
	struct vfs_writer {
		uint64_t ino;
		uint64_t count;
	} *writers;
	size_t n_writers, cap_writers;
	struct vfs_io_stats io; /* updated with __atomic adds */
};

/* Track a file handle open with write access on @ino (open/create), and its release. */
void vfs_writers_add(struct vfs *v, uint64_t ino);
void vfs_writers_del(struct vfs *v, uint64_t ino);

extern const struct fuse_lowlevel_ops vfs_fuse_ops;

/* Start the worker threads on v->se (installs the VFS_WAKE_SIGNAL handler); stop and join them
 * (NULL-safe when not started). */
int vfs_loop_start(struct vfs *v);
void vfs_loop_stop(struct vfs *v);

/* The thread-local one-line message behind vfs_last_error(). */
void vfs_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** flush.c: syncfs of the mount @mount_fd, then fsync of inodes @inos (by-inode path), in a
 *  child holding no /dev/fuse fd, so a supervisor killed meanwhile can still exit. 0 or -errno
 *  (vfs_set_error says what failed). */
int vfs_flush_mount(int mount_fd, const uint64_t *inos, size_t n);

#endif
