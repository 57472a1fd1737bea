/* Private to restore/: the C side of restore_process() (restore-*.c, sigframe.c), which prepares
 * the landing zone and the blob's argument block (blob/blob.h) before jumping into the blob. */
#ifndef RESTORE_RESTORE_INTERNAL_H
#define RESTORE_RESTORE_INTERNAL_H

#include "common/ck.h"
#include "restore/blob/blob.h"
#include "restore/restore.h"

#include <stdio.h>

/* The blob's bytes (blob-image.c). */
extern const uint8_t ckr_blob_code[] __attribute__((visibility("hidden")));
extern const uint8_t ckr_blob_code_end[] __attribute__((visibility("hidden")));

#define RST_STACK_SIZE	  (64u << 10)
#define RST_THREAD_STACK  (16u << 10) /* each non-leader thread's stack inside the blob */
#define RST_FRAME_EXTRA	  (512u + 64u + 64u) /* sigframe, alignment, magic2 around the xsave area */
#define RST_PAGE_ROUND(x) (((x) + RESTORE_PAGE_SIZE - 1) & ~(uint64_t)(RESTORE_PAGE_SIZE - 1))

/* A mapping of the restorer process itself (/proc/self/maps). */
struct rst_self_vma {
	uint64_t start, end;
	char name[32]; /* "[vdso]" etc., "" for others */
};

/* An fd to put at its old number: @tmp (>= base, O_CLOEXEC) is dup3'ed to @target. */
struct rst_fd_plan {
	int target;
	int tmp; /* -1: keep what the caller gave at @target (0/1/2) */
	bool cloexec;
	bool seek;
	uint64_t pos;
};

/* A lock an fd held (its fdinfo's "lock:" line), to take again. */
enum rst_lock_kind { RST_LOCK_FLOCK, RST_LOCK_POSIX, RST_LOCK_OFD };
struct rst_lock {
	enum rst_lock_kind kind;
	bool write;
	int fd;
	int64_t start, len; /* POSIX and OFD: bytes, len 0 to the end */
	const char *target; /* the fd's file, for messages (the image's) */
};

struct rst_ctx {
	struct restore_image *img;
	const struct restore_process_opts *opts;
	struct restore_err *err;
	int base_fd; /* every temporary fd of the restorer is >= this, every image fd below */

	struct rst_self_vma *self;
	size_t nself;

	struct ckr_vma *vmas; /* one per image vma */
	int *tmp_fds;	      /* map fds, memfds: closed by the blob */
	size_t ntmp;
	struct ckr_run *runs;
	size_t nruns;
	struct ckr_remap remap[CKR_NREMAP];
	unsigned nremap;
	int pages_fd, exe_fd, err_fd, check_fd;

	struct rst_fd_plan *fds;
	size_t nfds;

	struct ckr_timer *timers; /* armed by the blob */
	uint32_t ntimers;

	struct rst_lock *locks; /* the fds' locks (rst_fds_locks_plan) */
	size_t nlocks;

	uint64_t zone, zone_len; /* the landing zone once mapped */
	uint64_t stacks_len;	 /* below the main stack: RST_THREAD_STACK per non-leader */
	uint64_t cur_xcr0;
	uint32_t cur_xsave_size;
	uint64_t xperm; /* xstate features this process may use (ARCH_GET_XCOMP_PERM) */
};

