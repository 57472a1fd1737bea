/* restore: the checkpoint core. Freezes a single-process job with ptrace, dumps its memory,
 * threads, signal state and fd table into a checkpoint directory (format: docs/image-format.md),
 * and reads such an image back for the restorer. Libraries never log: errors come back as
 * -errno plus a one-line message in struct restore_err. x86-64 only. */
#ifndef RESTORE_H
#define RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

/* Highest image format version this build writes and reads; readers refuse newer ones
 * (-EPROTONOSUPPORT). An image without a version-2 feature is still written as version 1
 * (docs/image-format.md). */
#define RESTORE_IMAGE_VERSION 4
#define RESTORE_PAGE_SIZE     4096u
#define RESTORE_NSIG	      64

/** Error detail filled by every function taking one: a one-line message naming what failed
 *  (the file, the fd, the thread) and, for -EUSERS from restore_freeze(), the process count. */
struct restore_err {
	int nprocs;
	char msg[320];
};

/* ---- freeze ---------------------------------------------------------------------------- */

struct restore_freeze;

/** Seize and interrupt every thread of @pid (re-listing /proc/PID/task until no new thread
 *  appears) and wait until each one has reached its ptrace stop. The calling thread becomes the
 *  tracer: every later call on the handle must come from the same thread.
 *  Refuses a job of more than one process (pid plus its descendants) with -EUSERS, setting
 *  err->nprocs. -ESRCH if the process is gone, -EPERM if ptrace is not allowed,
 *  -EOPNOTSUPP if its main thread has ended while others run (err->msg says so), -errno else.
 *  On success *ret owns the handle: release it with restore_freeze_resume()/_leave_stopped(). */
int restore_freeze(pid_t pid, struct restore_freeze **ret, struct restore_err *err);

/** The frozen process and its threads (leader first). */
pid_t restore_freeze_pid(const struct restore_freeze *f);
size_t restore_freeze_nthreads(const struct restore_freeze *f);
pid_t restore_freeze_tid(const struct restore_freeze *f, size_t i);
/** Nanoseconds since restore_freeze() started seizing. */
uint64_t restore_freeze_elapsed_ns(const struct restore_freeze *f);

/** Detach from every thread so the process runs on, and free @f (NULL-safe). Returns 0 or the
 *  first -errno of a PTRACE_DETACH (the handle is freed either way). */
int restore_freeze_resume(struct restore_freeze *f);
/** Queue SIGSTOP to the process, then detach: it stays stopped (group stop). Frees @f. */
int restore_freeze_leave_stopped(struct restore_freeze *f);

/* ---- image model ----------------------------------------------------------------------- */

enum restore_vma_kind {
	RESTORE_VMA_ANON_PRIVATE = 1,
	RESTORE_VMA_ANON_SHARED, /* MAP_SHARED|MAP_ANONYMOUS ("/dev/zero (deleted)"), SysV shm */
	RESTORE_VMA_FILE_PRIVATE,
	RESTORE_VMA_FILE_SHARED, /* identity only: contents stay in the file */
	RESTORE_VMA_MEMFD,	 /* "/memfd:NAME (deleted)": contents saved */
	RESTORE_VMA_STACK,	 /* [stack] */
	RESTORE_VMA_HEAP,	 /* [heap] */
	RESTORE_VMA_VVAR,	 /* [vvar], [vvar_vclock], [vdso]: never saved, remapped */
	RESTORE_VMA_VVAR_VCLOCK,
	RESTORE_VMA_VDSO,
};

/* restore_vma.flags */
#define RESTORE_VMA_F_SHARED	0x1u /* 's' in the maps permissions */
#define RESTORE_VMA_F_GROWSDOWN 0x2u /* VmFlags gd */
#define RESTORE_VMA_F_DELETED	0x4u /* path ended in " (deleted)" */
#define RESTORE_VMA_F_HAS_IDENT 0x8u /* dev/ino/size/mtime below come from a stat of the file */

