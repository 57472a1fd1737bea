/* Namespace operations: lookup, attributes, create, link, unlink, rename, readdir. Directory
 * changes run under the write lock, so each one is atomic for every other caller (mknod's
 * -EEXIST is what O_EXCL relies on). Permission checks are the kernel's (default_permissions). */
#include "vfs/store-private.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/statvfs.h>

#define RENAME_NOREPLACE_ (1u << 0)
#define RENAME_EXCHANGE_  (1u << 1)

static int name_check(const char *name, size_t *ret_len)
{
	size_t len = strnlen(name, VFS_NAME_MAX + 1);
	if (len == 0)
		return -ENOENT;
	if (len > VFS_NAME_MAX)
		return -ENAMETOOLONG;
	if (memchr(name, '/', len))
		return -EINVAL;
	*ret_len = len;
	return 0;
}

static bool is_dot(const char *name)
{
	return !strcmp(name, ".") || !strcmp(name, "..");
}

/* The directory inode @ino, or -ENOENT / -ENOTDIR. */
static int get_dir(struct vfs_store *s, uint64_t ino, struct store_inode **ret)
{
	struct store_inode *n = inode_get(s, ino);
	if (!n)
		return -ENOENT;
	if (!S_ISDIR(n->mode) || !n->dir)
		return -ENOTDIR;
	*ret = n;
	return 0;
}

static void attr_locked(struct store_inode *n, struct vfs_attr *a)
{
	pthread_mutex_lock(&n->lock);
	inode_fill_attr(n, a);
	pthread_mutex_unlock(&n->lock);
}

static void touch_dir(struct vfs_store *s, struct store_inode *d, const struct timespec *now)
{
	d->mtime = d->ctime = *now;
	inode_mark_dirty(s, d);
}

/* After nlink dropped: free the inode unless something still holds it. Write lock held. */
static void maybe_release(struct vfs_store *s, struct store_inode *n)
{
	if (n->nlink == 0 && n->refs == 0 && !n->pinned)
		inode_release(s, n);
}

/* Fill @ret from @n and take @nref references, under n->lock (the namespace lock held). */
static void attr_ref_locked(struct store_inode *n, uint64_t nref, struct vfs_attr *a)
{
	pthread_mutex_lock(&n->lock);
	inode_fill_attr(n, a);
	n->refs += nref;
	pthread_mutex_unlock(&n->lock);
}

int vfs_store_lookup(struct vfs_store *s, uint64_t parent, const char *name, struct vfs_attr *ret)
{
	return vfs_store_lookup_ref(s, parent, name, 0, ret);
}

int vfs_store_lookup_ref(struct vfs_store *s, uint64_t parent, const char *name, uint64_t nref,
			 struct vfs_attr *ret)
{
	size_t len;
	int r = name_check(name, &len);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&s->ns);
	struct store_inode *d, *n = NULL;
	r = get_dir(s, parent, &d);
	if (r == 0) {
		uint64_t ino = 0;
		if (!strcmp(name, "."))
			ino = d->ino;
		else if (!strcmp(name, ".."))
			ino = d->dir->parent;
		else {
			struct store_dirent *e = dir_find(d->dir, name, len);
			ino = e ? e->ino : 0;
		}
		n = ino ? inode_get(s, ino) : NULL;
		if (!n)
			r = -ENOENT;
		else
			attr_ref_locked(n, nref, ret);
	}
	pthread_rwlock_unlock(&s->ns);
	return r;
}

int vfs_store_getattr(struct vfs_store *s, uint64_t ino, struct vfs_attr *ret)
{
	return vfs_store_getattr_ref(s, ino, 0, ret);
}

int vfs_store_getattr_ref(struct vfs_store *s, uint64_t ino, uint64_t nref, struct vfs_attr *ret)
{
	pthread_rwlock_rdlock(&s->ns);
	struct store_inode *n = inode_get(s, ino);
	if (n)
		attr_ref_locked(n, nref, ret);
	pthread_rwlock_unlock(&s->ns);
	return n ? 0 : -ENOENT;
}

