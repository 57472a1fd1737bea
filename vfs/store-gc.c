/* Garbage collection of epochs and layers.
 *
 * 1. Keep the epochs a ref names, the live state's base, prepared commits, and their
 *    ancestors; delete the meta files of all others.
 * 2. Fold every kept epoch that nothing names (and is neither the base nor prepared) with
 *    exactly one child into that child: the child's record becomes the union (child wins),
 *    written atomically before the parent's file goes. A crash in between leaves the parent
 *    childless and unnamed, so the next GC deletes it.
 * 3. Layers: a layer file no remaining epoch record and no live chunk map references is
 *    deleted (this also removes uncommitted layers at open); chunks of a kept layer that
 *    nothing references any more are punched out, so dropping a ref frees its space.
 * Runs under meta_lock, so no commit is sealed meanwhile; the live state is scanned under the
 * write lock. Live maps only ever stop referencing older layers, so what the scan found
 * unreferenced stays unreferenced. */
#include "vfs/store-private.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <stdio.h>

struct lref {
	uint64_t ino, layer;
	uint64_t *bits; /* referenced chunks */
	uint64_t nwords;
	bool used;
};

struct lrefs {
	struct lref *t;
	size_t cap, n;
};

static size_t lref_hash(uint64_t ino, uint64_t layer)
{
	uint64_t x = ino * 0x9e3779b97f4a7c15ull ^ layer * 0xc2b2ae3d27d4eb4full;
	return (size_t)(x ^ (x >> 31));
}

static struct lref *lref_find(struct lrefs *h, uint64_t ino, uint64_t layer)
{
	if (!h->cap)
		return NULL;
	for (size_t i = lref_hash(ino, layer) & (h->cap - 1);; i = (i + 1) & (h->cap - 1)) {
		struct lref *e = &h->t[i];
		if (!e->used)
			return NULL;
		if (e->ino == ino && e->layer == layer)
			return e;
	}
}

static struct lref *lref_get(struct lrefs *h, uint64_t ino, uint64_t layer)
{
	struct lref *e = lref_find(h, ino, layer);
	if (e)
		return e;
	if ((h->n + 1) * 2 > h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 256;
		struct lref *t = calloc(cap, sizeof(*t));
		if (!t)
			return NULL;
		for (size_t i = 0; i < h->cap; i++) {
			if (!h->t[i].used)
				continue;
			size_t j = lref_hash(h->t[i].ino, h->t[i].layer) & (cap - 1);
			while (t[j].used)
				j = (j + 1) & (cap - 1);
			t[j] = h->t[i];
		}
		free(h->t);
		h->t = t;
		h->cap = cap;
	}
	size_t i = lref_hash(ino, layer) & (h->cap - 1);
	while (h->t[i].used)
		i = (i + 1) & (h->cap - 1);
	h->t[i] = (struct lref){.ino = ino, .layer = layer, .used = true};
	h->n++;
	return &h->t[i];
}

static void lrefs_free(struct lrefs *h)
{
	for (size_t i = 0; i < h->cap; i++)
		free(h->t[i].bits);
	free(h->t);
	*h = (struct lrefs){0};
}

static int lrefs_add_map(struct lrefs *h, uint64_t ino, const struct cmap *m)
{
	uint64_t end = cmap_end(m);
	struct lref *e = NULL;
	for (uint64_t c = 0; c < end; c++) {
		uint64_t l = cmap_get(m, c);
		if (!l)
			continue;
		if (!e || e->layer != l) {
			e = lref_get(h, ino, l);
			if (!e)
				return -ENOMEM;
		}
		if (c / 64 >= e->nwords) {
			uint64_t nw = CK_MAX(c / 64 + 1, e->nwords * 2);
			uint64_t *b = realloc(e->bits, nw * sizeof(*b));
			if (!b)
				return -ENOMEM;
			memset(b + e->nwords, 0, (nw - e->nwords) * sizeof(*b));
			e->bits = b;
			e->nwords = nw;
		}
		e->bits[c / 64] |= 1ull << (c % 64);
	}
	return 0;
}