/** Identity of a file recorded for the restore-time "unchanged" check. */
struct restore_ident {
	uint64_t dev; /* st_dev of the file (makedev encoding of glibc) */
	uint64_t ino;
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t mode;
	uint32_t flags; /* RESTORE_IDENT_F_* (in the image: the high 16 bits of mode) */
};
/* The file is on the job's own vfs (fstype fuse.ckptenv): each mount of it has a new st_dev,
 * so the restorer compares inode, size and mtime but not the device. */
#define RESTORE_IDENT_F_JOB_VFS 0x1u

struct restore_vma {
	uint64_t start, end; /* [start, end), page aligned */
	uint64_t pgoff;	     /* file offset in bytes */
	uint32_t prot;	     /* PROT_* */
	uint32_t flags;	     /* RESTORE_VMA_F_* */
	uint32_t kind;	     /* enum restore_vma_kind */
	uint32_t maj, min;   /* device of the mapping as in smaps */
	uint64_t inode;
	struct restore_ident ident; /* valid with RESTORE_VMA_F_HAS_IDENT */
	char *path;		    /* smaps path column, "" for anonymous */
	char *vmflags;		    /* smaps VmFlags, e.g. "rd wr mr mw me ac" */
};

enum restore_fd_kind {
	RESTORE_FD_REGULAR = 1,
	RESTORE_FD_DIR,
	RESTORE_FD_PIPE,
	RESTORE_FD_SOCKET,
	RESTORE_FD_EVENTFD,
	RESTORE_FD_TIMERFD,
	RESTORE_FD_SIGNALFD,
	RESTORE_FD_EPOLL,
	RESTORE_FD_INOTIFY,
	RESTORE_FD_TTY,
	RESTORE_FD_CHR, /* other character device: /dev/null and friends */
	RESTORE_FD_OTHER,
};

/* An epoll registration: the key is (file, fd number), so it is re-added on the fd's old
 * number once every fd is in place. */
struct restore_epoll_tfd {
	int32_t fd;
	uint32_t events; /* EPOLL* as registered, EPOLLET/ONESHOT/EXCLUSIVE included */
	uint64_t data;
};

/* An inotify watch, re-added by path in wd order so it gets its old watch descriptor. */
struct restore_inotify_watch {
	int32_t wd;
	uint32_t mask;	    /* IN_* incl. IN_ONESHOT, IN_EXCL_UNLINK... */
	uint64_t ino, dev;  /* the watched inode (dev in st_dev encoding) */
	uint32_t flags;	    /* RESTORE_IDENT_F_JOB_VFS */
	char *path;	    /* as the job sees it */
};

/* A socket option that differed from a fresh socket's: setsockopt(level, name, value). */
struct restore_sockopt {
	int32_t level, name, value;
};
#define RESTORE_SOCKOPT_MAX 24

enum restore_sock_state {
	RESTORE_SOCK_UNCONNECTED = 1, /* bound or not */
	RESTORE_SOCK_LISTEN,
	RESTORE_SOCK_CONNECTED,
};

/* restore_fd_state.flags */
#define RESTORE_FDS_F_FDFLAGS	0x01u /* CLOEXEC below is the fd flag (injected F_GETFD) */
#define RESTORE_FDS_F_CLOEXEC	0x02u
#define RESTORE_FDS_F_PEER_OUT	0x04u /* pipe/socket: the other end is held outside the job */
#define RESTORE_FDS_F_SEMAPHORE 0x08u /* eventfd: EFD_SEMAPHORE */
#define RESTORE_FDS_F_DATA	0x10u /* pipe: this fd carries the pipe's buffered bytes */
#define RESTORE_FDS_F_SHUT_RD	0x20u /* unix socket: shut down for reading (sk_shutdown) */
#define RESTORE_FDS_F_SHUT_WR	0x40u /* unix socket: shut down for writing */
#define RESTORE_FDS_F_RECONNECT 0x80u /* unix datagram socket connected to the named socket
				       * @peer outside the job: connected again by name */
