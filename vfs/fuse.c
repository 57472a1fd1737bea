/* The FUSE low-level operations: a thin translation between libfuse requests and the store.
 *
 * Reference counting (what keeps unlinked-open files alive): every reply that hands the kernel
 * an inode (lookup, mknod, mkdir, symlink, link, create, readdirplus entries) takes one store
 * reference, given back by FORGET with its count; open/create/opendir take one more, given back
 * by release/releasedir. A reference is taken before the reply is sent (a FORGET may race in
 * right after it), by the same store call that found or created the inode (the *_ref calls:
 * a separate vfs_store_ref would leave a window for unlink+FORGET to free it), and returned if
 * the reply fails (the kernel then holds nothing).
 *
 * Not implemented on purpose: xattrs (libfuse answers ENOSYS, which the kernel caches, so no
 * GETXATTR per write), flush (ENOSYS once, then the kernel stops sending FLUSH on every close:
 * with the writeback cache, close() itself still writes the dirty pages and times back
 * synchronously (write_inode_now) and reports their errors, and with no lock handlers FLUSH
 * has nothing else to do), lock handlers (the kernel keeps flock/fcntl locks locally), tmpfile
 * (3.14 has no such op: O_TMPFILE fails with EOPNOTSUPP), write_buf (no splice).
 *
 * The hidden directory /.ckptenv/ino/<ino> (synthetic, read-only, lookup only) is here too. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/ck.h"
#include "vfs/vfs-internal.h"

static struct vfs_store *req_store(fuse_req_t req)
{
	return ((struct vfs *)fuse_req_userdata(req))->store;
}

static bool is_ctl(fuse_ino_t ino)
{
	return (ino & VFS_CTL_FLAG) != 0;
}

static bool is_ctl_name(fuse_ino_t parent, const char *name)
{
	return parent == VFS_ROOT_INO && strcmp(name, VFS_CTL_DIRNAME) == 0;
}

static void attr_to_stat(const struct vfs_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)a->size;
	st->st_blocks = (blkcnt_t)a->blocks;
	st->st_blksize = VFS_CHUNK_SIZE;
	st->st_rdev = (dev_t)a->rdev;
	st->st_atim = a->atime;
	st->st_mtim = a->mtime;
	st->st_ctim = a->ctime;
}

static void ctl_attr(fuse_req_t req, fuse_ino_t ino, struct vfs_attr *a)
{
	const struct vfs *v = fuse_req_userdata(req);
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->generation = 1;
	a->mode = S_IFDIR | 0555;
	a->nlink = 2;
	a->atime = a->mtime = a->ctime = v->started;
}

/* The by-inode directory is for the restorer: the job's owner (the owner of the root) or root. */
static bool ctl_allowed(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	if (ctx->uid == 0 || ctx->uid == getuid())
		return true;
	struct vfs_attr root;
	return vfs_store_getattr(req_store(req), VFS_ROOT_INO, &root) >= 0 && root.uid == ctx->uid;
}

static void reply_error(fuse_req_t req, int r)
{
	fuse_reply_err(req, r < 0 ? -r : 0);
}

static void fill_entry(const struct vfs_attr *a, double entry_timeout, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = a->ino;
	e->generation = a->generation;
	attr_to_stat(a, &e->attr);
	e->attr_timeout = VFS_TIMEOUT;
	e->entry_timeout = entry_timeout;
}

/* Hand @a to the kernel with the one store reference the caller took along with @a (in the same
 * store call: see vfs_store_lookup_ref); it is given back if the reply fails. */
static void reply_entry_ref(fuse_req_t req, const struct vfs_attr *a, double entry_timeout)
{
	struct fuse_entry_param e;
	fill_entry(a, entry_timeout, &e);
	if (fuse_reply_entry(req, &e) != 0)
		vfs_store_unref(req_store(req), a->ino, 1);
}

static void reply_ctl_entry(fuse_req_t req, fuse_ino_t ino)
{
	struct vfs_attr a;
	struct fuse_entry_param e;
	ctl_attr(req, ino, &a);
	fill_entry(&a, VFS_TIMEOUT, &e);
	fuse_reply_entry(req, &e);
}

static int parse_ino(const char *name, uint64_t *ret)
{
	if (name[0] < '1' || name[0] > '9')
		return -ENOENT;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(name, &end, 10);
	if (errno || *end || (v & VFS_CTL_FLAG))
		return -ENOENT;
	*ret = v;
	return 0;
}