int vfs_store_setattr(struct vfs_store *s, uint64_t ino, const struct vfs_attr *a, unsigned to_set,
		      struct vfs_attr *ret)
{
	int r = 0;
	pthread_rwlock_rdlock(&s->ns);
	struct store_inode *n = inode_get(s, ino);
	if (!n) {
		pthread_rwlock_unlock(&s->ns);
		return -ENOENT;
	}
	pthread_mutex_lock(&n->lock);
	struct timespec now;
	store_now(&now);
	if (to_set & VFS_SET_SIZE) {
		if (S_ISDIR(n->mode))
			r = -EISDIR;
		else if (!S_ISREG(n->mode))
			r = -EINVAL;
		else if (a->size > STORE_MAX_FILE)
			r = -EFBIG;
		else if (a->size != n->size) {
			r = data_truncate(s, n, a->size);
			if (r == 0)
				n->mtime = now;
		} else
			n->mtime = now; /* truncate(2) to the same size still updates mtime */
	}
	if (r == 0) {
		if (to_set & VFS_SET_MODE)
			n->mode = (n->mode & S_IFMT) | (a->mode & 07777);
		if (to_set & VFS_SET_UID)
			n->uid = a->uid;
		if (to_set & VFS_SET_GID)
			n->gid = a->gid;
		if (to_set & VFS_SET_ATIME_NOW)
			n->atime = now;
		else if (to_set & VFS_SET_ATIME)
			n->atime = a->atime;
		if (to_set & VFS_SET_MTIME_NOW)
			n->mtime = now;
		else if (to_set & VFS_SET_MTIME)
			n->mtime = a->mtime;
		n->ctime = (to_set & VFS_SET_CTIME) ? a->ctime : now;
		inode_mark_dirty(s, n);
		if (ret)
			inode_fill_attr(n, ret);
	}
	pthread_mutex_unlock(&n->lock);
	pthread_rwlock_unlock(&s->ns);
	return r;
}

int vfs_store_mknod(struct vfs_store *s, uint64_t parent, const char *name, uint32_t mode,
		    uint64_t rdev, uint32_t uid, uint32_t gid, const char *symlink_target,
		    struct vfs_attr *ret)
{
	return vfs_store_mknod_ref(s, parent, name, mode, rdev, uid, gid, symlink_target, 0, 0,
				   ret);
}

int vfs_store_mknod_ref(struct vfs_store *s, uint64_t parent, const char *name, uint32_t mode,
			uint64_t rdev, uint32_t uid, uint32_t gid, const char *symlink_target,
			unsigned flags, uint64_t nref, struct vfs_attr *ret)
{
	size_t len, tlen = 0;
	int r = name_check(name, &len);
	if (r < 0)
		return r;
	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFIFO:
	case S_IFSOCK:
	case S_IFCHR:
	case S_IFBLK:
		break;
	case S_IFLNK:
		if (!symlink_target)
			return -EINVAL;
		tlen = strnlen(symlink_target, VFS_SYMLINK_MAX + 1);
		if (tlen == 0)
			return -ENOENT;
		if (tlen > VFS_SYMLINK_MAX)
			return -ENAMETOOLONG;
		break;
	default:
		return -EINVAL;
	}
	pthread_rwlock_wrlock(&s->ns);
	struct store_inode *d, *n = NULL;
	r = get_dir(s, parent, &d);
	if (r < 0)
		goto out;
	if (d->nlink == 0) {
		r = -ENOENT; /* creating in a removed directory */
		goto out;
	}
	if (is_dot(name) || dir_find(d->dir, name, len)) {
		r = -EEXIST;
		goto out;
	}
	if ((flags & VFS_MKNOD_INHERIT_SGID) && (d->mode & S_ISGID)) {
		gid = d->gid;
		if (S_ISDIR(mode))
			mode |= S_ISGID;
	}
	r = -ENOMEM;
	n = inode_new(s->next_ino, mode);
	if (!n)
		goto out;
	n->generation = s->live;
	n->uid = uid;
	n->gid = gid;
	n->refs = nref;
	store_now(&n->ctime);
	n->atime = n->mtime = n->ctime;
	if (S_ISDIR(mode)) {
		n->dir = dir_new(parent);
		if (!n->dir)
			goto out;
		n->nlink = 2;
	} else {
		n->nlink = 1;
		if (S_ISCHR(mode) || S_ISBLK(mode))
			n->rdev = rdev;
		if (S_ISLNK(mode)) {
			n->target = strndup(symlink_target, tlen);
			if (!n->target)
				goto out;
			n->size = tlen;
		}
	}
	r = dir_add(d->dir, name, len, n->ino, 0);
	if (r < 0)
		goto out;
	r = inode_insert(s, n);
	if (r < 0) {
		dir_del(d->dir, dir_find(d->dir, name, len));
		goto out;
	}
	s->next_ino++;
	if (S_ISDIR(mode))
		d->nlink++;
	touch_dir(s, d, &n->ctime);
	inode_mark_dirty(s, n);
	if (ret)
		inode_fill_attr(n, ret);
	n = NULL;