/* A pipe at fd > 2 that is the job's stdin, stdout or stderr pipe (restore_dump_opts.given),
 * moved there by the job (ssh dup2s its stdout pipe to fd 5): at restore it gets the pipe given
 * at fd 0, 1 or 2. RESTORE_FDS_F_GIVEN(k) for stdio fd k. */
#define RESTORE_FDS_F_GIVEN(k)	(0x100u << (k))
#define RESTORE_FDS_F_GIVEN_ANY 0x700u

/** Kind-specific state of an fd (section FDSTATE, docs/image-format.md). */
struct restore_fd_state {
	bool present;	/* the image carries it (older images do not) */
	uint32_t flags; /* RESTORE_FDS_F_* */
	int32_t dup_of; /* lower fd sharing this open file description (kcmp), or -1 */
	uint64_t value; /* eventfd: count; signalfd: mask; pipe: size; listening socket: backlog */
	uint64_t peer_ino; /* unix socket: inode of the peer (0: none) */
	/* timerfd */
	int32_t clockid;
	uint32_t tflags;	/* TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET */
	uint64_t it_value_ns;	/* remaining time (0: disarmed) */
	uint64_t it_interval_ns;
	uint64_t ticks;	 /* expirations not read yet */
	int64_t abs_ns;	 /* absolute deadline on clockid at checkpoint (abstime timers) */
	/* socket */
	int32_t family, type, protocol;
	uint32_t sock_state; /* enum restore_sock_state */
	uint32_t addr_len;   /* getsockname (bytes of @addr) */
	uint8_t addr[128];
	uint32_t peer_len; /* getpeername, with RESTORE_FDS_F_RECONNECT */
	uint8_t peer[128];
	uint32_t nopts;
	struct restore_sockopt opts[RESTORE_SOCKOPT_MAX];
	/* bytes waiting to be read: the pipe's, or the socket's receive queue */
	uint8_t *data;
	uint64_t data_len;
	uint32_t nmsgs;	   /* datagram sockets: message boundaries; 0 for streams */
	uint32_t *msg_len; /* sums to data_len */
	size_t ntfds;
	struct restore_epoll_tfd *tfds;
	size_t nwatches;
	struct restore_inotify_watch *watches; /* sorted by wd */
};

struct restore_fd {
	int32_t fd;
	uint32_t kind;	 /* enum restore_fd_kind */
	uint32_t flags;	 /* fdinfo "flags" (open flags incl. O_CLOEXEC) */
	uint32_t mnt_id; /* fdinfo mnt_id */
	uint64_t pos;	 /* fdinfo pos */
	uint64_t rdev;
	struct restore_ident ident; /* fstat of the open file (via pidfd_getfd) */
	char *target;		    /* readlink of /proc/PID/fd/N */
	char *fdinfo; /* whole fdinfo text (eventfd count, timerfd, epoll targets...) */
	struct restore_fd_state st;
};

struct restore_sigaction { /* the kernel's struct sigaction for rt_sigaction */
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
};

#define RESTORE_SIGINFO_SIZE 128
struct restore_siginfo {
	uint8_t raw[RESTORE_SIGINFO_SIZE]; /* kernel siginfo_t, for rt_(tg)sigqueueinfo */
};

/* restore_thread.flags / restore_proc.flags */
#define RESTORE_THREAD_F_INJECTED 0x1u /* altstack and clear_child_tid were read in-thread */
#define RESTORE_THREAD_F_RSEQ	  0x2u /* rseq fields valid */
#define RESTORE_PROC_F_SIGACT	  0x1u /* sigact[] read with injected rt_sigaction */
#define RESTORE_PROC_F_BRK	  0x2u /* mm.brk read with an injected brk(0) */
#define RESTORE_PROC_F_SCHED	  0x4u /* nice and cpus valid (format version 3) */
#define RESTORE_PROC_F_PDEATH	  0x8u /* pdeathsig read with an injected prctl (version 3) */
#define RESTORE_PROC_F_UNDUMPABLE 0x10u /* PR_SET_DUMPABLE 0 (injected PR_GET_DUMPABLE; version 4) */
#define RESTORE_CPUS_MAX	  128  /* bytes of affinity mask kept: 1024 CPUs */