static void ctl_lookup_ino(fuse_req_t req, const char *name)
{
	if (!ctl_allowed(req))
		return reply_error(req, -EACCES);
	uint64_t ino;
	struct vfs_attr a;
	int r = parse_ino(name, &ino);
	if (r >= 0)
		r = vfs_store_getattr_ref(req_store(req), ino, 1, &a);
	/* A directory must keep its single dentry: a second one would make the kernel move it. */
	if (r >= 0 && S_ISDIR(a.mode)) {
		vfs_store_unref(req_store(req), ino, 1);
		r = -ENOENT;
	}
	if (r < 0)
		return reply_error(req, r);
	/* Entry timeout 0: the name is re-resolved each time, so no dentry pins the inode. */
	reply_entry_ref(req, &a, 0.0);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_WRITEBACK_CACHE)
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	/* No libfuse splicing (loop.c reads the device itself and splices large WRITEs on its
	 * own terms); no lock handlers (the kernel keeps locks); the kernel itself clears
	 * suid/sgid on write, truncate and chown (we do not claim HANDLE_KILLPRIV). */
	conn->want &=
		~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE |
			    FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS | FUSE_CAP_HANDLE_KILLPRIV);
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	conn->max_write = VFS_MAX_WRITE; /* fits a worker's pipe: see vfs-internal.h */
	conn->max_readahead = 8u << 20;	 /* as offered: the bdi read_ahead_kb, see mount.c */
	conn->time_gran = 1;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (is_ctl_name(parent, name))
		return reply_ctl_entry(req, VFS_CTL_ROOT);
	if (parent == VFS_CTL_ROOT) {
		if (strcmp(name, VFS_CTL_INODIR) == 0)
			return reply_ctl_entry(req, VFS_CTL_BYINO);
		return reply_error(req, -ENOENT);
	}
	if (parent == VFS_CTL_BYINO)
		return ctl_lookup_ino(req, name);

	struct vfs_attr a;
	int r = vfs_store_lookup_ref(req_store(req), parent, name, 1, &a);
	if (r == -ENOENT) {
		/* A negative entry the kernel may cache: names appear only through us. */
		struct fuse_entry_param e = {.entry_timeout = VFS_TIMEOUT};
		fuse_reply_entry(req, &e);
		return;
	}
	if (r < 0)
		return reply_error(req, r);
	reply_entry_ref(req, &a, VFS_TIMEOUT);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	if (!is_ctl(ino))
		vfs_store_unref(req_store(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct vfs_store *s = req_store(req);
	for (size_t i = 0; i < count; i++)
		if (!is_ctl(forgets[i].ino))
			vfs_store_unref(s, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static int get_attr(fuse_req_t req, fuse_ino_t ino, struct vfs_attr *a)
{
	if (is_ctl(ino)) {
		ctl_attr(req, ino, a);
		return 0;
	}
	return vfs_store_getattr(req_store(req), ino, a);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	struct vfs_attr a;
	struct stat st;
	int r = get_attr(req, ino, &a);
	if (r < 0)
		return reply_error(req, r);
	attr_to_stat(&a, &st);
	fuse_reply_attr(req, &st, VFS_TIMEOUT);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	(void)fi; /* the size of an open file is the size of its inode */
	if (is_ctl(ino))
		return reply_error(req, -EPERM);

	const unsigned known = VFS_SET_MODE | VFS_SET_UID | VFS_SET_GID | VFS_SET_SIZE |
			       VFS_SET_ATIME | VFS_SET_MTIME | VFS_SET_ATIME_NOW |
			       VFS_SET_MTIME_NOW | VFS_SET_CTIME;
	unsigned set = (unsigned)to_set & known;
	struct vfs_attr a = {
		.ino = ino,
		.mode = attr->st_mode,
		.uid = attr->st_uid,
		.gid = attr->st_gid,
		.size = (uint64_t)attr->st_size,
		.atime = attr->st_atim,
		.mtime = attr->st_mtim,
		.ctime = attr->st_ctim,
	};
	/* UTIME_NOW arrives as a flag: resolve it here so the store sees plain times too. */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME_COARSE, &now); /* the store's clock: see store_now */
	if (set & VFS_SET_ATIME_NOW) {
		a.atime = now;
		set |= VFS_SET_ATIME;
	}
	if (set & VFS_SET_MTIME_NOW) {
		a.mtime = now;
		set |= VFS_SET_MTIME;
	}
	/* A size change without a time: truncate(2) by path. The kernel's writeback cache keeps
	 * the mtime it shows the job (ftruncate sends its own), so the store keeps it too, or the
	 * next run would see another one. */
	struct vfs_attr cur;
	if ((set & VFS_SET_SIZE) && !(set & VFS_SET_MTIME) &&
	    vfs_store_getattr(req_store(req), ino, &cur) == 0) {
		a.mtime = cur.mtime;
		set |= VFS_SET_MTIME;
	}

	struct vfs_attr out;
	struct stat st;
	int r = vfs_store_setattr(req_store(req), ino, &a, set, &out);
	if (r < 0)
		return reply_error(req, r);
	attr_to_stat(&out, &st);
	fuse_reply_attr(req, &st, VFS_TIMEOUT);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[VFS_SYMLINK_MAX + 1];
	if (is_ctl(ino))
		return reply_error(req, -EINVAL);
	int r = vfs_store_readlink(req_store(req), ino, buf, sizeof(buf));
	if (r < 0)
		return reply_error(req, r);
	fuse_reply_readlink(req, buf);
}

/* Checks shared by every operation that creates or removes a name. */
static int check_namespace_change(fuse_ino_t parent, const char *name)
{
	if (is_ctl(parent))
		return -EPERM;
	if (is_ctl_name(parent, name))
		return -EEXIST;
	return 0;
}

/* Create @name in @parent owned by the caller, taking @nref references on the new inode;
 * sgid directories pass their group on. */
static int make_node(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev,
		     const char *target, uint64_t nref, struct vfs_attr *ret)
{
	int r = check_namespace_change(parent, name);
	if (r < 0)
		return r;

	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	if (!S_ISLNK(mode))
		mode = (mode & S_IFMT) | (mode & 07777 & ~ctx->umask);
	return vfs_store_mknod_ref(req_store(req), parent, name, mode, rdev, ctx->uid, ctx->gid,
				   target, VFS_MKNOD_INHERIT_SGID, nref, ret);
}

static void reply_made(fuse_req_t req, int r, const struct vfs_attr *a)
{
	if (r < 0)
		return reply_error(req, r);
	reply_entry_ref(req, a, VFS_TIMEOUT);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct vfs_attr a;
	if (!S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode) && !S_ISCHR(mode) &&
	    !S_ISBLK(mode))
		return reply_error(req, -EINVAL);
	reply_made(req, make_node(req, parent, name, mode, rdev, NULL, 1, &a), &a);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct vfs_attr a;
	mode = S_IFDIR | (mode & 07777);
	reply_made(req, make_node(req, parent, name, mode, 0, NULL, 1, &a), &a);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct vfs_attr a;
	if (strlen(link) > VFS_SYMLINK_MAX)
		return reply_error(req, -ENAMETOOLONG);
	reply_made(req, make_node(req, parent, name, S_IFLNK | 0777, 0, link, 1, &a), &a);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (is_ctl(parent) || is_ctl_name(parent, name))
		return reply_error(req, -EPERM);
	reply_error(req, vfs_store_unlink(req_store(req), parent, name));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (is_ctl(parent) || is_ctl_name(parent, name))
		return reply_error(req, -EPERM);
	reply_error(req, vfs_store_rmdir(req_store(req), parent, name));
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return reply_error(req, -EINVAL);
	if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
		return reply_error(req, -EINVAL);
	if (is_ctl(parent) || is_ctl(newparent) || is_ctl_name(parent, name) ||
	    is_ctl_name(newparent, newname))
		return reply_error(req, -EPERM);
	reply_error(req, vfs_store_rename(req_store(req), parent, name, newparent, newname, flags));
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct vfs_attr a;
	int r = is_ctl(ino) ? -EPERM : check_namespace_change(newparent, newname);
	if (r >= 0)
		r = vfs_store_link_ref(req_store(req), ino, newparent, newname, 1, &a);
	reply_made(req, r, &a);
}

/* O_TRUNC arrives with open (libfuse's default ATOMIC_O_TRUNC saves a SETATTR round trip). */
static int truncate_on_open(struct vfs_store *s, fuse_ino_t ino, int flags)
{
	if (!(flags & O_TRUNC))
		return 0;
	struct vfs_attr a = {.ino = ino, .size = 0}, out;
	return vfs_store_setattr(s, ino, &a, VFS_SET_SIZE, &out);
}

static void set_open_flags(struct fuse_file_info *fi)
{
	/* Page cache kept across opens; never direct_io: MAP_SHARED must work (SQLite WAL). */
	fi->keep_cache = 1;
	fi->direct_io = 0;
	fi->fh = 0;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vfs_store *s = req_store(req);
	if (is_ctl(ino))
		return reply_error(req, -EISDIR);
	int r = truncate_on_open(s, ino, fi->flags);
	if (r < 0)
		return reply_error(req, r);
	set_open_flags(fi);
	vfs_store_ref(s, ino, 1);
	bool writer = (fi->flags & O_ACCMODE) != O_RDONLY;
	if (writer)
		vfs_writers_add(fuse_req_userdata(req), ino);
	if (fuse_reply_open(req, fi) != 0) {
		vfs_store_unref(s, ino, 1);
		if (writer)
			vfs_writers_del(fuse_req_userdata(req), ino);
	}
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct vfs_store *s = req_store(req);
	struct vfs_attr a;
	if ((fi->flags & O_TMPFILE) == O_TMPFILE)
		return reply_error(req, -EOPNOTSUPP);
	mode = S_IFREG | (mode & 07777);
	/* Two references: the entry and the open file. */
	int r = make_node(req, parent, name, mode, 0, NULL, 2, &a);
	if (r == -EEXIST && !(fi->flags & O_EXCL) && !is_ctl_name(parent, name)) {
		/* Only reachable if the kernel's view lagged; open what is there. */
		r = vfs_store_lookup_ref(s, parent, name, 2, &a);
		if (r >= 0) {
			if (S_ISDIR(a.mode))
				r = -EISDIR;
			else if (truncate_on_open(s, a.ino, fi->flags) >= 0)
				r = vfs_store_getattr(s, a.ino, &a);
			if (r < 0)
				vfs_store_unref(s, a.ino, 2);
		}
	}
	if (r < 0)
		return reply_error(req, r);

	struct fuse_entry_param e;
	fill_entry(&a, VFS_TIMEOUT, &e);
	set_open_flags(fi);
	bool writer = (fi->flags & O_ACCMODE) != O_RDONLY;
	if (writer)
		vfs_writers_add(fuse_req_userdata(req), a.ino);
	if (fuse_reply_create(req, &e, fi) != 0) {
		vfs_store_unref(s, a.ino, 2);
		if (writer)
			vfs_writers_del(fuse_req_userdata(req), a.ino);
	}
}

/* A reply buffer per worker thread, kept: a fresh 1 MiB malloc per READ is an mmap, 256 page
 * faults and an munmap each time. Freed when the worker exits. */
static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;

static void buf_key_init(void)
{
	pthread_key_create(&buf_key, free);
}

struct thread_buf {
	size_t cap;
	char data[];
};

static char *thread_buf(size_t size)
{
	pthread_once(&buf_once, buf_key_init);
	struct thread_buf *b = pthread_getspecific(buf_key);
	if (b && b->cap >= size)
		return b->data;
	size_t cap = CK_MAX(size, (size_t)1 << 20);
	struct thread_buf *nb = malloc(sizeof(*nb) + cap);
	if (!nb)
		return NULL;
	nb->cap = cap;
	if (pthread_setspecific(buf_key, nb) != 0) {
		free(nb);
		return NULL;
	}
	free(b);
	return nb->data;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)fi;
	char *buf = thread_buf(size);
	if (!buf)
		return reply_error(req, -ENOMEM);
	ssize_t n = vfs_store_read(req_store(req), ino, buf, size, off);
	if (n < 0)
		return reply_error(req, (int)n);
	fuse_reply_buf(req, buf, (size_t)n);
}