/** Format err->msg (if err) and return @r. */
int rst_fail(struct rst_ctx *c, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** Move @fd to the lowest free number >= c->base_fd (O_CLOEXEC), closing @fd. New fd or -errno. */
int rst_fd_high(struct rst_ctx *c, int fd);

/** Compare a file with its recorded identity: 0, or -ESTALE with a message naming @what. */
int rst_ident_check(struct rst_ctx *c, int fd, const struct restore_ident *id, const char *what);

/* A bump allocator over the argument block (64-byte steps); NULL once it is exhausted. */
struct rst_bump {
	uint8_t *p, *end;
};

static inline void *rst_bump(struct rst_bump *b, size_t len)
{
	uint8_t *r = b->p;
	b->p += (len + 63) & ~(size_t)63;
	return b->p <= b->end ? r : NULL;
}

/* restore-threads.c */
/** Before the point of no return: when the threads will get their old tids (we run at the
 *  image's pid), that clone3 may set tids here and that none of them is taken. 0, -EBUSY (a
 *  tid is taken), -EPERM; err->msg says which. */
int rst_threads_check(struct rst_ctx *c);
/** Bytes of argument block the threads need (their ckr_thread records, private pending
 *  signals and frames), 64-byte steps included. */
size_t rst_threads_args_size(const struct rst_ctx *c);
/** Fill a->threads (and a->nthreads, a->set_tids) from the image: one record, frame and, but
 *  for the leader, one blob stack each (taken from [@stacks, @stacks + c->stacks_len)). */
int rst_threads_build(struct rst_ctx *c, struct rst_bump *b, struct ckr_args *a,
		      uint64_t stacks);

/* check.c: identity comparison shared with restore_image_check(). */
enum { RST_IDENT_SAME, RST_IDENT_CHANGED, RST_IDENT_OTHER };
struct stat;
/** RST_IDENT_*: another file (device or inode), changed (size, mtime), or the same. Files
 *  of the job's vfs: inode and size only (see check.c). */
int rst_ident_cmp(const struct stat *st, const struct restore_ident *id);
/** @path is accepted changed by @o (allow_changed, or listed in allow_paths). */
bool rst_path_allowed(const struct restore_process_opts *o, const char *path);
/** The one-line refusal for rst_ident_cmp() result @how of @path. */
void rst_ident_describe(char *buf, size_t len, const char *path, int how, const struct stat *st,
			const struct restore_ident *id);
/** The CPU's xsave features and layout against @img; its XCR0 and xsave size in ret_*.
 *  -ENOEXEC with @msg filled when the image cannot run on it. */
int rst_cpu_check(const struct restore_image *img, uint64_t *ret_xcr0, uint32_t *ret_size,
		  char *msg, size_t len);

/* restore-mm.c */
int rst_self_maps(struct rst_ctx *c);
int rst_vdso_plan(struct rst_ctx *c);
int rst_vmas_plan(struct rst_ctx *c);
int rst_runs_plan(struct rst_ctx *c);
int rst_zone_map(struct rst_ctx *c, uint64_t len);

/* restore-fds.c */
int rst_fds_plan(struct rst_ctx *c);
/** The locks the job's fds held (flock, POSIX and OFD, from each fd's fdinfo) into c->locks. */
int rst_fds_locks_plan(struct rst_ctx *c);
/** Take them again, once every fd is at its number. -EBUSY (c->err) when another process
 *  holds one now. */
int rst_fds_locks(struct rst_ctx *c);
/** The POSIX ones as the blob takes them again after its closes, into @out (may be NULL: only
 *  counted). Returns how many. */
size_t rst_fds_locks_posix(const struct rst_ctx *c, struct ckr_lock *out);
/** @path is a file of a procfs (the job's /proc is mounted anew by each run, so its identity
 *  is never the image's): checked on @fd when >= 0, else on the path. */
bool rst_procfs_file(const char *path, int fd);
int rst_fds_install(struct rst_ctx *c);
void rst_ctx_close_temps(struct rst_ctx *c);

/* restore-timers.c */
/** The index in img->threads of the thread POSIX timer @p is aimed at: 0 for the leader and for
 *  timers aimed at the process, -ENOENT when its thread is not in the image. */
int rst_timer_thread(const struct restore_image *img, const struct restore_posix_timer *p);
/** Check the image's timers and plan their arming (c->timers). -EOPNOTSUPP with a message. */
int rst_timers_plan(struct rst_ctx *c);
/** Create the image's POSIX timers at their old ids, disarmed. On failure the ones created are
 *  deleted again and err->msg names the timer. */
int rst_timers_create(struct rst_ctx *c);

/* sigframe.c */
/** Apply the syscall-restart convention to raw registers (docs/image-format.md). */
void rst_regs_fixup(struct user_regs_struct *regs);
/** The xstate features a sigframe of this process may carry for thread @t (CPU features
 *  @cur_xcr0): what ARCH_GET_XCOMP_PERM permits, after asking for AMX tile data when @t's
 *  saved state uses it. Written to *ret_perm; 0 or -errno. */
int rst_xstate_permit(uint64_t cur_xcr0, const struct restore_thread *t, uint64_t *ret_perm);
/** Build the rt_sigframe of thread @t at @mem (64-byte aligned, RST_FRAME_EXTRA + xsave_len
 *  bytes): registers (fixed up), sigmask, altstack, the xsave area cut to the features
 *  @xperm (rst_xstate_permit) with valid fx_sw_bytes and FP_XSTATE_MAGIC2. -EINVAL if the
 *  xsave area does not fit this CPU. */
int rst_sigframe_build(const struct restore_thread *t, uint64_t xperm, uint32_t cur_xsave_size,
		       uint8_t *mem, uint64_t *ret_frame);

#endif
