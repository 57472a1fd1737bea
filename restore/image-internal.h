/* Private to restore/: on-disk constants of the image (docs/image-format.md) and the section
 * codec shared by the writer and the reader. */
#ifndef RESTORE_IMAGE_INTERNAL_H
#define RESTORE_IMAGE_INTERNAL_H

#include "common/ck.h"
#include "restore/restore.h"

#define IMG_CORE_NAME	"core.img"
#define IMG_PAGES_NAME	"pages.img"
#define IMG_LATEST_NAME "LATEST"

#define IMG_MAGIC_CORE	"CKRCORE\n"
#define IMG_MAGIC_PAGES "CKRPAGE\n"
#define IMG_MAGIC_LEN	8

/* File header: magic[8] version le32 header_len le32 body_len le64 body_checksum le64
 * header_checksum le64 (of the 32 bytes before it). */
#define IMG_HDR_LEN	  40u
#define IMG_CORE_HDR_LEN  IMG_HDR_LEN
#define IMG_PAGES_HDR_LEN RESTORE_PAGE_SIZE /* keeps page data page aligned for mmap */

/* Section header: type le32 flags le32 len le64 checksum le64, then len bytes of payload. */
#define IMG_SEC_HDR_LEN	   24u
#define IMG_SEC_F_OPTIONAL 0x1u /* a reader that does not know the type may skip it */
#define IMG_SEC_MAX_LEN	   (256u << 20)
#define IMG_CORE_MAX_LEN   (1024ull << 20)

enum img_section {
	IMG_SEC_PROC = 1,
	IMG_SEC_THREAD = 2,
	IMG_SEC_VMAS = 3,
	IMG_SEC_FDS = 4,
	IMG_SEC_RUNS = 5,
	/* Optional (older readers skip it), after FDS: kind-specific fd state (image-fdstate.c).
	 * 16, not 6: the numbers in between are left to other optional sections. */
	IMG_SEC_FDSTATE = 16,
	/* Required when present (an older reader must not restore without the timers), after
	 * RUNS: the clocks and timers (image-timers.c). 17: 16 is FDSTATE. */
	IMG_SEC_TIMERS = 17,
};

/* Bounds applied to every count and length read from an image. */
#define IMG_MAX_PATH	  4096u
#define IMG_MAX_TEXT	  (64u << 10)
#define IMG_MAX_AUXV	  4096u
#define IMG_MAX_XSAVE	  (64u << 10)
#define IMG_MAX_THREADS	  (1u << 16)
#define IMG_MAX_VMAS	  (1u << 20)
#define IMG_MAX_FDS	  (1u << 20)
#define IMG_MAX_PENDING	  (1u << 16)
#define IMG_MAX_RUNS	  (1u << 26)
#define IMG_MAX_FD_DATA	  (16u << 20) /* bytes buffered in one pipe or socket */
#define IMG_MAX_FD_SUBS	  (1u << 16)  /* epoll registrations, inotify watches, messages */
#define IMG_MAX_FDINFO	  (IMG_MAX_FD_SUBS * 160u) /* fdinfo read by the dumper: as many lines */
#define IMG_NREGS	  27u
#define IMG_MAX_RUN_PAGES 2048u /* 8 MiB: the writer's cap on one run */
/* Pages per copy chunk of the dumper: 1 MiB stays in the CPU cache between the copy out of
 * the target and the pwrite into the page cache (8 MiB chunks made the dump 2-3x slower). */
#define IMG_CHUNK_PAGES 256u

/** Zero-copy page path of the writer: fill the buffer returned by img_writer_buf() (room for
 *  IMG_CHUNK_PAGES pages; blocks while all are queued), then hand it over with
 *  img_writer_submit(). Same rules and errors as restore_image_writer_add_pages(). */
uint8_t *img_writer_buf(struct restore_image_writer *w);
int img_writer_submit(struct restore_image_writer *w, uint64_t addr, size_t len);
/** Page bytes written so far, without waiting for the queue (progress reports). */
uint64_t img_writer_bytes_nowait(struct restore_image_writer *w);