struct restore_thread {
	int32_t tid;
	uint32_t flags;
	struct user_regs_struct regs; /* raw PTRACE_GETREGS: no syscall-restart fix-up applied */
	uint64_t sigmask;	      /* blocked signals, bit (sig-1) */
	uint64_t xcr0;		      /* user xstate mask (XCR0) as the kernel reported it */
	uint32_t xsave_len;	      /* bytes of @xsave (standard, non-compacted format) */
	uint8_t *xsave;		      /* NT_X86_XSTATE */
	uint64_t rseq_ptr;
	uint32_t rseq_len, rseq_sig, rseq_flags;
	uint64_t robust_head, robust_len; /* get_robust_list(tid) */
	uint64_t altstack_sp, altstack_size;
	uint32_t altstack_flags;
	uint64_t clear_child_tid; /* prctl(PR_GET_TID_ADDRESS) */
	char comm[16];
	size_t npending;
	struct restore_siginfo *pending; /* thread-private queue, oldest first */
};

enum restore_mm_field {
	RESTORE_MM_START_CODE,
	RESTORE_MM_END_CODE,
	RESTORE_MM_START_DATA,
	RESTORE_MM_END_DATA,
	RESTORE_MM_START_BRK,
	RESTORE_MM_BRK,
	RESTORE_MM_START_STACK,
	RESTORE_MM_ARG_START,
	RESTORE_MM_ARG_END,
	RESTORE_MM_ENV_START,
	RESTORE_MM_ENV_END,
	RESTORE_MM_N,
};

#define RESTORE_NRLIMIT 16
struct restore_proc {
	int32_t pid;
	uint32_t flags; /* RESTORE_PROC_F_* */
	uint32_t umask;
	uint32_t personality;
	char comm[16];
	uint64_t mm[RESTORE_MM_N];
	uint64_t rlim_cur[RESTORE_NRLIMIT], rlim_max[RESTORE_NRLIMIT];
	uint64_t sig_ign, sig_cgt;		       /* /proc/PID/status SigIgn/SigCgt */
	int32_t nice;				       /* of the main thread (_F_SCHED) */
	uint32_t pdeathsig;			       /* PR_GET_PDEATHSIG (_F_PDEATH) */
	uint32_t cpus_len;			       /* bytes of @cpus (_F_SCHED) */
	uint8_t cpus[RESTORE_CPUS_MAX];		       /* sched_getaffinity, main thread */
	struct restore_sigaction sigact[RESTORE_NSIG]; /* [sig-1]; valid with _F_SIGACT */
	uint64_t xcr0;				       /* of the dumping CPU (xgetbv) */
	uint32_t xsave_size;			       /* CPUID 0xD.0 EBX of the dumping CPU */
	size_t auxv_len;
	uint8_t *auxv; /* raw /proc/PID/auxv (pairs of u64) */
	char *exe;     /* readlink /proc/PID/exe */
	struct restore_ident exe_ident;
	char *cwd;
	char *timers; /* raw /proc/PID/timers (POSIX timers: id, signal, notify, clock) */
	size_t npending;
	struct restore_siginfo *pending; /* shared (process-wide) queue */
};

/* ---- timers and clocks (dump-timers.c, image-timers.c, restore-timers.c, timens.c) -------- */

#define RESTORE_MAX_TIMERS 4096 /* POSIX timers per process in an image */

/** A POSIX timer (timer_create), from /proc/PID/timers and an injected timer_gettime. */
struct restore_posix_timer {
	int32_t id;	 /* the kernel's timer id, which glibc hands to the program as timer_t */
	int32_t clockid; /* CLOCK_*, or a CPU clock id (negative) */
	int32_t notify;	 /* sigev_notify: SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID */
	int32_t signo;
	uint64_t value;	 /* sigev_value */
	int32_t tid;	 /* SIGEV_THREAD_ID: the target thread (tid as in the image's threads) */
	int32_t overrun; /* timer_getoverrun() at dump time: recorded, cannot be set again */
	uint64_t value_ns, interval_ns; /* timer_gettime(): time left (0: disarmed), period */
};

