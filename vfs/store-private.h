/* Internal declarations shared by vfs/store*.c. Not for the FUSE layer: it uses store-internal.h.
 *
 * Locking (outermost first):
 *   s->meta_lock   refs table, epoch index, pending commits, GC, writes of refs and meta/
 *   s->ns          rwlock. Namespace ops (the table, directories, nlink) take it for writing.
 *                  Data and attribute ops take it for reading plus the inode's own mutex.
 *   n->lock        per inode: data, chunk map, layer fds, attributes.
 *   s->dirty_lock  the dirty/deleted lists (appended to under the read lock).
 *   s->fd_lock     the open layer fds' count and list (store-data.c); it only ever try-locks
 *                  another inode's mutex (to close that inode's fds), never waits for one.
 * An inode's fields may be read or written with the write lock, or with the read lock plus the
 * inode's mutex. */
#ifndef VFS_STORE_PRIVATE_H
#define VFS_STORE_PRIVATE_H

#include <pthread.h>

#include "common/ck.h"
#include "vfs/store-internal.h"

#define STORE_FORMAT_VERSION 1u
#define STORE_MAX_FILE	     (1ull << 42) /* 4 TiB: bounds the chunk map */
#define STORE_MAX_META	     (1u << 30)	  /* bound of one meta/E.ep file */
#define STORE_MAX_REFS	     4096u
#define STORE_ERR_MAX	     256
#define CHUNK_BLOCKS	     (VFS_CHUNK_SIZE / 512u)

/* Chunk map: chunk index -> layer id (0 = hole), two-level so sparse files stay small. */
#define CMAP_PAGE_SHIFT 9u
#define CMAP_PAGE	(1u << CMAP_PAGE_SHIFT)
struct cmap {
	uint64_t **pages;
	size_t npages;
	uint64_t held; /* chunks with a layer */
};

struct store_dirent {
	struct store_dirent *hnext; /* name hash chain */
	uint64_t ino;
	uint64_t cookie; /* readdir position; >= 2, unique and monotonic per directory */
	size_t namelen;
	char name[];
};

struct store_dir {
	struct store_dirent **hash; /* by name */
	size_t nbuckets;
	struct store_dirent **order; /* sorted by cookie */
	size_t n, cap;
	uint64_t next_cookie;
	uint64_t parent; /* ino of ".." */
};

struct layer_fd {
	uint64_t layer;
	int fd;
};

#define INODE_LAYER_FDS 8

/* Small-file data kept in memory (see store-data.c): files whose data fits in the first
 * INLINE_MAX bytes and that have no layer file yet, within STORE_INLINE_BUDGET in all. */
#define INLINE_MAX	    VFS_CHUNK_SIZE
/* Buffers grow in powers of two from INLINE_MIN: a 4 KiB step gave every small file a page of
 * its own, first touched (a page fault, the page zeroed) at its first write. */
#define INLINE_MIN	    64u
#define STORE_INLINE_BUDGET (64ull << 20)

/* Bytes written to a live layer after which its writeback is started (store-data.c). */
#ifndef STORE_WB_KICK
#define STORE_WB_KICK (4ull << 20)
#endif

struct store_inode {
	struct store_inode *hnext;
	pthread_mutex_t lock;
	uint64_t ino, generation;
	uint32_t mode, nlink, uid, gid;
	uint64_t size, rdev;
	struct timespec atime, mtime, ctime;
	uint64_t refs;	 /* vfs_store_ref count */
	bool pinned;	 /* orphan kept by VFS_STORE_KEEP_ORPHANS */
	bool dirty;	 /* in s->dirty since the last seal */
	bool in_epoch;	 /* recorded in the base epoch chain: deleting it must be recorded */
	struct cmap map; /* regular files */
	struct layer_fd fds[INODE_LAYER_FDS];
	unsigned nfds;
	/* In s->fd_list while nfds > 0 (under s->fd_lock); fd_used: an fd was used since the
	 * list's last pass over it (under n->lock), so it is passed over once more. */
	struct store_inode *fd_prev, *fd_next;
	bool fd_listed, fd_used;
	uint64_t live_file; /* live epoch id whose layer file this inode has created (0: none) */
	uint64_t wb_layer, wb_lo, wb_hi, wb_bytes; /* written to layer wb_layer in [lo, hi)
						     * since the last writeback kick */
	uint8_t *inl;	    /* chunk 0 of the live layer, not yet in its file (else NULL) */
	uint32_t inl_cap;   /* bytes of inl; the rest of chunk 0 reads as zeros */
	struct store_dir *dir; /* directories */
	char *target;	       /* symlinks */
};