/* WRITE data comes either in memory or, when the worker spliced the request (loop.c), in a
 * pipe: the store then splices it on into the layer file, which saves the copy through our
 * memory (a third of the daemon's time in a 1 GiB sequential write). Whatever a failed write
 * leaves in the pipe, the worker drains. */
static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv, off_t off,
			 struct fuse_file_info *fi)
{
	/* O_APPEND: with the writeback cache the kernel picks the offset itself */
	unsigned flags = fi->writepage ? VFS_STORE_KERNEL_TIMES : 0;
	struct vfs *v = fuse_req_userdata(req);
	size_t len = fuse_buf_size(bufv);
	ssize_t n = 0;
	const struct fuse_buf *b = &bufv->buf[bufv->idx];
	if (bufv->count == 1 && (b->flags & FUSE_BUF_IS_FD) && !(b->flags & FUSE_BUF_FD_SEEK)) {
		n = vfs_store_write_pipe(v->store, ino, b->fd, len, off, flags);
		if (n < 0)
			return reply_error(req, (int)n);
		if (n > 0) {
			bufv->idx = bufv->count;
			bufv->off = 0;
			__atomic_add_fetch(&v->io.write_bytes_spliced, (uint64_t)n,
					   __ATOMIC_RELAXED);
			fuse_reply_write(req, (size_t)n);
			return;
		}
	}
	const char *data;
	if (bufv->count == 1 && !(b->flags & FUSE_BUF_IS_FD)) {
		data = (const char *)b->mem + bufv->off;
		bufv->idx = bufv->count;
		bufv->off = 0;
	} else {
		char *buf = thread_buf(len);
		if (!buf)
			return reply_error(req, -ENOMEM);
		struct fuse_bufvec dst = FUSE_BUFVEC_INIT(len);
		dst.buf[0].mem = buf;
		ssize_t got = fuse_buf_copy(&dst, bufv, 0);
		if (got < 0)
			return reply_error(req, (int)got);
		if ((size_t)got != len)
			return reply_error(req, -EIO);
		data = buf;
	}
	n = vfs_store_write(v->store, ino, data, len, off, flags);
	if (n < 0)
		return reply_error(req, (int)n);
	__atomic_add_fetch(&v->io.write_bytes_copied, (uint64_t)n, __ATOMIC_RELAXED);
	fuse_reply_write(req, (size_t)n);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		vfs_writers_del(fuse_req_userdata(req), ino);
	vfs_store_unref(req_store(req), ino, 1);
	fuse_reply_err(req, 0);
}