/* restore_timers.flags */
#define RESTORE_TIMERS_F_VALID 0x1u /* everything below was read in the frozen process */

/** Clocks and timers of the process, read by syscalls injected into it while frozen. */
struct restore_timers {
	uint32_t flags;
	uint64_t mono_ns, boot_ns; /* CLOCK_MONOTONIC / CLOCK_BOOTTIME as the process saw them
				    * (its time namespace's offsets included) when its timers
				    * were read: a restore continues both from here */
	uint64_t itimer_value_ns[3], itimer_interval_ns[3]; /* ITIMER_REAL, _VIRTUAL, _PROF
							     * (alarm() is ITIMER_REAL) */
	size_t nposix;
	struct restore_posix_timer *posix; /* sorted by id */
};

/** One run of stored pages: @npages pages at @addr are at @file_off in pages.img. */
struct restore_page_run {
	uint64_t addr;
	uint64_t file_off;
	uint32_t npages;
	uint64_t checksum; /* ck_checksum of the run's bytes */
};

struct restore_image {
	struct restore_proc proc;
	size_t nthreads, nvmas, nfds, nruns;
	struct restore_thread *threads; /* leader first */
	struct restore_vma *vmas;	/* sorted by address */
	struct restore_fd *fds;		/* sorted by fd */
	struct restore_page_run *runs;	/* sorted by address, non-overlapping */
	uint64_t pages_size;		/* size of pages.img */
	int pages_fd;			/* pages.img, open for reading (loaded images), else -1 */
	struct restore_timers timers;	/* flags 0: not recorded (older image, no injection) */
};

/** Free everything an image owns, pages_fd included. NULL-safe. */
void restore_image_free(struct restore_image *img);

/* ---- image writer ---------------------------------------------------------------------- */

struct restore_image_writer;

/** Start checkpoint @id (a single path component) below the checkpoints directory @dirfd: the
 *  files go into a temporary directory ".ID.tmp" (a stale one is removed first). -EEXIST when
 *  @id already exists. */
int restore_image_writer_new(int dirfd, const char *id, struct restore_image_writer **ret);

/** Append the contents of [@addr, @addr + @len) (page aligned, increasing and non-overlapping
 *  over the calls). All-zero pages are dropped; the rest are stored in runs, which never span
 *  two calls nor 1 MiB chunks. Written asynchronously by the writer's I/O thread: an I/O error
 *  is returned by a later call or by commit. 0 or -errno. */
int restore_image_writer_add_pages(struct restore_image_writer *w, uint64_t addr, const void *buf,
				   size_t len);

/** Write core.img from @meta (its runs/pages fields are ignored: the writer's own index is
 *  used), fsync both files, rename the directory to @id, fsync @dirfd, then replace LATEST.
 *  The checkpoint is visible only once this returns 0. */
int restore_image_writer_commit(struct restore_image_writer *w, const struct restore_image *meta);

/** Bytes of page data stored so far (waits until queued pages are written). */
uint64_t restore_image_writer_bytes(struct restore_image_writer *w);

/** Abort (remove the temporary directory) unless committed, and free. NULL-safe. */
void restore_image_writer_free(struct restore_image_writer *w);

/* ---- image reader ---------------------------------------------------------------------- */

/** Load checkpoint @id below @dirfd: core.img fully parsed and checked (magic, version,
 *  bounds, checksums, consistency of runs with vmas and with the size of pages.img).
 *  Page contents are not read. -EBADMSG for a truncated or corrupt file, -EPROTONOSUPPORT for a
 *  newer format version, -ENOENT/-errno else; err->msg names the file. */
int restore_image_load(int dirfd, const char *id, struct restore_image **ret,
		       struct restore_err *err);