out:
	inode_free(n);
	pthread_rwlock_unlock(&s->ns);
	return r;
}

int vfs_store_link(struct vfs_store *s, uint64_t ino, uint64_t newparent, const char *newname,
		   struct vfs_attr *ret)
{
	return vfs_store_link_ref(s, ino, newparent, newname, 0, ret);
}

int vfs_store_link_ref(struct vfs_store *s, uint64_t ino, uint64_t newparent, const char *newname,
		       uint64_t nref, struct vfs_attr *ret)
{
	size_t len;
	int r = name_check(newname, &len);
	if (r < 0)
		return r;
	pthread_rwlock_wrlock(&s->ns);
	struct store_inode *d, *n = inode_get(s, ino);
	r = get_dir(s, newparent, &d);
	if (r < 0)
		goto out;
	if (!n) {
		r = -ENOENT;
		goto out;
	}
	if (S_ISDIR(n->mode)) {
		r = -EPERM;
		goto out;
	}
	if (d->nlink == 0 || n->nlink == 0) {
		r = -ENOENT;
		goto out;
	}
	if (n->nlink >= 65000) {
		r = -EMLINK;
		goto out;
	}
	if (is_dot(newname) || dir_find(d->dir, newname, len)) {
		r = -EEXIST;
		goto out;
	}
	r = dir_add(d->dir, newname, len, ino, 0);
	if (r < 0)
		goto out;
	n->nlink++;
	n->refs += nref;
	struct timespec now;
	store_now(&now);
	n->ctime = now;
	inode_mark_dirty(s, n);
	touch_dir(s, d, &now);
	if (ret)
		inode_fill_attr(n, ret);
out:
	pthread_rwlock_unlock(&s->ns);
	return r;
}

/* Remove entry @e of directory @d naming @n. Write lock held. */
static void remove_entry(struct vfs_store *s, struct store_inode *d, struct store_dirent *e,
			 struct store_inode *n, const struct timespec *now)
{
	dir_del(d->dir, e);
	if (S_ISDIR(n->mode)) {
		n->nlink = 0;
		d->nlink--;
	} else {
		n->nlink--;
	}
	n->ctime = *now;
	inode_mark_dirty(s, n);
	touch_dir(s, d, now);
	maybe_release(s, n);
}

static int do_remove(struct vfs_store *s, uint64_t parent, const char *name, bool isdir)
{
	size_t len;
	int r = name_check(name, &len);
	if (r < 0)
		return r;
	if (!strcmp(name, "."))
		return isdir ? -EINVAL : -EISDIR;
	if (!strcmp(name, ".."))
		return isdir ? -ENOTEMPTY : -EISDIR;
	pthread_rwlock_wrlock(&s->ns);
	struct store_inode *d, *n = NULL;
	struct store_dirent *e = NULL;
	r = get_dir(s, parent, &d);
	if (r == 0) {
		e = dir_find(d->dir, name, len);
		n = e ? inode_get(s, e->ino) : NULL;
		if (!n)
			r = -ENOENT;
	}
	if (r == 0 && isdir && !S_ISDIR(n->mode))
		r = -ENOTDIR;
	else if (r == 0 && !isdir && S_ISDIR(n->mode))
		r = -EISDIR;
	else if (r == 0 && isdir && n->dir->n > 0)
		r = -ENOTEMPTY;
	if (r == 0) {
		struct timespec now;
		store_now(&now);
		remove_entry(s, d, e, n, &now);
	}
	pthread_rwlock_unlock(&s->ns);
	return r;
}

int vfs_store_unlink(struct vfs_store *s, uint64_t parent, const char *name)
{
	return do_remove(s, parent, name, false);
}

int vfs_store_rmdir(struct vfs_store *s, uint64_t parent, const char *name)
{
	return do_remove(s, parent, name, true);
}