/* Durability is per epoch (vfs_epoch_commit), not per fsync: a crash goes back to the last
 * committed epoch anyway, so fsync has nothing to promise. */
static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vfs_store *s = req_store(req);
	fi->fh = 0;
	if (is_ctl(ino)) {
		fuse_reply_open(req, fi);
		return;
	}
	fi->cache_readdir = 1;
	vfs_store_ref(s, ino, 1);
	if (fuse_reply_open(req, fi) != 0)
		vfs_store_unref(s, ino, 1);
}

struct dir_fill {
	fuse_req_t req;
	struct vfs_store *s;
	bool plus;
	char *buf;
	size_t size;
	size_t used;
	uint64_t *refs; /* inodes of the readdirplus entries: one reference each */
	size_t n_refs;
	size_t cap_refs;
};

static bool is_dot(const char *name)
{
	return name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0));
}

static int fill_one(void *ctx, const char *name, const struct vfs_attr *attr, uint64_t next)
{
	struct dir_fill *d = ctx;
	size_t room = d->size - d->used, need;
	if (d->plus) {
		if (!is_dot(name) && d->n_refs == d->cap_refs) {
			size_t cap = d->cap_refs ? 2 * d->cap_refs : 32;
			uint64_t *p = realloc(d->refs, cap * sizeof(*p));
			if (!p)
				return 1;
			d->refs = p;
			d->cap_refs = cap;
		}
		struct fuse_entry_param e;
		fill_entry(attr, VFS_TIMEOUT, &e);
		need = fuse_add_direntry_plus(d->req, d->buf + d->used, room, name, &e,
					      (off_t)next);
		if (need > room)
			return 1;
		/* The kernel counts a lookup for every entry but "." and ".."; the store takes
		 * those references itself as each entry is consumed (vfs_store_readdir_ref);
		 * they are recorded here to be given back if the reply fails. */
		if (!is_dot(name))
			d->refs[d->n_refs++] = attr->ino;
	} else {
		struct stat st;
		attr_to_stat(attr, &st);
		need = fuse_add_direntry(d->req, d->buf + d->used, room, name, &st, (off_t)next);
		if (need > room)
			return 1;
	}
	d->used += need;
	return 0;
}