struct u64vec {
	uint64_t *v;
	size_t n, cap;
};

struct store_refent {
	char name[64];
	uint64_t epoch;
	int64_t created;
	uint64_t bytes;
};

struct store_refs {
	uint64_t next_epoch;
	struct store_refent *v;
	size_t n;
};

struct epoch_info {
	uint64_t id, parent;
	int64_t created;
	uint64_t bytes;
};

struct vfs_store {
	int dirfd, metafd, datafd, lockfd;
	char *path; /* for messages */
	pthread_mutex_t meta_lock;
	pthread_rwlock_t ns;
	pthread_mutex_t dirty_lock;

	/* inode table */
	struct store_inode **tab;
	size_t nbuckets, ninodes;
	uint64_t next_ino;

	uint64_t live; /* id of the live epoch: the layer new writes go to */

	/* Open layer fds, all inodes together: at most fd_cap, the least recently used closed
	 * first (store-data.c). Each inode the kernel still caches (a tar of 20k files) kept its
	 * fds until the kernel forgot it, and a job ran the supervisor out of fds. */
	pthread_mutex_t fd_lock;
	struct store_inode *fd_head, *fd_tail; /* oldest first */
	unsigned fd_open, fd_cap;
	uint64_t inline_bytes; /* sum of inl_cap (atomic) */
	uint64_t base; /* parent of the live epoch (0: none) */
	struct u64vec dirty, deleted;

	/* under meta_lock */
	struct store_refs refs;
	struct epoch_info *epochs;
	size_t nepochs;
	struct u64vec damaged; /* meta/E.ep files that fail their check: not indexed, no GC */
	bool use_reserve;      /* the last commit (vfs_close) may give up STORE_RESERVE */
	struct u64vec pending; /* prepared, not finished */
	struct vfs_commit_stats stats; /* of the last commit */

	char err[STORE_ERR_MAX];
};

struct vfs_store_commit {
	uint64_t epoch;
	uint64_t created, bytes;
};

