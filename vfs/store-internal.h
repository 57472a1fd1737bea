/* The persistent store behind the job's /tmp: an in-memory inode table over chunked,
 * copy-on-write data layers on the host's disk, with immutable, checksummed epochs.
 *
 * On disk (store/):
 *   FORMAT          magic, version, chunk size                     (atomic write)
 *   LOCK            flock'd by the one process that has the store open
 *   refs            name -> epoch id table (the commit point)      (atomic write)
 *   meta/E.ep       epoch E: parent id + the inodes changed since the parent (immutable)
 *   data/INO.L      layer L of inode INO: a sparse file holding the chunks written while
 *                   epoch L was live; a chunk map (chunk index -> layer id) says which layer
 *                   holds each chunk, 0 meaning a hole
 * Live (uncommitted) changes go to layers named after the live epoch id, which no committed
 * epoch names yet; a crash discards them at the next open. Committed epochs are never written
 * again: a write to a chunk held by an older layer copies that chunk (at most one chunk) into
 * the live layer first, so commit cost is the changed chunks and inodes, not the size of /tmp.
 *
 * Thread safety: every function may be called from any FUSE worker thread concurrently.
 * Return values: >= 0 on success, -errno on failure (the errno a FUSE reply should carry). */
#ifndef VFS_STORE_INTERNAL_H
#define VFS_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>

#include "vfs/vfs.h"

#define VFS_ROOT_INO	 1ull  /* == FUSE_ROOT_ID */
#define VFS_NAME_MAX	 255
#define VFS_SYMLINK_MAX	 4095
#define VFS_CHUNK_SIZE	 (64u * 1024u)

struct vfs_store;
struct vfs_store_commit;

struct vfs_attr {
	uint64_t ino;
	uint64_t generation;
	uint32_t mode; /* type and permission bits, as st_mode */
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint64_t size;
	uint64_t blocks; /* 512-byte units actually held by layers */
	uint64_t rdev;
	struct timespec atime;
	struct timespec mtime;
	struct timespec ctime;
};

/* Bits of @to_set in vfs_store_setattr; values deliberately equal FUSE_SET_ATTR_*. */
#define VFS_SET_MODE	  (1u << 0)
#define VFS_SET_UID	  (1u << 1)
#define VFS_SET_GID	  (1u << 2)
#define VFS_SET_SIZE	  (1u << 3)
#define VFS_SET_ATIME	  (1u << 4)
#define VFS_SET_MTIME	  (1u << 5)
#define VFS_SET_ATIME_NOW (1u << 7)
#define VFS_SET_MTIME_NOW (1u << 8)
#define VFS_SET_CTIME	  (1u << 10)

/* Flags of vfs_store_open. */
#define VFS_STORE_CREATE	(1u << 0) /* create an empty store when none exists */
#define VFS_STORE_KEEP_ORPHANS	(1u << 1) /* keep unlinked-open inodes of the loaded epoch,
					   * pinned until vfs_store_orphans_release() */

/** Open (and with VFS_STORE_CREATE, create) the store in directory @dir (made 0700; files 0600).
 *  Takes an exclusive lock: -EBUSY if another process has it open. Loads epoch @at_epoch, or the
 *  epoch the "head" ref names when @at_epoch is 0 (an empty root when a new store has no head),
 *  and starts a fresh live epoch over it; nothing is deleted, so the same epoch can be opened
 *  again later. Discards leftovers of a crash (uncommitted layers, temporary files).
 *  Errors: -ENOENT no store and no CREATE, or @at_epoch unknown; -EBADMSG a corrupt or
 *  truncated file (vfs_store_last_error names it); -EPROTONOSUPPORT a store of a newer format. */
int vfs_store_open(const char *dir, unsigned flags, uint64_t at_epoch, struct vfs_store **ret);

/** Close without committing: what was written since the last commit is not kept. NULL-safe. */
void vfs_store_close(struct vfs_store *s);
/** The commits from now on are the last before the close: they may use the space the store
 *  set aside for that (on ENOSPC). */
void vfs_store_last_commit(struct vfs_store *s);

/** A one-line description of the last open/commit failure (which file, what is wrong), valid
 *  until the next call on @s; for vfs_store_open failures use vfs_store_open_error(). */
const char *vfs_store_last_error(struct vfs_store *s);
const char *vfs_store_open_error(void); /* thread-local, set by a failed vfs_store_open */

/** The id of the epoch the live state was opened over (0 for a fresh store). */
uint64_t vfs_store_base_epoch(struct vfs_store *s);

