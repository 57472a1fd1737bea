/* The in-memory inode table and directories (name -> ino with stable readdir cookies). */
#include "vfs/store-private.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>

static size_t hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return (size_t)x;
}

struct store_inode *inode_get(struct vfs_store *s, uint64_t ino)
{
	for (struct store_inode *n = s->tab[hash_u64(ino) & (s->nbuckets - 1)]; n; n = n->hnext)
		if (n->ino == ino)
			return n;
	return NULL;
}

static int tab_grow(struct vfs_store *s)
{
	size_t nb = s->nbuckets * 2;
	struct store_inode **t = calloc(nb, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < s->nbuckets; i++) {
		struct store_inode *n = s->tab[i], *next;
		for (; n; n = next) {
			next = n->hnext;
			size_t b = hash_u64(n->ino) & (nb - 1);
			n->hnext = t[b];
			t[b] = n;
		}
	}
	free(s->tab);
	s->tab = t;
	s->nbuckets = nb;
	return 0;
}

int inode_insert(struct vfs_store *s, struct store_inode *n)
{
	if (s->ninodes >= s->nbuckets && tab_grow(s) < 0)
		return -ENOMEM;
	size_t b = hash_u64(n->ino) & (s->nbuckets - 1);
	n->hnext = s->tab[b];
	s->tab[b] = n;
	s->ninodes++;
	return 0;
}

void inode_remove(struct vfs_store *s, struct store_inode *n)
{
	struct store_inode **pp = &s->tab[hash_u64(n->ino) & (s->nbuckets - 1)];
	for (; *pp; pp = &(*pp)->hnext)
		if (*pp == n) {
			*pp = n->hnext;
			s->ninodes--;
			inode_close_fds(s, n);
			return;
		}
}

struct store_inode *inode_new(uint64_t ino, uint32_t mode)
{
	struct store_inode *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	pthread_mutex_init(&n->lock, NULL);
	n->ino = ino;
	n->mode = mode;
	return n;
}

void inode_free(struct store_inode *n)
{
	if (!n)
		return;
	for (unsigned i = 0; i < n->nfds; i++) /* the store's end: its count and list go too */
		close(n->fds[i].fd);
	cmap_free(&n->map);
	dir_free(n->dir);
	free(n->target);
	free(n->inl);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

void inode_mark_dirty(struct vfs_store *s, struct store_inode *n)
{
	pthread_mutex_lock(&s->dirty_lock);
	if (!n->dirty && u64vec_push(&s->dirty, n->ino) == 0)
		n->dirty = true;
	pthread_mutex_unlock(&s->dirty_lock);
}

void inode_fill_attr(const struct store_inode *n, struct vfs_attr *a)
{
	*a = (struct vfs_attr){
		.ino = n->ino,
		.generation = n->generation,
		.mode = n->mode,
		.nlink = n->nlink,
		.uid = n->uid,
		.gid = n->gid,
		.size = n->size,
		.rdev = n->rdev,
		.atime = n->atime,
		.mtime = n->mtime,
		.ctime = n->ctime,
	};
	if (S_ISREG(n->mode)) {
		uint64_t full = (n->size + 4095) / 4096 * 8;
		a->blocks = CK_MIN(n->map.held * CHUNK_BLOCKS, full);
	}
}

void inode_release(struct vfs_store *s, struct store_inode *n)
{
	inode_remove(s, n);
	pthread_mutex_lock(&s->dirty_lock);
	if (n->in_epoch)
		u64vec_push(&s->deleted, n->ino);
	pthread_mutex_unlock(&s->dirty_lock);
	if (S_ISREG(n->mode)) {
		inode_drop_inline(s, n);
		if (n->live_file == s->live) { /* else never created */
			char p[64];
			data_layer_path(p, sizeof(p), n->ino, s->live);
			unlinkat(s->datafd, p, 0);
		}
	}
	inode_free(n);
}

/* ---- directories ---- */

static size_t hash_name(const char *name, size_t len)
{
	return (size_t)ck_checksum(name, len);
}

struct store_dir *dir_new(uint64_t parent)
{
	struct store_dir *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->nbuckets = 8;
	d->hash = calloc(d->nbuckets, sizeof(*d->hash));
	if (!d->hash) {
		free(d);
		return NULL;
	}
	d->next_cookie = 2;
	d->parent = parent;
	return d;
}

void dir_free(struct store_dir *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->order[i]);
	free(d->order);
	free(d->hash);
	free(d);
}

struct store_dirent *dir_find(const struct store_dir *d, const char *name, size_t len)
{
	for (struct store_dirent *e = d->hash[hash_name(name, len) & (d->nbuckets - 1)]; e;
	     e = e->hnext)
		if (e->namelen == len && memcmp(e->name, name, len) == 0)
			return e;
	return NULL;
}

static int dir_rehash(struct store_dir *d, size_t nb)
{
	struct store_dirent **h = calloc(nb, sizeof(*h));
	if (!h)
		return -ENOMEM;
	for (size_t i = 0; i < d->n; i++) {
		struct store_dirent *e = d->order[i];
		size_t b = hash_name(e->name, e->namelen) & (nb - 1);
		e->hnext = h[b];
		h[b] = e;
	}
	free(d->hash);
	d->hash = h;
	d->nbuckets = nb;
	return 0;
}

/* Position of the first entry with cookie >= @cookie. */
size_t dir_pos(const struct store_dir *d, uint64_t cookie)
{
	size_t lo = 0, hi = d->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (d->order[mid]->cookie < cookie)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* @cookie 0: a fresh one. Loading passes the recorded cookies (in any order). */
int dir_add(struct store_dir *d, const char *name, size_t len, uint64_t ino, uint64_t cookie)
{
	if (d->n >= d->nbuckets && dir_rehash(d, d->nbuckets * 2) < 0)
		return -ENOMEM;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		struct store_dirent **o = realloc(d->order, cap * sizeof(*o));
		if (!o)
			return -ENOMEM;
		d->order = o;
		d->cap = cap;
	}
	struct store_dirent *e = malloc(sizeof(*e) + len + 1);
	if (!e)
		return -ENOMEM;
	memcpy(e->name, name, len);
	e->name[len] = 0;
	e->namelen = len;
	e->ino = ino;
	if (cookie == 0)
		cookie = d->next_cookie++;
	else if (cookie >= d->next_cookie)
		d->next_cookie = cookie + 1;
	e->cookie = cookie;
	size_t pos = dir_pos(d, cookie);
	memmove(&d->order[pos + 1], &d->order[pos], (d->n - pos) * sizeof(*d->order));
	d->order[pos] = e;
	d->n++;
	size_t b = hash_name(name, len) & (d->nbuckets - 1);
	e->hnext = d->hash[b];
	d->hash[b] = e;
	return 0;
}

void dir_del(struct store_dir *d, struct store_dirent *e)
{
	struct store_dirent **pp = &d->hash[hash_name(e->name, e->namelen) & (d->nbuckets - 1)];
	for (; *pp; pp = &(*pp)->hnext)
		if (*pp == e) {
			*pp = e->hnext;
			break;
		}
	size_t pos = dir_pos(d, e->cookie);
	if (pos < d->n && d->order[pos] == e) {
		memmove(&d->order[pos], &d->order[pos + 1], (d->n - pos - 1) * sizeof(*d->order));
		d->n--;
	}
	free(e);
}