/* The synthetic directories list only "." and "..": their names are lookup-only. */
static int ctl_readdir(struct dir_fill *d, fuse_ino_t ino, off_t off)
{
	struct vfs_attr a;
	ctl_attr(d->req, ino, &a);
	if (off < 1 && fill_one(d, ".", &a, 1))
		return 0;
	if (off < 2)
		fill_one(d, "..", &a, 2);
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
	struct dir_fill d = {.req = req, .s = req_store(req), .plus = plus, .size = size};
	_cleanup_free_ char *buf = d.buf = malloc(size ? size : 1);
	if (!buf)
		return reply_error(req, -ENOMEM);
	int r;
	if (is_ctl(ino))
		r = ctl_readdir(&d, ino, off);
	else
		r = vfs_store_readdir_ref(d.s, ino, (uint64_t)off, plus, fill_one, &d);
	if (r < 0 && d.used == 0) {
		free(d.refs);
		return reply_error(req, r);
	}
	if (fuse_reply_buf(req, buf, d.used) != 0) {
		for (size_t i = 0; i < d.n_refs; i++)
			vfs_store_unref(d.s, d.refs[i], 1);
	}
	free(d.refs);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	if (!is_ctl(ino))
		vfs_store_unref(req_store(req), ino, 1);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	op_fsync(req, ino, datasync, fi);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	struct statvfs st;
	int r = vfs_store_statfs(req_store(req), &st);
	if (r < 0)
		return reply_error(req, r);
	fuse_reply_statfs(req, &st);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			 struct fuse_file_info *fi)
{
	(void)fi;
	if (is_ctl(ino))
		return reply_error(req, -EPERM);
	reply_error(req, vfs_store_fallocate(req_store(req), ino, mode, offset, length));
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	(void)fi;
	off_t pos;
	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return reply_error(req, -EINVAL);
	/* The kernel asks without writing back its dirty pages first (fuse_lseek): bytes still
	 * in the writeback cache would be a hole here, or past our size (ENXIO). Invalidating the
	 * inode's pages writes the dirty ones back first (the kernel's launder: WRITEs that
	 * another worker serves while this one waits, the standby taking over the reader role).
	 * The price, clean pages dropped too, is paid only by the rare SEEK_DATA/SEEK_HOLE. */
	struct vfs *v = fuse_req_userdata(req);
	int e = fuse_lowlevel_notify_inval_inode(v->se, ino, 0, 0);
	if (e < 0 && e != -ENOENT)
		return reply_error(req, e);
	int r = vfs_store_lseek(req_store(req), ino, off, whence, &pos);
	if (r < 0)
		return reply_error(req, r);
	fuse_reply_lseek(req, pos);
}

