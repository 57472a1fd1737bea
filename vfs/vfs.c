/* The public vfs API: open/close the store, serve the FUSE session, commit epochs.
 *
 * Serving: the worker threads of loop.c read /dev/fuse and hand each request to libfuse's
 * dispatch; they end by themselves when the job's mount is gone (ENODEV), and vfs_close stops
 * them while the job still runs. Only they have VFS_WAKE_SIGNAL unblocked. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/grow.h"
#include "common/ck.h"
#include "vfs/vfs-internal.h"

static __thread char last_error[512];

void vfs_set_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

const char *vfs_last_error(void)
{
	return last_error;
}

static void set_store_error(const char *what, const char *msg, int r)
{
	if (msg && *msg)
		vfs_set_error("%s: %s", what, msg);
	else
		vfs_set_error("%s: %s", what, strerror(-r));
}

/* vfs_options.keep_head: the head, unless it is @from or another ref names it, gets a
 * snapshot's ref before the first commit over @from moves the head away from it. */
static int keep_head(struct vfs *v, uint64_t from)
{
	uint64_t head;
	if (vfs_store_head_kept_elsewhere(v->store, &head) || head == 0 || head == from)
		return 0;
	char ref[64];
	snprintf(ref, sizeof(ref), "snap-%llu", (unsigned long long)head);
	int r = vfs_store_ref_set(v->store, ref, head);
	if (r == 0)
		v->kept_head = head;
	return r;
}

uint64_t vfs_kept_head(const struct vfs *v)
{
	return v->kept_head;
}

int vfs_open(const struct vfs_options *o, struct vfs **ret)
{
	if (!o || !o->store_dir || !ret)
		return -EINVAL;

	_cleanup_free_ struct vfs *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	unsigned flags = VFS_STORE_CREATE | (o->keep_orphans ? VFS_STORE_KEEP_ORPHANS : 0);
	int r = vfs_store_open(o->store_dir, flags, o->from_epoch, &v->store);
	if (r < 0) {
		const char *msg = vfs_store_open_error();
		/* The store's own messages mostly start with its path: not twice. */
		if (msg && !strncmp(msg, o->store_dir, strlen(o->store_dir)))
			vfs_set_error("%s", msg);
		else
			set_store_error(o->store_dir, msg, r);
		return r;
	}
	if (o->keep_head && o->from_epoch && (r = keep_head(v, o->from_epoch)) < 0) {
		vfs_set_error("%s: cannot keep the newest state as a snapshot: %s", o->store_dir,
			      strerror(-r));
		vfs_store_close(v->store);
		return r;
	}
	v->max_threads = o->max_threads ? o->max_threads : VFS_DEFAULT_THREADS;
	pthread_mutex_init(&v->stats_lock, NULL);
	pthread_mutex_init(&v->writers_lock, NULL);
	clock_gettime(CLOCK_REALTIME, &v->started);
	*ret = TAKE_PTR(v);
	return 0;
}

/* CKPTENV_VFS_TRACE=1 in the serving process's environment: libfuse's own request trace
 * ("-d": one line per request and reply, opcodes named) goes to stderr. For profiling only. */
static bool trace_requests(void)
{
	const char *e = getenv("CKPTENV_VFS_TRACE");
	return e && *e && strcmp(e, "0") != 0;
}

static void fuse_log_to_stderr(enum fuse_log_level level, const char *fmt, va_list ap)
{
	(void)level;
	vfprintf(stderr, fmt, ap);
}

/* libfuse logs to stderr by default; a library must not write into the job's terminal. */
static void fuse_log_to_debug(enum fuse_log_level level, const char *fmt, va_list ap)
{
	if (level > FUSE_LOG_ERR)
		return;
	char line[256];
	vsnprintf(line, sizeof(line), fmt, ap);
	ck_debug("vfs: libfuse: %s", line);
}