/** restore_image_load() plus the checksum of every page run and of the pages.img header.
 *  Same errors. */
int restore_image_verify(int dirfd, const char *id, struct restore_err *err);

/** The parent's side of restore_process_opts.check_fd: check every page run's checksum in the
 *  memory of @pid (the restoring child, its blob filling the pages from pages.img) as the
 *  blob reports each step, so that pages.img is read once, by the blob; then give the
 *  verdict. 0: every run checked, the blob goes on. -EBADMSG: a checksum differs; the blob
 *  was told to exit with err->msg ("ID/pages.img is corrupt (checksum of pages at 0x...)")
 *  as its last words. -EPIPE: the child ended or failed before the end (its own message
 *  tells why). Also the errors of restore_image_load() and -errno of process_vm_readv(); on
 *  every error but -EPIPE the blob was told to exit. The caller closes @check_fd. */
int restore_pages_check(int dirfd, const char *id, pid_t pid, int check_fd,
			struct restore_err *err);

/** Raise this process's RLIMIT_NOFILE as far as it may (the hard limit, more as root): a
 *  restore holds every fd of the image and more at once; the image's own limit is set back by
 *  restore_process. */
void restore_nofile_raise(void);
/** Whether a restorer started here could hold the fds of @img at once (it holds each twice for
 *  a moment, and one per mapped file or shared memory object): -EOPNOTSUPP with one line in
 *  @err when the hard open-file limit is too low and this process may not lift it. @restoring:
 *  the hint names the restore's shell, else the job's. */
int restore_nofile_check(const struct restore_image *img, bool restoring, struct restore_err *err);

/* How a refusal line of restore_pages_check() starts (the blob writes it to its err fd). */
#define RESTORE_CHECK_REFUSED "ckptenv: image refused: "


/** Copy the page at @addr from a loaded image into @buf (RESTORE_PAGE_SIZE bytes). Returns 1 if
 *  the page is stored, 0 if not (zero or never populated: @buf untouched), -errno. */
int restore_image_read_page(const struct restore_image *img, uint64_t addr, void *buf);

/** Read LATEST below @dirfd into @buf (the id, without newline). -ENOENT if none,
 *  -EBADMSG if malformed. */
int restore_image_latest(int dirfd, char *buf, size_t len);

/* ---- dump ------------------------------------------------------------------------------ */

struct restore_dump_stats {
	uint64_t pages_scanned; /* pages of saved kinds that were present or swapped */
	uint64_t pages_stored;
	uint64_t pages_zero;
	uint64_t bytes_written; /* page data */
	uint64_t dump_ns;	/* restore_dump() wall time */
	uint32_t nthreads, nvmas, nfds;
};

struct restore_dump_opts {
	/* Called after every few MiB of pages with the bytes written so far (may be NULL). */
	void (*progress)(uint64_t bytes, void *userdata);
	void *userdata;
	/* Do not inject syscalls into the target (no sigactions, altstack, brk, tid address). */
	bool no_inject;
	/* Called once, on the calling thread, as soon as everything of the process has been
	 * copied out of it, before the image is made durable (the fsyncs take most of a large
	 * dump): the caller may resume the process here. restore_dump() does not touch the
	 * freeze handle after it. Not called on a failure before that point. May be NULL. */
	void (*copied)(void *userdata);
	/* The pipes the caller gives the job as its fds 0, 1, 2 (and will give anew at restore),
	 * by identity; ino 0: none. A job's fd > 2 on one of them is marked
	 * RESTORE_FDS_F_GIVEN(k). */
	struct {
		uint64_t dev, ino;
	} given[3];
	/* The caller hands over nothing at restore but @given, the files of the job's vfs and
	 * the sockets of its proxied connections: what the restorer could not rebuild then (a
	 * pipe held outside the job, a deleted file or memfd outside the vfs, an fd of a kind it
	 * does not know, a deleted working directory) is refused by the dump, not by a restore
	 * after a `--stop` that ended the job. */
	bool strict;
	/* With @strict: the caller also gives the job's terminal (/dev/pts/0, /dev/tty) at any
	 * fd; other terminals (a /dev/ptmx of the job's own, another pty) are refused. */
	bool tty_given;
};

