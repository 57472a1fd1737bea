/* Dropping checkpoints with their /tmp epoch, cleaning what a crash left behind, and the space a
 * job takes. See ckpt-gc.c for the order that keeps image and epoch in agreement. */
#ifndef CKPTENV_CKPT_GC_H
#define CKPTENV_CKPT_GC_H

#include <stddef.h>
#include <stdint.h>

struct vfs;

/** Drop checkpoint @id: invisible first (renamed to .ID.del, directory fsynced), then its vfs
 *  ref "ckpt-ID" dropped (freeing the epoch unless something else refers to it), then its
 *  files removed. LATEST is left as it is (see ckpt_next_id). -ENOENT when there is no such
 *  checkpoint. */
int ckpt_drop(int ckdir, struct vfs *v, uint64_t id);

/** Drop all but the newest @keep complete checkpoints (0: keep all). The ids dropped go into
 *  @dropped (at most @max of them), their count into *ret_n. 0 or the first -errno. */
int ckpt_prune(int ckdir, struct vfs *v, uint32_t keep, uint64_t *dropped, size_t max,
	       size_t *ret_n);

struct ckpt_sweep_stats {
	size_t dirs; /* .ID.tmp / .ID.del directories removed */
	size_t refs; /* ckpt-ID refs without a complete checkpoint dropped */
};

/** Remove what an interrupted checkpoint or drop left: .ID.tmp and .ID.del directories, and
 *  "ckpt-ID" refs of the store in @store_dir (open as @v) that have no complete checkpoint.
 *  Only while no checkpoint is being written (the caller holds the job lock). */
int ckpt_sweep(int ckdir, struct vfs *v, const char *store_dir, struct ckpt_sweep_stats *ret);

typedef void (*ckpt_check_fn)(void *ud, uint64_t id, uint64_t epoch, uint64_t ref_epoch);
/** For every complete checkpoint whose ref "ckpt-ID" is missing (ref_epoch 0) or names another
 *  epoch than its manifest, call @fn. Returns how many disagree, or -errno. */
int ckpt_check(int ckdir, const char *store_dir, ckpt_check_fn fn, void *ud);

struct ckpt_space {
	uint64_t total;	      /* everything below jobs/NAME (allocated blocks) */
	uint64_t store;	      /* the /tmp store: head and every epoch */
	uint64_t checkpoints; /* the process images */
};
/** Allocated bytes below @job_fd (one file system; symlinks not followed). */
int ckpt_space(int job_fd, struct ckpt_space *ret);

#endif