int vfs_serve(struct vfs *v, int fuse_fd)
{
	_cleanup_close_ int fd = fuse_fd;
	if (!v || fd < 0)
		return -EINVAL;
	if (v->se)
		return -EBUSY;

	bool trace = trace_requests();
	fuse_set_log_func(trace ? fuse_log_to_stderr : fuse_log_to_debug);
	char *argv[] = {"ckptenv", trace ? "-d" : NULL, NULL};
	struct fuse_args args = FUSE_ARGS_INIT(trace ? 2 : 1, argv);
	struct fuse_session *se = fuse_session_new(&args, &vfs_fuse_ops, sizeof(vfs_fuse_ops), v);
	fuse_opt_free_args(&args);
	if (!se)
		return -ENOMEM;

	/* libfuse >= 3.3 takes an already mounted descriptor as "/dev/fd/N"; from here on the
	 * session owns the descriptor (fuse_session_destroy closes it). */
	char path[32];
	snprintf(path, sizeof(path), "/dev/fd/%d", fd);
	if (fuse_session_mount(se, path) != 0) {
		fuse_session_destroy(se);
		return -EINVAL;
	}
	fd = -1;
	v->se = se;

	int r = vfs_loop_start(v);
	if (r < 0) {
		fuse_session_destroy(se);
		v->se = NULL;
		return r;
	}
	return 0;
}

static void stop_serving(struct vfs *v)
{
	if (!v->se)
		return;
	vfs_loop_stop(v);
	fuse_session_destroy(v->se);
	v->se = NULL;
}

struct vfs_commit {
	struct vfs_store_commit *c;
};

void vfs_writers_add(struct vfs *v, uint64_t ino)
{
	pthread_mutex_lock(&v->writers_lock);
	size_t i;
	for (i = 0; i < v->n_writers && v->writers[i].ino != ino; i++)
		;
	if (i == v->n_writers) {
		if (CK_GROW(v->writers, v->cap_writers, v->n_writers + 1) < 0) {
			/* Not tracked: a commit then relies on syncfs alone for it. */
			pthread_mutex_unlock(&v->writers_lock);
			return;
		}
		v->writers[v->n_writers++] = (struct vfs_writer){.ino = ino};
	}
	v->writers[i].count++;
	pthread_mutex_unlock(&v->writers_lock);
}

void vfs_writers_del(struct vfs *v, uint64_t ino)
{
	pthread_mutex_lock(&v->writers_lock);
	for (size_t i = 0; i < v->n_writers; i++) {
		if (v->writers[i].ino != ino)
			continue;
		if (--v->writers[i].count == 0)
			v->writers[i] = v->writers[--v->n_writers];
		break;
	}
	pthread_mutex_unlock(&v->writers_lock);
}