/* store.c */
void store_set_error(struct vfs_store *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int store_refs_write(struct vfs_store *s, const struct store_refs *r);
/* ck_write_file_atomic of a store file (refs, meta/E.ep); on ENOSPC in the last commit the
 * store's reserve is given up and the write tried once more. */
int store_meta_write(struct vfs_store *s, int dirfd, const char *name, const void *p, size_t len);
/* After a write failed with @r: true when it is worth one more try, the reserve now given up
 * (ENOSPC in the last commit, a reserve there). */
bool store_reserve_release(struct vfs_store *s, int r);
/* Append to the store's error " (epoch @at builds on it)" when the damaged epoch @id is not
 * @at itself. */
void store_error_builds_on(struct vfs_store *s, uint64_t id, uint64_t at);
/* Space set aside (STORE_RESERVE): a full disk at the end of a job must not cost the commit of
 * what /tmp holds, which needs a few KiB to MiBs of metadata and small files' data. Only that
 * commit uses it: a checkpoint or snapshot that fails for space is reported to a user who can
 * free some, and an open (the next run) claims it again when there is room. */
#define STORE_RESERVE	   VFS_STORE_RESERVE
#define STORE_RESERVE_SIZE (8u << 20)
int store_refs_parse(const uint8_t *p, size_t len, struct store_refs *ret, char *err,
		     size_t errlen);
void store_refs_free(struct store_refs *r);
/* The epoch ref @name names in @r, 0 if none. */
uint64_t store_refs_epoch(const struct store_refs *r, const char *name);
bool store_ref_name_valid(const char *name);
int u64vec_push(struct u64vec *v, uint64_t x);
bool u64vec_has(const struct u64vec *v, uint64_t x);
void u64vec_remove(struct u64vec *v, uint64_t x);
void u64vec_free(struct u64vec *v);
void store_now(struct timespec *ts);

/* store-meta.c: inode table and directories */
struct store_inode *inode_get(struct vfs_store *s, uint64_t ino);
struct store_inode *inode_new(uint64_t ino, uint32_t mode);
int inode_insert(struct vfs_store *s, struct store_inode *n);
void inode_remove(struct vfs_store *s, struct store_inode *n);
void inode_free(struct store_inode *n); /* not in the table (inode_remove), its fds closed */
void inode_mark_dirty(struct vfs_store *s, struct store_inode *n);
void inode_fill_attr(const struct store_inode *n, struct vfs_attr *a);
/** Drop an inode that nothing names or references: its live layer file goes too. */
void inode_release(struct vfs_store *s, struct store_inode *n);
struct store_dir *dir_new(uint64_t parent);
void dir_free(struct store_dir *d);
struct store_dirent *dir_find(const struct store_dir *d, const char *name, size_t len);
int dir_add(struct store_dir *d, const char *name, size_t len, uint64_t ino, uint64_t cookie);
void dir_del(struct store_dir *d, struct store_dirent *e);
/** Position in d->order of the first entry with cookie >= @cookie. */
size_t dir_pos(const struct store_dir *d, uint64_t cookie);

/* store-data.c */
/** Open layer file @name of data/ with @flags (O_CREAT with 0600): never through a symlink
 *  (the GC punches holes in what it opens) nor anything but a regular file (a FIFO would
 *  block, /dev/zero would spin SEEK_DATA). Returns the fd or -errno (-EINVAL: not a file). */
int store_layer_open(struct vfs_store *s, const char *name, int flags);
uint64_t cmap_get(const struct cmap *m, uint64_t c);
int cmap_set(struct cmap *m, uint64_t c, uint64_t layer);
uint64_t cmap_end(const struct cmap *m); /* 1 + highest chunk held, 0 if none */
void cmap_free(struct cmap *m);
/** Close the layer fds of @n (they are opened again on use). */
void inode_close_fds(struct vfs_store *s, struct store_inode *n);
/** The bound on open layer fds for a process whose open-file limit is @nofile. */
unsigned store_fd_cap(uint64_t nofile);
/** Write @n's in-memory data (if any) to its live layer file. n->lock or the write lock held. */
int inode_flush_inline(struct vfs_store *s, struct store_inode *n);
/** Forget @n's in-memory data without writing it (the inode goes away). */
void inode_drop_inline(struct vfs_store *s, struct store_inode *n);
int data_layer_path(char *buf, size_t len, uint64_t ino, uint64_t layer);
int data_truncate(struct vfs_store *s, struct store_inode *n, uint64_t size);

/* store-epoch.c: the meta/E.ep format and commit */
struct ep_inode {
	struct store_inode *n; /* owned; map/dir/target filled */
	bool orphan;
};
struct ep {
	struct epoch_info info;
	uint64_t next_ino;
	struct ep_inode *recs;
	size_t nrecs;
	uint64_t *deleted;
	size_t ndeleted;
};
void ep_free(struct ep *e);
/** Read and verify meta/<id>.ep; -EBADMSG with a message in s->err. */
int ep_read(struct vfs_store *s, uint64_t id, struct ep *ret);
int ep_write(struct vfs_store *s, const struct ep *e);
int ep_apply(struct vfs_store *s, struct ep *e);
int store_load_chain(struct vfs_store *s, uint64_t at, unsigned flags);
struct epoch_info *epoch_find(struct vfs_store *s, uint64_t id);

/* store-gc.c */
int store_gc_locked(struct vfs_store *s);

#endif