/* A plain copy through the store, a chunk-sized buffer at a time (the kernel has already
 * written back the dirty pages of both ranges, and drops the destination's afterwards). */
static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	(void)fi_in;
	(void)fi_out;
	if (flags != 0)
		return reply_error(req, -EINVAL);
	struct vfs_store *s = req_store(req);
	const size_t step = 16 * VFS_CHUNK_SIZE;
	_cleanup_free_ char *buf = malloc(step);
	if (!buf)
		return reply_error(req, -ENOMEM);
	size_t done = 0;
	while (done < len) {
		size_t want = CK_MIN(step, len - done);
		ssize_t n = vfs_store_read(s, ino_in, buf, want, off_in + (off_t)done);
		if (n <= 0) {
			if (n < 0 && done == 0)
				return reply_error(req, (int)n);
			break;
		}
		ssize_t w = vfs_store_write(s, ino_out, buf, (size_t)n, off_out + (off_t)done,
					      VFS_STORE_KERNEL_TIMES); /* it updates them */
		if (w < 0) {
			if (done == 0)
				return reply_error(req, (int)w);
			break;
		}
		done += (size_t)n;
		if ((size_t)n < want)
			break;
	}
	fuse_reply_write(req, done);
}

const struct fuse_lowlevel_ops vfs_fuse_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.read = op_read,
	.write_buf = op_write_buf,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.create = op_create,
	.fallocate = op_fallocate,
	.lseek = op_lseek,
	.copy_file_range = op_copy_file_range,
	/* flush, getxattr/setxattr/listxattr/removexattr, access, getlk/setlk/flock, ioctl,
	 * poll, bmap: absent, so libfuse answers ENOSYS (see the top of this file). */
};