/** An rseq critical section descriptor (the kernel's struct rseq_cs, as read from the target). */
struct restore_rseq_cs {
	uint32_t version, flags;
	uint64_t start_ip, post_commit_offset, abort_ip;
};

/** The kernel's preemption fix-up of rseq, as the dump applies it to a frozen thread whose rseq
 *  area points at descriptor @cs: when @rip is inside the critical section [start_ip,
 *  start_ip + post_commit_offset), *ret_rip = abort_ip and 1 is returned (the caller clears
 *  rseq_cs); 0 (nothing to do) when it is outside. @sig_at_abort is the word at abort_ip - 4,
 *  @thread_sig the signature the thread registered. -EINVAL for what the kernel refuses (it
 *  kills the thread with SIGSEGV instead): version or flags not 0, addresses beyond the user
 *  address space or wrapping, abort_ip inside the section, or a signature mismatch. Pure. */
int restore_rseq_fixup(uint64_t rip, const struct restore_rseq_cs *cs, uint32_t sig_at_abort,
		       uint32_t thread_sig, uint64_t *ret_rip);

/** Dump the frozen process of @f into new checkpoint @id below the checkpoints directory
 *  @dirfd, atomically (restore_image_writer_*). The process stays frozen; the caller resumes it.
 *  Nothing the job would read is consumed (pipe and socket bytes are copied, docs/fds.md).
 *  -EOPNOTSUPP when an fd cannot be checkpointed (err->msg names the fd and its kind: an
 *  accepted TCP connection, a UDP socket, an fd in flight...) or a POSIX timer is aimed at a
 *  thread other than the main one (err->msg names the timer),
 *  -EEXIST if @id exists, -errno else. @opts and @ret_stats may be NULL. */
int restore_dump(struct restore_freeze *f, int dirfd, const char *id,
		 const struct restore_dump_opts *opts, struct restore_dump_stats *ret_stats,
		 struct restore_err *err);

/* ---- restore ---------------------------------------------------------------------------- */

/** An fd the caller hands over: the image's fd number @target gets (a dup of) @fd. */
struct restore_fd_map {
	int target;
	int fd;
};

struct restore_process_opts {
	const struct restore_fd_map *fds; /* inherited fds (pipes, the pty slave...) */
	size_t nfds;
	bool allow_changed; /* go on when any file's identity (dev, ino, size, mtime) changed */
	/* Go on when one of these files changed or was replaced: paths exactly as the image
	 * records them (canonical, absolute: /proc's view). */
	const char *const *allow_paths;
	size_t nallow_paths;
	bool no_verify;	    /* skip restore_image_verify() (page checksums) */
	int blob_err_fd;    /* where the blob reports a late failure: 0 means 2, -1 nowhere */
	/* > 0: a stream socket to the parent's restore_pages_check(), which checks the page
	 * checksums while the blob fills the pages (instead of restore_image_verify() first). */
	int check_fd;
	/* A directory that opens the job's vfs files by inode number ("DIR/INO"), unlinked ones
	 * included: a shared mapping of such a file unlinked while mapped is reopened there
	 * (without it, refused). */
	const char *vfs_ino_dir;
};