static bool named(struct vfs_store *s, uint64_t id)
{
	for (size_t i = 0; i < s->refs.n; i++)
		if (s->refs.v[i].epoch == id)
			return true;
	return false;
}

static void epoch_drop(struct vfs_store *s, size_t i)
{
	char name[32];
	snprintf(name, sizeof(name), "%" PRIu64 ".ep", s->epochs[i].id);
	unlinkat(s->metafd, name, 0);
	s->epochs[i] = s->epochs[--s->nepochs];
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Fold epoch @x into its only child @c. */
static int fold(struct vfs_store *s, struct epoch_info *x, struct epoch_info *c)
{
	struct ep px, pc;
	int r = ep_read(s, x->id, &px);
	if (r < 0)
		return r;
	r = ep_read(s, c->id, &pc);
	if (r < 0) {
		ep_free(&px);
		return r;
	}
	struct ep out = pc;
	out.info.parent = px.info.parent;
	uint64_t *have = malloc((pc.nrecs + pc.ndeleted + 1) * sizeof(*have));
	struct ep_inode *recs = calloc(pc.nrecs + px.nrecs + 1, sizeof(*recs));
	uint64_t *del = malloc((pc.ndeleted + px.ndeleted + 1) * sizeof(*del));
	if (!have || !recs || !del) {
		r = -ENOMEM;
		goto out;
	}
	size_t nh = 0;
	for (size_t i = 0; i < pc.nrecs; i++)
		have[nh++] = pc.recs[i].n->ino;
	for (size_t i = 0; i < pc.ndeleted; i++)
		have[nh++] = pc.deleted[i];
	if (nh > 1)
		qsort(have, nh, sizeof(*have), cmp_u64);
	out.nrecs = 0;
	for (size_t i = 0; i < pc.nrecs; i++)
		recs[out.nrecs++] = pc.recs[i];
	for (size_t i = 0; i < px.nrecs; i++)
		if (!nh || !bsearch(&px.recs[i].n->ino, have, nh, sizeof(*have), cmp_u64))
			recs[out.nrecs++] = px.recs[i];
	if (pc.ndeleted)
		memcpy(del, pc.deleted, pc.ndeleted * sizeof(*del));
	if (px.ndeleted)
		memcpy(del + pc.ndeleted, px.deleted, px.ndeleted * sizeof(*del));
	out.recs = recs;
	out.deleted = del;
	out.ndeleted = pc.ndeleted + px.ndeleted;
	r = ep_write(s, &out);
	if (r == 0) {
		c->parent = x->parent;
		epoch_drop(s, (size_t)(x - s->epochs));
	}
out:
	free(have);
	free(recs); /* the records themselves belong to px and pc */
	free(del);
	ep_free(&px);
	ep_free(&pc);
	return r;
}

static int punch_unreferenced(int fd, const struct lref *e)
{
	off_t pos = 0;
	for (;;) {
		off_t d = lseek(fd, pos, SEEK_DATA);
		if (d < 0)
			return errno == ENXIO ? 0 : -errno;
		off_t h = lseek(fd, d, SEEK_HOLE);
		if (h < 0)
			return -errno;
		for (uint64_t c = (uint64_t)d / VFS_CHUNK_SIZE; c * VFS_CHUNK_SIZE < (uint64_t)h;
		     c++) {
			bool ref = c / 64 < e->nwords && (e->bits[c / 64] >> (c % 64)) & 1;
			if (!ref && fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					      (off_t)(c * VFS_CHUNK_SIZE), VFS_CHUNK_SIZE) < 0)
				return -errno;
		}
		pos = h;
	}
}