/* Version 2: the mappings of one shared-memory object (img_vma_same_shmem) have each byte of
 * the object stored once, through the first mapping (in address order) that covers it, so a
 * reader must map them all onto one object. Only images with such mappings are written as
 * version 2: the others stay readable by older builds. */
#define IMG_VERSION_SHMEM_ONCE 2u
/* Version 3: the proc section ends with nice, pdeathsig and the CPU affinity mask (written by
 * every dump that read them); otherwise as version 2. */
#define IMG_VERSION_PROC_SCHED 3u
/* Version 4: the process had made itself undumpable (RESTORE_PROC_F_UNDUMPABLE): an older
 * build would restore it dumpable, open to ptrace and core dumps again, so it must refuse the
 * image. Otherwise as version 3. */
#define IMG_VERSION_UNDUMPABLE 4u

/** Whether @v maps a file of the job's vfs (its identity was read and says so). */
static inline bool img_vma_job_vfs(const struct restore_vma *v)
{
	return (v->flags & RESTORE_VMA_F_HAS_IDENT) && (v->ident.flags & RESTORE_IDENT_F_JOB_VFS);
}

/** Whether @a and @b are shared mappings of one shmem object (shared anonymous memory, SysV or
 *  a memfd: same maj:min:inode as /proc/PID/maps shows it, inode not 0). */
bool img_vma_same_shmem(const struct restore_vma *a, const struct restore_vma *b);
/** The format version @img is written in: 1, or IMG_VERSION_SHMEM_ONCE when two of its
 *  mappings share a shmem object. */
uint32_t img_version_of(const struct restore_image *img);

void img_hdr_pack(uint8_t *hdr, const char *magic, uint32_t version, uint32_t header_len,
		  uint64_t body_len, uint64_t body_checksum);

void img_pack_proc(struct ck_buf *b, const struct restore_proc *p);
void img_pack_thread(struct ck_buf *b, const struct restore_thread *t);
void img_pack_vmas(struct ck_buf *b, const struct restore_vma *v, size_t n);
void img_pack_fds(struct ck_buf *b, const struct restore_fd *v, size_t n);
void img_pack_runs(struct ck_buf *b, const struct restore_page_run *r, size_t n,
		   uint64_t pages_size);

/* Unpackers: return 0 or -EBADMSG (-ENOMEM), never read past the payload, and require that
 * the payload is consumed exactly. Partially filled outputs are freed by the caller through
 * restore_image_free(). */
int img_unpack_proc(struct ck_rd *r, struct restore_proc *p);
int img_unpack_thread(struct ck_rd *r, struct restore_thread *t);
int img_unpack_vmas(struct ck_rd *r, struct restore_image *img);
int img_unpack_fds(struct ck_rd *r, struct restore_image *img);
int img_unpack_runs(struct ck_rd *r, struct restore_image *img);

/* image-fdstate.c: section FDSTATE, one record per fd of the FDS section, same order. */
void img_pack_fdstate(struct ck_buf *b, const struct restore_fd *v, size_t n);
int img_unpack_fdstate(struct ck_rd *r, struct restore_image *img);
void img_fdstate_clear(struct restore_fd_state *st);

void img_proc_clear(struct restore_proc *p);

/* image-timers.c: the TIMERS section. */
void img_pack_timers(struct ck_buf *b, const struct restore_timers *t);
int img_unpack_timers(struct ck_rd *r, struct restore_timers *t);
void img_timers_clear(struct restore_timers *t);
void img_thread_clear(struct restore_thread *t);

/* "ID/pages.img is corrupt (checksum of pages at 0x...)" in err->msg; returns -EBADMSG. */
int img_run_corrupt(struct restore_err *err, const char *id, const struct restore_page_run *p);

static inline void image_freep(struct restore_image **p)
{
	restore_image_free(*p);
}

#endif