/* Is directory @anc (ino) @ino or one of its ancestors? Write lock held. */
static bool is_ancestor(struct vfs_store *s, uint64_t anc, uint64_t ino)
{
	for (unsigned depth = 0; depth < 1u << 20; depth++) {
		if (ino == anc)
			return true;
		if (ino == VFS_ROOT_INO)
			return false;
		struct store_inode *n = inode_get(s, ino);
		if (!n || !n->dir)
			return false;
		ino = n->dir->parent;
	}
	return true;
}

/* Move directory @n from @from to @to (nlink of both, its "..") */
static void reparent(struct store_inode *n, struct store_inode *from, struct store_inode *to)
{
	if (!S_ISDIR(n->mode) || from == to)
		return;
	from->nlink--;
	to->nlink++;
	n->dir->parent = to->ino;
}

int vfs_store_rename(struct vfs_store *s, uint64_t parent, const char *name, uint64_t newparent,
		     const char *newname, unsigned flags)
{
	size_t len, nlen;
	int r = name_check(name, &len);
	if (r == 0)
		r = name_check(newname, &nlen);
	if (r < 0)
		return r;
	if (flags & ~(RENAME_NOREPLACE_ | RENAME_EXCHANGE_) ||
	    flags == (RENAME_NOREPLACE_ | RENAME_EXCHANGE_))
		return -EINVAL;
	if (is_dot(name) || is_dot(newname))
		return -EBUSY;
	pthread_rwlock_wrlock(&s->ns);
	struct store_inode *sd, *td, *n = NULL, *t = NULL;
	struct store_dirent *se = NULL, *te = NULL;
	r = get_dir(s, parent, &sd);
	if (r == 0)
		r = get_dir(s, newparent, &td);
	if (r < 0)
		goto out;
	se = dir_find(sd->dir, name, len);
	n = se ? inode_get(s, se->ino) : NULL;
	if (!n) {
		r = -ENOENT;
		goto out;
	}
	te = dir_find(td->dir, newname, nlen);
	t = te ? inode_get(s, te->ino) : NULL;
	if (te && !t) {
		r = -EIO;
		goto out;
	}
	if (flags & RENAME_EXCHANGE_) {
		if (!t) {
			r = -ENOENT;
			goto out;
		}
	} else if (t && (flags & RENAME_NOREPLACE_)) {
		r = -EEXIST;
		goto out;
	}
	if (S_ISDIR(n->mode) && sd != td && is_ancestor(s, n->ino, td->ino)) {
		r = -EINVAL;
		goto out;
	}
	if ((flags & RENAME_EXCHANGE_) && S_ISDIR(t->mode) && sd != td &&
	    is_ancestor(s, t->ino, sd->ino)) {
		r = -EINVAL;
		goto out;
	}
	if (t == n) {
		r = 0; /* two links to one inode (or the same name): nothing to do */
		goto out;
	}
	if (td->nlink == 0) {
		r = -ENOENT;
		goto out;
	}
	struct timespec now;
	store_now(&now);
	if (flags & RENAME_EXCHANGE_) {
		se->ino = t->ino;
		te->ino = n->ino;
		reparent(n, sd, td);
		reparent(t, td, sd);
		t->ctime = now;
		inode_mark_dirty(s, t);
	} else {
		if (t) {
			if (S_ISDIR(n->mode) && !S_ISDIR(t->mode)) {
				r = -ENOTDIR;
				goto out;
			}
			if (!S_ISDIR(n->mode) && S_ISDIR(t->mode)) {
				r = -EISDIR;
				goto out;
			}
			if (S_ISDIR(t->mode) && t->dir->n > 0) {
				r = -ENOTEMPTY;
				goto out;
			}
			/* Replace in place: the entry keeps its cookie, so a reader's position
			 * is unaffected; then drop the old inode as unlink would. */
			te->ino = n->ino;
			if (S_ISDIR(t->mode)) {
				t->nlink = 0;
				td->nlink--;
			} else {
				t->nlink--;
			}
			t->ctime = now;
			inode_mark_dirty(s, t);
			maybe_release(s, t);
		} else {
			r = dir_add(td->dir, newname, nlen, n->ino, 0);
			if (r < 0)
				goto out;
		}
		dir_del(sd->dir, se);
		reparent(n, sd, td);
	}
	n->ctime = now;
	inode_mark_dirty(s, n);
	touch_dir(s, sd, &now);
	touch_dir(s, td, &now);
	r = 0;
out:
	pthread_rwlock_unlock(&s->ns);
	return r;
}