/* ---- namespace ---- */
int vfs_store_lookup(struct vfs_store *s, uint64_t parent, const char *name, struct vfs_attr *ret);
int vfs_store_getattr(struct vfs_store *s, uint64_t ino, struct vfs_attr *ret);
/** Apply the fields of @a selected by @to_set (VFS_SET_*); a size change truncates or extends
 *  (the new range reads as zeros). ctime is updated as POSIX requires. */
int vfs_store_setattr(struct vfs_store *s, uint64_t ino, const struct vfs_attr *a, unsigned to_set,
		      struct vfs_attr *ret);
/** Create @name in directory @parent: a regular file, directory, FIFO, socket, device
 *  (S_IFMT of @mode) or symlink (S_IFLNK, with @symlink_target). -EEXIST if the name exists
 *  (atomic: this is what O_EXCL relies on), -ENOTDIR, -ENAMETOOLONG. Owner @uid/@gid. */
int vfs_store_mknod(struct vfs_store *s, uint64_t parent, const char *name, uint32_t mode,
		    uint64_t rdev, uint32_t uid, uint32_t gid, const char *symlink_target,
		    struct vfs_attr *ret);
/** Hard link @ino as @newparent/@newname (-EPERM for directories). */
int vfs_store_link(struct vfs_store *s, uint64_t ino, uint64_t newparent, const char *newname,
		   struct vfs_attr *ret);
/** Remove a non-directory entry. The inode lives on while referenced (vfs_store_ref). */
int vfs_store_unlink(struct vfs_store *s, uint64_t parent, const char *name);
/** Remove an empty directory (-ENOTEMPTY otherwise). */
int vfs_store_rmdir(struct vfs_store *s, uint64_t parent, const char *name);
/** rename(2) with renameat2 @flags RENAME_NOREPLACE / RENAME_EXCHANGE; -EINVAL for a directory
 *  moved below itself; a replaced target is unlinked as by vfs_store_unlink. */
int vfs_store_rename(struct vfs_store *s, uint64_t parent, const char *name, uint64_t newparent,
		     const char *newname, unsigned flags);
/** Copy the symlink target (NUL-terminated) into @buf; -ERANGE if it does not fit. */
int vfs_store_readlink(struct vfs_store *s, uint64_t ino, char *buf, size_t len);

/** Called for each entry at or after position @cookie; return non-zero to stop (the entry is
 *  then not consumed). @next is the cookie to resume after this entry. "." and ".." included. */
typedef int (*vfs_store_dirent_fn)(void *ctx, const char *name, const struct vfs_attr *attr,
				   uint64_t next);
/** List directory @ino from position @cookie (0 = start). Cookies stay valid while the
 *  directory changes (telldir/seekdir). */
int vfs_store_readdir(struct vfs_store *s, uint64_t ino, uint64_t cookie, vfs_store_dirent_fn fn,
		      void *ctx);
int vfs_store_statfs(struct vfs_store *s, struct statvfs *ret);

/* ---- data of regular files ---- */
/** Read up to @len bytes at @off; returns bytes read (short only at end of file). */
ssize_t vfs_store_read(struct vfs_store *s, uint64_t ino, void *buf, size_t len, off_t off);
/* vfs_store_write flags: the write is the kernel's writeback of its page cache (FUSE's
 * writepage flag). The kernel then owns mtime and ctime (it set them at the write(2) or the
 * page fault) and sends them itself (SETATTR), possibly before this request is served:
 * setting them to now here would move them past what the job saw. */
#define VFS_STORE_KERNEL_TIMES 1u
/** Write @len bytes at @off, extending the file as needed; returns @len or -errno. */
ssize_t vfs_store_write(struct vfs_store *s, uint64_t ino, const void *buf, size_t len, off_t off,
			unsigned flags);
/** vfs_store_write of @len bytes waiting in pipe @pipe_fd, moved with splice(2) when the write
 *  needs no copy-up and is not for memory. Returns @len when done so; 0 when this write must
 *  take vfs_store_write instead (nothing was read from the pipe); -errno on failure (the pipe
 *  may then hold part of the data: the caller drains it). */
ssize_t vfs_store_write_pipe(struct vfs_store *s, uint64_t ino, int pipe_fd, size_t len, off_t off,
			     unsigned flags);
/** fallocate(2) modes 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE;
 *  -EOPNOTSUPP for others. */
int vfs_store_fallocate(struct vfs_store *s, uint64_t ino, int mode, off_t off, off_t len);
/** SEEK_DATA / SEEK_HOLE at chunk granularity (a hole is a chunk no layer holds); -ENXIO past
 *  the end as lseek(2). */
int vfs_store_lseek(struct vfs_store *s, uint64_t ino, off_t off, int whence, off_t *ret);

