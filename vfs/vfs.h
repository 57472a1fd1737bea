/* vfs: the job's private /tmp. A FUSE (libfuse3 low-level) file system served by the
 * supervisor over a persistent store in the job's state directory, with epochs (immutable
 * snapshots) committed at every snapshot and checkpoint.
 *
 * The mount itself is made inside the job's mount namespace by vfs_mount_fuse(), called by the
 * job's init before it execs anything; the /dev/fuse descriptor is then passed to the
 * supervisor, which serves it with vfs_serve(). So a dead supervisor never leaves a dead mount
 * on the host: the mount goes away with the job's namespace. */
#ifndef VFS_H
#define VFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct vfs;
struct vfs_commit;

struct vfs_options {
	const char *store_dir; /* created 0700 when missing */
	uint64_t from_epoch;   /* 0: the newest state ("head"); else open over this epoch */
	bool keep_orphans;     /* keep unlinked-open files of that epoch (restore) */
	/* With from_epoch: the head it leaves behind, if no other ref names it, is kept as
	 * "snap-<epoch>" (vfs_kept_head), so that starting from a snapshot loses nothing. */
	bool keep_head;
	unsigned max_threads;  /* FUSE worker threads; 0 = default */
};

/** Open the store (recovering from a crash if needed) and load the chosen epoch.
 *  -EBADMSG corrupt store, -EPROTONOSUPPORT newer format, -ENOENT unknown epoch, -EBUSY store
 *  in use by another supervisor; vfs_last_error() has a one-line description. */
int vfs_open(const struct vfs_options *o, struct vfs **ret);

/** The epoch vfs_open kept as a snapshot for keep_head (0: none was needed). */
uint64_t vfs_kept_head(const struct vfs *v);

/** One line saying what failed in the last vfs_open or commit, naming the file. */
const char *vfs_last_error(void);

/** Inside the job's mount namespace (and user namespace, if any): open /dev/fuse and mount it on
 *  @target ("allow_other" only when @allow_other, which must be false in a user namespace).
 *  Returns the /dev/fuse fd in *ret_fd for the supervisor. */
int vfs_mount_fuse(const char *target, bool allow_other, int *ret_fd);

/** Serve the mounted /dev/fuse descriptor @fuse_fd (ownership passes to @v) from background
 *  threads; returns once the session runs. Installs a no-op handler for SIGRTMIN+5, which
 *  vfs_close sends to the session's own thread to stop it: the supervisor must not use it. */
int vfs_serve(struct vfs *v, int fuse_fd);

/** Commit, phase 1: syncfs(@mount_fd) (an fd on the job's /tmp, so the writeback cache and
 *  MAP_SHARED pages reach the store; -1 to skip), then seal and write the epoch durably but
 *  referenced by nothing. The vfs keeps answering requests throughout. */
int vfs_epoch_prepare(struct vfs *v, int mount_fd, struct vfs_commit **ret);
uint64_t vfs_commit_epoch(const struct vfs_commit *c);
/** Commit, phase 2: make the prepared epoch visible under @ref (and as the head). Frees @c. */
int vfs_epoch_finish(struct vfs *v, struct vfs_commit *c, const char *ref);
void vfs_epoch_abort(struct vfs *v, struct vfs_commit *c);
/** Both phases at once; the epoch id in *ret_epoch. */
int vfs_epoch_commit(struct vfs *v, int mount_fd, const char *ref, uint64_t *ret_epoch);

/* Where the time of the last commit went (vfs_epoch_prepare, then vfs_epoch_finish), for
 * diagnostics; times in nanoseconds. */