/** Rebuild the process of checkpoint @id below @dirfd, every thread of it, in the calling
 *  process and continue it where it was frozen: every mapping at its old address with its contents and
 *  protection, the vDSO moved to its old place, registers and xsave state, signal actions,
 *  mask and alternate stack, rlimits, cwd, umask, mm fields, rseq, itimers and POSIX timers
 *  (at their old ids, armed last; deadlines on CLOCK_MONOTONIC/BOOTTIME are absolute, so call
 *  restore_timens_enter() first for clocks that go on), fds at their old numbers
 *  (0/1/2 are kept as given unless @opts hands them over; regular files, directories and
 *  character devices are reopened by path when their identity is unchanged; pipes, FIFOs,
 *  unix socketpairs, unix and TCP listeners, eventfd, timerfd, signalfd, epoll and inotify are
 *  recreated from the image with their state, docs/fds.md; ttys, connected TCP sockets and
 *  pipes or sockets whose other end was outside the job must be handed over in @opts->fds).
 *  The caller must be single-threaded: call it in a fresh child.
 *  The other threads are cloned by the blob at their old tids when the caller runs at the
 *  image's pid (it needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE over the pid namespace), else
 *  at new ones.
 *  Never returns on success. Failures detected before the point of no return leave the
 *  process as it was (bar fds moved above the image's): -EOPNOTSUPP (an fd or mapping kind
 *  that cannot be restored yet: err->msg names it), -ESTALE (a file changed),
 *  -ENOEXEC (the CPU's xsave features or the vDSO do not fit), -EBUSY (caller has threads,
 *  or an old tid is taken), -EPERM (old tids cannot be set here), the
 *  errors of restore_image_load(). A failure after it (installing fds, signal actions) returns
 *  -errno with the process half-changed: exit. A failure inside the blob cannot return: it
 *  writes one line to blob_err_fd and exits with status RESTORE_BLOB_EXIT_STATUS. On a
 *  failure after the image's fds were installed, fd 2 is set back to a copy of blob_err_fd (of
 *  fd 2 without it), so a message the caller writes there is seen, not put in a job's file. */
int restore_process(int dirfd, const char *id, const struct restore_process_opts *opts,
		    struct restore_err *err);

#define RESTORE_BLOB_EXIT_STATUS 113

/** Whether checkpoint @id below @dirfd can run on this machine, before anything is started:
 *  the CPU's xsave features and layout and the kernel's [vvar]/[vvar_vclock]/[vdso] sizes
 *  (-ENOEXEC), and the identity of every file outside the job's /tmp that the process had
 *  open or mapped, exe and libraries included, in the caller's mount namespace (-ESTALE: a file
 *  changed, was replaced or is gone, unless @opts->allow_changed or listed in
 *  @opts->allow_paths). -ENOENT when an allow path is no file of the image. err->msg is one
 *  line naming the file. Only @opts' allow fields are used (may be NULL). Also the errors of
 *  restore_image_load(). */
int restore_image_check(int dirfd, const char *id, const struct restore_process_opts *opts,
			struct restore_err *err);

/** Name of a kind for messages ("anon-private", "eventfd"...). */
const char *restore_vma_kind_name(uint32_t kind);
const char *restore_fd_kind_name(uint32_t kind);

/* ---- time namespace (timens.c) ---------------------------------------------------------- */

/** The clocks recorded in checkpoint @id below @dirfd (restore_image_load()): *ret_mono and
 *  *ret_boot in ns. -ENODATA if the image has none (dumped by an older build or without
 *  syscall injection); the errors of restore_image_load() else. */
int restore_image_clocks(int dirfd, const char *id, uint64_t *ret_mono, uint64_t *ret_boot,
			 struct restore_err *err);

/** Move the calling process into a new time namespace: unshare(CLONE_NEWTIME), offsets
 *  written to /proc/self/timens_offsets so that CLOCK_MONOTONIC and CLOCK_BOOTTIME read
 *  @clocks[0] and @clocks[1] (ns) right now, then setns() into it. @clocks NULL: zero offsets
 *  (the host's clocks, a namespace of its own). Every later child is in it too. The caller
 *  must be single-threaded with CAP_SYS_ADMIN and CAP_SYS_TIME in its user namespace (root,
 *  or the job's init in its own user namespace). -EINVAL: no time namespaces in this kernel
 *  (CONFIG_TIME_NS), -EPERM, -ERANGE (a clock would go negative), -EUSERS (threads). */
int restore_timens_enter(const uint64_t clocks[2], struct restore_err *err);

#endif