/* ---- references: kernel lookups and open files keep an unlinked inode alive ---- */
void vfs_store_ref(struct vfs_store *s, uint64_t ino, uint64_t n);
void vfs_store_unref(struct vfs_store *s, uint64_t ino, uint64_t n);

/* Look up or create and take @nref references (as vfs_store_ref) in the same step, under the
 * store's locks: a separate vfs_store_ref after the call would leave a window in which a
 * concurrent unlink plus FORGET could free the inode first. On failure no reference is taken.
 * Give them back with vfs_store_unref (e.g. when the FUSE reply fails). */
int vfs_store_lookup_ref(struct vfs_store *s, uint64_t parent, const char *name, uint64_t nref,
			 struct vfs_attr *ret);
int vfs_store_getattr_ref(struct vfs_store *s, uint64_t ino, uint64_t nref, struct vfs_attr *ret);
/* Flag of vfs_store_mknod_ref: in a set-group-ID directory the new node takes the directory's
 * group, and a new directory the S_ISGID bit (decided under the lock, with the parent's mode). */
#define VFS_MKNOD_INHERIT_SGID (1u << 0)
int vfs_store_mknod_ref(struct vfs_store *s, uint64_t parent, const char *name, uint32_t mode,
			uint64_t rdev, uint32_t uid, uint32_t gid, const char *symlink_target,
			unsigned flags, uint64_t nref, struct vfs_attr *ret);
int vfs_store_link_ref(struct vfs_store *s, uint64_t ino, uint64_t newparent, const char *newname,
		       uint64_t nref, struct vfs_attr *ret);
/** vfs_store_readdir that, with @take_refs, takes one reference on the inode of every entry @fn
 *  consumed (returned 0 for), "." and ".." excepted: what readdirplus hands the kernel. */
int vfs_store_readdir_ref(struct vfs_store *s, uint64_t ino, uint64_t cookie, bool take_refs,
			  vfs_store_dirent_fn fn, void *ctx);
/** Drop the pins VFS_STORE_KEEP_ORPHANS put on loaded orphans (after a restore reopened them). */
void vfs_store_orphans_release(struct vfs_store *s);

/* ---- epochs ---- */
/** Seal the live state as a new epoch and write it durably (data layers fsynced, meta/E.ep
 *  written and fsynced), but referenced by nothing yet: a crash now leaves it to be collected.
 *  The live state goes on over the sealed epoch at once; writes after this call are not in it.
 *  Cost grows with what changed since the previous commit. */
int vfs_store_commit_prepare(struct vfs_store *s, struct vfs_store_commit **ret);
uint64_t vfs_store_commit_epoch(const struct vfs_store_commit *c);
/** Make the prepared epoch visible: one atomic rewrite of refs sets @ref (may be NULL) and
 *  "head" to it. Frees @c whatever the result. */
int vfs_store_commit_finish(struct vfs_store *s, struct vfs_store_commit *c, const char *ref);
/** Give up a prepared commit (its epoch is collected later). NULL-safe. */
void vfs_store_commit_abort(struct vfs_store *s, struct vfs_store_commit *c);

/** The breakdown of the last commit of @s (seal, data sync, meta write, refs write; syncfs_ns
 *  is left 0: that is the FUSE layer's). */
void vfs_store_last_commit_stats(struct vfs_store *s, struct vfs_commit_stats *ret);

/** Set or move a ref (name: [A-Za-z0-9._-]{1,63}) to a committed epoch; atomic. */
int vfs_store_ref_set(struct vfs_store *s, const char *name, uint64_t epoch);
/** The epoch "head" names in *ret_head (0: none); 1 when that tree is also a snapshot's (a
 *  "snap-" ref names the head, or an ancestor with only empty epochs between), else 0. */
int vfs_store_head_kept_elsewhere(struct vfs_store *s, uint64_t *ret_head);
/** Remove a ref; epochs nothing refers to any more are collected and their space freed. */
int vfs_store_ref_drop(struct vfs_store *s, const char *name);
/** List refs of an open store into a malloc'd array. */
int vfs_store_refs(struct vfs_store *s, struct vfs_ref **ret, size_t *ret_n);
/** List the refs of a store directory without opening it (no lock taken: refs is replaced
 *  atomically). Same checks as open: -EBADMSG for a corrupt refs file. */
int vfs_store_refs_read(const char *dir, struct vfs_ref **ret, size_t *ret_n);
int vfs_store_epoch_check(const char *dir, uint64_t epoch, char *err, size_t errlen);

/** Collect unreferenced epochs and layers now (also done by open). */
int vfs_store_gc(struct vfs_store *s);

#endif