int vfs_store_readlink(struct vfs_store *s, uint64_t ino, char *buf, size_t len)
{
	pthread_rwlock_rdlock(&s->ns);
	struct store_inode *n = inode_get(s, ino);
	int r = 0;
	if (!n)
		r = -ENOENT;
	else if (!S_ISLNK(n->mode) || !n->target)
		r = -EINVAL;
	else if (strlen(n->target) + 1 > len)
		r = -ERANGE;
	else
		strcpy(buf, n->target);
	pthread_rwlock_unlock(&s->ns);
	return r;
}

int vfs_store_readdir(struct vfs_store *s, uint64_t ino, uint64_t cookie, vfs_store_dirent_fn fn,
		      void *ctx)
{
	return vfs_store_readdir_ref(s, ino, cookie, false, fn, ctx);
}

int vfs_store_readdir_ref(struct vfs_store *s, uint64_t ino, uint64_t cookie, bool take_refs,
			  vfs_store_dirent_fn fn, void *ctx)
{
	pthread_rwlock_rdlock(&s->ns);
	struct store_inode *d, *c;
	struct vfs_attr a;
	int r = get_dir(s, ino, &d);
	if (r < 0)
		goto out;
	if (cookie == 0) {
		attr_locked(d, &a);
		if (fn(ctx, ".", &a, 1))
			goto out;
		cookie = 1;
	}
	if (cookie == 1) {
		c = inode_get(s, d->dir->parent);
		attr_locked(c ? c : d, &a);
		if (fn(ctx, "..", &a, 2))
			goto out;
		cookie = 2;
	}
	for (size_t i = dir_pos(d->dir, cookie); i < d->dir->n; i++) {
		struct store_dirent *e = d->dir->order[i];
		c = inode_get(s, e->ino);
		if (!c)
			continue;
		attr_locked(c, &a);
		if (fn(ctx, e->name, &a, e->cookie + 1))
			break;
		if (take_refs) {
			pthread_mutex_lock(&c->lock);
			c->refs++;
			pthread_mutex_unlock(&c->lock);
		}
	}
out:
	pthread_rwlock_unlock(&s->ns);
	return r;
}

int vfs_store_statfs(struct vfs_store *s, struct statvfs *ret)
{
	struct statvfs st;
	if (fstatvfs(s->dirfd, &st) < 0)
		return -errno;
	st.f_namemax = VFS_NAME_MAX;
	st.f_flag = 0;
	st.f_fsid = 0;
	*ret = st;
	return 0;
}

void vfs_store_ref(struct vfs_store *s, uint64_t ino, uint64_t n)
{
	pthread_rwlock_rdlock(&s->ns);
	struct store_inode *i = inode_get(s, ino);
	if (i) {
		pthread_mutex_lock(&i->lock);
		i->refs += n;
		pthread_mutex_unlock(&i->lock);
	}
	pthread_rwlock_unlock(&s->ns);
}

void vfs_store_unref(struct vfs_store *s, uint64_t ino, uint64_t n)
{
	bool release = false;
	pthread_rwlock_rdlock(&s->ns);
	struct store_inode *i = inode_get(s, ino);
	if (i) {
		pthread_mutex_lock(&i->lock);
		i->refs = i->refs > n ? i->refs - n : 0;
		if (i->refs == 0) {
			inode_close_fds(s, i);
			release = i->nlink == 0 && !i->pinned;
		}
		pthread_mutex_unlock(&i->lock);
	}
	pthread_rwlock_unlock(&s->ns);
	if (!release)
		return;
	pthread_rwlock_wrlock(&s->ns);
	i = inode_get(s, ino); /* may have changed meanwhile: check again */
	if (i)
		maybe_release(s, i);
	pthread_rwlock_unlock(&s->ns);
}

void vfs_store_orphans_release(struct vfs_store *s)
{
	pthread_rwlock_wrlock(&s->ns);
	for (size_t b = 0; b < s->nbuckets; b++) {
		struct store_inode *n = s->tab[b], *next;
		for (; n; n = next) {
			next = n->hnext;
			if (!n->pinned)
				continue;
			n->pinned = false;
			maybe_release(s, n);
		}
	}
	pthread_rwlock_unlock(&s->ns);
}
