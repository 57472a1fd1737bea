/* Checkpoints of a job: jobs/NAME/checkpoints/<ID>/ holds the process image (image/, written by
 * restore_dump), the terminal state (pty.state) and a manifest; LATEST names the newest
 * complete one. A checkpoint directory appears by rename only once all of it is durable, so it is
 * either complete or invisible. Format: docs/checkpoint.md. */
#ifndef CKPTENV_CKPT_H
#define CKPTENV_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <sys/types.h>

#define CKPT_DIR      "checkpoints"
#define CKPT_IMAGE    "image"
#define CKPT_MANIFEST "manifest"
#define CKPT_LATEST   "LATEST"
#define CKPT_MAGIC    0x50434b43u /* "CKCP" */
#define CKPT_VERSION  1

#define CKPT_F_PTY 0x1u /* the job ran on a terminal (pty.state is there) */

struct ckpt_manifest {
	uint64_t id;
	uint64_t epoch;	    /* vfs epoch committed with it (ref "ckpt-ID") */
	int64_t created;    /* unix seconds */
	uint64_t frozen_ns; /* how long the job was frozen */
	uint64_t bytes;	    /* page data stored */
	uint32_t flags;	    /* CKPT_F_* */
	int32_t pid;	    /* the process's pid in the job's pid namespace */
};

/** Write @m to @dirfd/manifest atomically. 0 or -errno. */
int ckpt_manifest_write(int dirfd, const struct ckpt_manifest *m);
/** Read and check (magic, version, size, checksum) @dirfd/manifest: -ENOENT, -EBADMSG,
 *  -EPROTONOSUPPORT. */
int ckpt_manifest_read(int dirfd, struct ckpt_manifest *ret);

/** Open (creating with @create) jobs/NAME/checkpoints below @job_fd. */
int ckpt_dir_open(int job_fd, bool create, int *ret_fd);
/** A new stream over the entries of @ckdir from its start (on a dup: @ckdir stays open). */
int ckpt_dir_stream(int ckdir, DIR **ret);
/** Ids of the complete checkpoints (a valid manifest) in increasing order; malloc'd. */
int ckpt_list(int ckdir, uint64_t **ret, size_t *ret_n);
/** The next free id: 1 + the highest id present (complete or not) or named by LATEST. */
uint64_t ckpt_next_id(int ckdir);
/** The newest complete checkpoint: LATEST when it names a complete one (after a drop of the
 *  newest it names none, and stays so as the high-water mark of ids), else the highest listed.
 *  -ENOENT when there is none. */
int ckpt_latest(int ckdir, uint64_t *ret);
/** Replace LATEST with @id. */
int ckpt_latest_write(int ckdir, uint64_t id);

/* What `run` was told that a restore by a new supervisor must go on with: when the supervisor
 * takes checkpoints by itself, how many it keeps, the output log's size: jobs/NAME/ckpt-policy,
 * 40 bytes: le32 magic "CKPP", le16 version, le16 flags (1: checkpoint on SIGTERM), le64 period
 * ns (0: none), le32 keep (0: all), le32 0, le64 log size (0: the default), le64 ck_checksum
 * of the 32 bytes before. Version 1 (32 bytes, no log size, the checksum at 24) is still read.
 * Written by the supervisor of `run`, read back by the one of `restore`. */
#define CKPT_POLICY	     "ckpt-policy"
#define CKPT_POLICY_MAGIC    0x50504b43u /* "CKPP" */
#define CKPT_POLICY_VERSION  2
#define CKPT_POLICY_ON_TERM  0x1u
#define CKPT_KEEP_DEFAULT    3
#define CKPT_KEEP_MAX	     100000u
#define CKPT_EVERY_MIN_NS    1000000000ull
#define CKPT_EVERY_MAX_NS    (30ull * 86400 * 1000000000ull)

/* The last periodic checkpoint's failure, for `status` (the log has every one): jobs/NAME/
 * ckpt-failed, one line "UNIXTIME MESSAGE\n", removed by the next periodic checkpoint that
 * succeeds. Only what it says is shown, so no format version. */
#define CKPT_FAILED "ckpt-failed"

struct ckpt_policy {
	uint64_t every_ns; /* take one this often (0: only on request) */
	uint32_t keep;	   /* after each one, drop all but the newest @keep (0: keep all) */
	uint32_t flags;	   /* CKPT_POLICY_* */
	uint64_t log_size; /* run --log-size (0: the default) */
};

/** Write @p to @job_fd/ckpt-policy atomically (an all-zero policy removes the file). */
int ckpt_policy_write(int job_fd, const struct ckpt_policy *p);
/** Read it back; a missing file is the all-zero policy. -EBADMSG (also for values `run` would
 *  refuse: a period outside 1 s..30 d, keep 0 with a period, unknown flags, a log size outside
 *  4K..1G), -EPROTONOSUPPORT. */
int ckpt_policy_read(int job_fd, struct ckpt_policy *ret);
/** "30s", "10m", "2h", "500ms", a bare number of seconds; 1 s .. 30 days. -EINVAL otherwise. */
int ckpt_duration_parse(const char *s, uint64_t *ret_ns);

#endif