/* The inodes open for writing now (vfs_flush_mount fsyncs them). *ret NULL when none. */
static int writer_inodes(struct vfs *v, uint64_t **ret, size_t *ret_n)
{
	pthread_mutex_lock(&v->writers_lock);
	size_t n = v->n_writers;
	uint64_t *inos = n ? malloc(n * sizeof(*inos)) : NULL;
	if (n && !inos) {
		pthread_mutex_unlock(&v->writers_lock);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		inos[i] = v->writers[i].ino;
	pthread_mutex_unlock(&v->writers_lock);
	*ret = inos;
	*ret_n = n;
	return 0;
}

int vfs_epoch_prepare(struct vfs *v, int mount_fd, struct vfs_commit **ret)
{
	if (!v || !ret)
		return -EINVAL;
	/* syncfs drains the writeback cache and dirty MAP_SHARED pages as WRITE requests,
	 * which our workers apply to the store before syncfs returns. */
	uint64_t t0 = ck_now_ns();
	if (mount_fd >= 0) {
		_cleanup_free_ uint64_t *inos = NULL;
		size_t n = 0;
		int r = writer_inodes(v, &inos, &n);
		if (r < 0 || (r = vfs_flush_mount(mount_fd, inos, n)) < 0)
			return r;
	}
	uint64_t t1 = ck_now_ns();
	_cleanup_free_ struct vfs_commit *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	int r = vfs_store_commit_prepare(v->store, &c->c);
	if (r < 0) {
		set_store_error("commit", vfs_store_last_error(v->store), r);
		return r;
	}
	pthread_mutex_lock(&v->stats_lock);
	v->last_syncfs_ns = t1 - t0;
	v->last_syncfs_epoch = vfs_store_commit_epoch(c->c);
	pthread_mutex_unlock(&v->stats_lock);
	*ret = TAKE_PTR(c);
	return 0;
}

uint64_t vfs_commit_epoch(const struct vfs_commit *c)
{
	return c ? vfs_store_commit_epoch(c->c) : 0;
}

int vfs_epoch_finish(struct vfs *v, struct vfs_commit *c, const char *ref)
{
	if (!v || !c)
		return -EINVAL;
	int r = vfs_store_commit_finish(v->store, c->c, ref);
	if (r < 0)
		set_store_error("commit", vfs_store_last_error(v->store), r);
	free(c);
	return r;
}

void vfs_last_commit_stats(struct vfs *v, struct vfs_commit_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (!v)
		return;
	vfs_store_last_commit_stats(v->store, ret);
	pthread_mutex_lock(&v->stats_lock);
	if (ret->epoch && ret->epoch == v->last_syncfs_epoch)
		ret->syncfs_ns = v->last_syncfs_ns;
	pthread_mutex_unlock(&v->stats_lock);
}

void vfs_epoch_abort(struct vfs *v, struct vfs_commit *c)
{
	if (!c)
		return;
	if (v)
		vfs_store_commit_abort(v->store, c->c);
	free(c);
}

int vfs_epoch_commit(struct vfs *v, int mount_fd, const char *ref, uint64_t *ret_epoch)
{
	struct vfs_commit *c;
	int r = vfs_epoch_prepare(v, mount_fd, &c);
	if (r < 0)
		return r;
	uint64_t epoch = vfs_commit_epoch(c);
	r = vfs_epoch_finish(v, c, ref);
	if (r < 0)
		return r;
	if (ret_epoch)
		*ret_epoch = epoch;
	return 0;
}

void vfs_io_stats(struct vfs *v, struct vfs_io_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (!v)
		return;
	ret->write_bytes_spliced = __atomic_load_n(&v->io.write_bytes_spliced, __ATOMIC_RELAXED);
	ret->write_bytes_copied = __atomic_load_n(&v->io.write_bytes_copied, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < VFS_OPCODES; i++)
		ret->requests[i] = __atomic_load_n(&v->io.requests[i], __ATOMIC_RELAXED);
}

int vfs_refs_list(const char *store_dir, struct vfs_ref **ret, size_t *ret_n)
{
	if (!store_dir || !ret || !ret_n)
		return -EINVAL;
	return vfs_store_refs_read(store_dir, ret, ret_n);
}

int vfs_epoch_check(const char *store_dir, uint64_t epoch, char *err, size_t errlen)
{
	if (!store_dir || !epoch || !err || !errlen)
		return -EINVAL;
	return vfs_store_epoch_check(store_dir, epoch, err, errlen);
}

int vfs_ref_drop(struct vfs *v, const char *ref)
{
	if (!v || !ref)
		return -EINVAL;
	return vfs_store_ref_drop(v->store, ref);
}

void vfs_orphans_release(struct vfs *v)
{
	if (v)
		vfs_store_orphans_release(v->store);
}

int vfs_inode_path(uint64_t ino, char *buf, size_t len)
{
	if (ino == 0 || (ino & VFS_CTL_FLAG) || !buf)
		return -EINVAL;
	int n = snprintf(buf, len, VFS_INODE_DIR "/%llu",
			 (unsigned long long)ino);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

int vfs_close(struct vfs *v, bool commit_head)
{
	if (!v)
		return 0;
	/* Stop first: the committed head is then exactly what the job last saw. */
	stop_serving(v);
	int r = 0;
	if (commit_head) {
		vfs_store_last_commit(v->store);
		r = vfs_epoch_commit(v, -1, NULL, NULL);
	}
	vfs_store_close(v->store);
	pthread_mutex_destroy(&v->stats_lock);
	pthread_mutex_destroy(&v->writers_lock);
	free(v->writers);
	free(v);
	return r;
}