struct vfs_commit_stats {
	uint64_t epoch;		/* the epoch committed (0: no commit yet) */
	uint64_t syncfs_ns;	/* syncfs of the job's /tmp: the writeback cache drained */
	uint64_t seal_ns;	/* under the namespace lock: changed inodes collected, small
				 * files' in-memory data written to their layer files */
	uint64_t data_sync_ns;	/* layers written since the parent epoch made durable */
	uint64_t meta_write_ns; /* meta/E.ep written and made durable */
	uint64_t refs_write_ns; /* refs rewritten (vfs_epoch_finish); 0 until then */
	uint64_t inodes;	/* inodes recorded in the epoch */
	uint64_t layers;	/* layer files synced */
	uint64_t bytes;		/* data bytes first written in the epoch */
};

/** The breakdown of the last commit through @v (zeros before the first). */
void vfs_last_commit_stats(struct vfs *v, struct vfs_commit_stats *ret);

#define VFS_OPCODES 64

/* How WRITE data reached the store since vfs_serve, for diagnostics and tests: spliced from
 * /dev/fuse straight into layer files (large writes, see loop.c), or copied through memory; and how
 * many requests of each kind arrived (bench/vfs-serve.c prints them: round trips per file). */
struct vfs_io_stats {
	uint64_t write_bytes_spliced;
	uint64_t write_bytes_copied;
	/* Requests received, by FUSE opcode (linux/fuse.h; opcodes of 64 and up in [0]); a request
	 * spliced into a pipe is not looked at and counts as a WRITE (only large WRITEs are). */
	uint64_t requests[VFS_OPCODES];
};

void vfs_io_stats(struct vfs *v, struct vfs_io_stats *ret);

/* A named reference to a committed epoch: "head" (the newest state of the job's /tmp),
 * "snap-<epoch>" (ckptenv snapshot), "ckpt-<id>" (checkpoints). */
struct vfs_ref {
	char name[64];
	uint64_t epoch;
	int64_t created; /* unix seconds when the epoch was committed */
	uint64_t bytes;	 /* data bytes held by layers first written in this epoch */
};

/** List the refs of the store in @store_dir (running or not; refs is replaced atomically) into a
 *  malloc'd array. -ENOENT no store, -EBADMSG corrupt refs file. */
int vfs_refs_list(const char *store_dir, struct vfs_ref **ret, size_t *ret_n);

/** Check that epoch @epoch of the store in @store_dir and every epoch it builds on reads back
 *  whole (checksums), without opening the store. 0, or -EBADMSG (damaged; @err names the
 *  file), -ENOENT (a file missing) or -errno, with @err set. */
int vfs_epoch_check(const char *store_dir, uint64_t epoch, char *err, size_t errlen);

/** Drop a snapshot/checkpoint reference; the epoch's space is freed when nothing refers to it. */
int vfs_ref_drop(struct vfs *v, const char *ref);

/** Release the orphans kept by keep_orphans once the restorer has reopened them. */
void vfs_orphans_release(struct vfs *v);

/* The directory, below the mount root, of vfs_inode_path(). */
#define VFS_INODE_DIR "/.ckptenv/ino"

/** Path, below the mount root, that opens inode @ino (unlinked-open files included):
 *  "/.ckptenv/ino/<ino>". Lookup-only; not listed by readdir. */
int vfs_inode_path(uint64_t ino, char *buf, size_t len);

/** Stop serving (the session ends; the job's mount, if still there, then fails with ENOTCONN)
 *  and close the store. When @commit_head, first commit the live state as the new head so the
 *  next run finds /tmp as it was (no syncfs here: closed files are in, but dirty MAP_SHARED
 *  pages of a still-running job are not; commit with a mount fd first for those). NULL-safe. */
int vfs_close(struct vfs *v, bool commit_head);

/* The space a store sets aside for its last commit (a file in the store directory). */
#define VFS_STORE_RESERVE "reserve"

/** The serving threads' spin before they sleep, from CKPTENV_SPIN_US (@s; NULL or "": the
 *  default). Returns 0 and *ret_ns, or -EINVAL when @s is not a number in 0..999999. */
int vfs_spin_parse(const char *s, uint64_t *ret_ns);

#endif