static int gc_layers(struct vfs_store *s)
{
	struct lrefs h = {0};
	int r = 0;
	for (size_t i = 0; r == 0 && i < s->nepochs; i++) {
		struct ep e = {0};
		r = ep_read(s, s->epochs[i].id, &e);
		for (size_t j = 0; r == 0 && j < e.nrecs; j++)
			if (S_ISREG(e.recs[j].n->mode))
				r = lrefs_add_map(&h, e.recs[j].n->ino, &e.recs[j].n->map);
		ep_free(&e);
	}
	pthread_rwlock_wrlock(&s->ns);
	uint64_t live = s->live;
	for (size_t b = 0; r == 0 && b < s->nbuckets; b++)
		for (struct store_inode *n = s->tab[b]; r == 0 && n; n = n->hnext)
			if (S_ISREG(n->mode))
				r = lrefs_add_map(&h, n->ino, &n->map);
	pthread_rwlock_unlock(&s->ns);
	int dfd = r == 0 ? dup(s->datafd) : -1;
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (r == 0 && !d) {
		r = -errno;
		if (dfd >= 0)
			close(dfd);
	}
	if (d)
		rewinddir(d); /* the dup shares the position of earlier scans */
	struct dirent *de;
	while (r == 0 && (de = readdir(d))) {
		uint64_t ino = 0, layer = 0;
		if (sscanf(de->d_name, "%" SCNu64 ".%" SCNu64, &ino, &layer) != 2)
			continue;
		if (layer >= live)
			continue; /* the live layer (or newer): written right now */
		struct lref *e = lref_find(&h, ino, layer);
		if (!e) {
			unlinkat(s->datafd, de->d_name, 0);
			continue;
		}
		int fd = store_layer_open(s, de->d_name, O_WRONLY);
		if (fd < 0)
			continue; /* a symlink or a FIFO in its place: not ours to punch */
		punch_unreferenced(fd, e);
		close(fd);
	}
	if (d)
		closedir(d);
	lrefs_free(&h);
	return r;
}

int store_gc_locked(struct vfs_store *s)
{
	/* Which layers a damaged epoch refers to is unknown: freeing anything could take data
	 * an epoch building on it needs. The space stays until the damaged file is repaired or
	 * the job removed. */
	if (s->damaged.n)
		return 0;
	/* 1. reachability */
	bool *keep = calloc(s->nepochs + 1, sizeof(*keep));
	if (!keep)
		return -ENOMEM;
	for (size_t i = 0; i < s->nepochs; i++) {
		uint64_t id = s->epochs[i].id;
		if (!(named(s, id) || id == s->base || u64vec_has(&s->pending, id)))
			continue;
		for (struct epoch_info *e = &s->epochs[i]; e;
		     e = e->parent ? epoch_find(s, e->parent) : NULL) {
			size_t k = (size_t)(e - s->epochs);
			if (keep[k])
				break;
			keep[k] = true;
		}
	}
	for (size_t i = s->nepochs; i-- > 0;)
		if (!keep[i]) {
			keep[i] = keep[s->nepochs - 1];
			epoch_drop(s, i);
		}
	free(keep);
	/* 2. folding, oldest first so a chain collapses in one pass */
	int r = 0;
	if (s->nepochs > 1) /* id is the first field */
		qsort(s->epochs, s->nepochs, sizeof(*s->epochs), cmp_u64);
	for (size_t i = 0; r == 0 && i < s->nepochs;) {
		struct epoch_info *x = &s->epochs[i], *child = NULL;
		size_t nchild = 0;
		if (!named(s, x->id) && x->id != s->base && !u64vec_has(&s->pending, x->id))
			for (size_t j = 0; j < s->nepochs; j++)
				if (s->epochs[j].parent == x->id) {
					nchild++;
					child = &s->epochs[j];
				}
		if (nchild == 1 && !u64vec_has(&s->pending, child->id)) {
			r = fold(s, x, child);
			if (s->nepochs > 1)
				qsort(s->epochs, s->nepochs, sizeof(*s->epochs), cmp_u64);
			continue; /* slot i now holds the next epoch */
		}
		i++;
	}
	if (r == 0)
		r = gc_layers(s);
	fsync(s->metafd);
	return r;
}
