/* Epochs: the meta/E.ep format, loading a chain of epochs, and the two-phase commit.
 *
 * meta/E.ep (little-endian, immutable once renamed into place):
 *   "CKVFS-EP" le32 version, le32 flags, le64 id, le64 parent, le64 next_ino, le64 created,
 *   le64 bytes, le32 nrecs, le32 ndeleted, nrecs inode records, ndeleted le64 inos,
 *   le64 XXH3 of everything before it.
 * An inode record: le64 ino, generation; le32 mode, nlink, uid, gid, flags (1 = orphan);
 *   le64 size, rdev; 3 x (le64 sec, le32 nsec) atime, mtime, ctime; then by type:
 *   directory: le64 parent, le64 next_cookie, le32 n, n x (le64 ino, le64 cookie, str name)
 *   symlink:   str target
 *   regular:   le32 nruns, nruns x (le64 first chunk, le32 count, le64 layer) (holes omitted)
 * An epoch records the full state of every inode changed since its parent, so applying the
 * chain root..E in order rebuilds E, and folding a parent into its only child is a union. */
#include "vfs/store-private.h"

#include <fcntl.h>
#include <stdio.h>

static const char EP_MAGIC[8] = {'C', 'K', 'V', 'F', 'S', '-', 'E', 'P'};
#define EP_VERSION 1u
#define EP_HDR	   (8 + 4 + 4 + 8 * 5 + 4 + 4)
#define REC_ORPHAN 1u
#define MAX_CHUNKS (STORE_MAX_FILE / VFS_CHUNK_SIZE)

struct epoch_info *epoch_find(struct vfs_store *s, uint64_t id)
{
	for (size_t i = 0; i < s->nepochs; i++)
		if (s->epochs[i].id == id)
			return &s->epochs[i];
	return NULL;
}

void ep_free(struct ep *e)
{
	for (size_t i = 0; i < e->nrecs; i++)
		inode_free(e->recs[i].n);
	free(e->recs);
	free(e->deleted);
	*e = (struct ep){0};
}

/* ---- encoding ---- */

static void put_ts(struct ck_buf *b, const struct timespec *t)
{
	ck_buf_le64(b, (uint64_t)t->tv_sec);
	ck_buf_le32(b, (uint32_t)t->tv_nsec);
}

static void rec_encode(struct ck_buf *b, const struct store_inode *n)
{
	ck_buf_le64(b, n->ino);
	ck_buf_le64(b, n->generation);
	ck_buf_le32(b, n->mode);
	ck_buf_le32(b, n->nlink);
	ck_buf_le32(b, n->uid);
	ck_buf_le32(b, n->gid);
	ck_buf_le32(b, n->nlink == 0 ? REC_ORPHAN : 0);
	ck_buf_le64(b, n->size);
	ck_buf_le64(b, n->rdev);
	put_ts(b, &n->atime);
	put_ts(b, &n->mtime);
	put_ts(b, &n->ctime);
	if (S_ISDIR(n->mode)) {
		ck_buf_le64(b, n->dir->parent);
		ck_buf_le64(b, n->dir->next_cookie);
		ck_buf_le32(b, (uint32_t)n->dir->n);
		for (size_t i = 0; i < n->dir->n; i++) {
			const struct store_dirent *e = n->dir->order[i];
			ck_buf_le64(b, e->ino);
			ck_buf_le64(b, e->cookie);
			ck_buf_str(b, e->name, e->namelen);
		}
	} else if (S_ISLNK(n->mode)) {
		ck_buf_str(b, n->target, strlen(n->target));
	} else if (S_ISREG(n->mode)) {
		size_t at = b->len;
		uint32_t nruns = 0;
		ck_buf_le32(b, 0);
		uint64_t end = cmap_end(&n->map);
		for (uint64_t c = 0; c < end;) {
			uint64_t l = cmap_get(&n->map, c);
			uint64_t c2 = c + 1;
			while (c2 < end && cmap_get(&n->map, c2) == l && c2 - c < UINT32_MAX)
				c2++;
			if (l) {
				ck_buf_le64(b, c);
				ck_buf_le32(b, (uint32_t)(c2 - c));
				ck_buf_le64(b, l);
				nruns++;
			}
			c = c2;
		}
		if (!b->err)
			ck_put_le32(b->data + at, nruns);
	}
}

static int ep_encode(const struct ep *e, struct ck_buf *b)
{
	ck_buf_append(b, EP_MAGIC, 8);
	ck_buf_le32(b, EP_VERSION);
	ck_buf_le32(b, 0);
	ck_buf_le64(b, e->info.id);
	ck_buf_le64(b, e->info.parent);
	ck_buf_le64(b, e->next_ino);
	ck_buf_le64(b, (uint64_t)e->info.created);
	ck_buf_le64(b, e->info.bytes);
	ck_buf_le32(b, (uint32_t)e->nrecs);
	ck_buf_le32(b, (uint32_t)e->ndeleted);
	for (size_t i = 0; i < e->nrecs; i++)
		rec_encode(b, e->recs[i].n);
	for (size_t i = 0; i < e->ndeleted; i++)
		ck_buf_le64(b, e->deleted[i]);
	if (!b->err)
		ck_buf_le64(b, ck_checksum(b->data, b->len));
	return b->err;
}

int ep_write(struct vfs_store *s, const struct ep *e)
{
	struct ck_buf b = {0};
	int r = ep_encode(e, &b);
	if (r == 0 && b.len > STORE_MAX_META)
		r = -EFBIG;
	char name[32];
	snprintf(name, sizeof(name), "%llu.ep", (unsigned long long)e->info.id);
	if (r == 0)
		r = store_meta_write(s, s->metafd, name, b.data, b.len);
	if (r < 0)
		store_set_error(s, "%s/meta/%s: cannot write: %s", s->path, name, strerror(-r));
	ck_buf_free(&b);
	return r;
}

/* ---- decoding ---- */

static bool get_ts(struct ck_rd *r, struct timespec *t)
{
	uint64_t sec;
	uint32_t nsec;
	if (!ck_rd_le64(r, &sec) || !ck_rd_le32(r, &nsec))
		return false;
	if (nsec >= 1000000000u)
		return false;
	t->tv_sec = (time_t)sec;
	t->tv_nsec = nsec;
	return true;
}

static bool name_ok(const char *p, size_t n)
{
	if (n == 0 || n > VFS_NAME_MAX || memchr(p, '/', n) || memchr(p, 0, n))
		return false;
	return !(n == 1 && p[0] == '.') && !(n == 2 && p[0] == '.' && p[1] == '.');
}

/* Decode one inode record; returns a description of what is wrong, or NULL. */
static const char *rec_decode(struct ck_rd *r, const struct ep *e, struct ep_inode *ret)
{
	uint64_t ino, gen, size, rdev;
	uint32_t mode, nlink, uid, gid, flags;
	if (!ck_rd_le64(r, &ino) || !ck_rd_le64(r, &gen) || !ck_rd_le32(r, &mode) ||
	    !ck_rd_le32(r, &nlink) || !ck_rd_le32(r, &uid) || !ck_rd_le32(r, &gid) ||
	    !ck_rd_le32(r, &flags) || !ck_rd_le64(r, &size) || !ck_rd_le64(r, &rdev))
		return "truncated inode record";
	if (ino == 0 || ino >= e->next_ino)
		return "inode number out of range";
	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFLNK:
	case S_IFIFO:
	case S_IFSOCK:
	case S_IFCHR:
	case S_IFBLK:
		break;
	default:
		return "bad inode type";
	}
	if (flags & ~REC_ORPHAN || ((flags & REC_ORPHAN) != 0) != (nlink == 0))
		return "bad inode flags";
	if (size > STORE_MAX_FILE)
		return "file size out of range";
	struct store_inode *n = inode_new(ino, mode);
	if (!n)
		return "out of memory";
	ret->n = n;
	ret->orphan = flags & REC_ORPHAN;
	n->generation = gen;
	n->nlink = nlink;
	n->uid = uid;
	n->gid = gid;
	n->size = size;
	n->rdev = rdev;
	if (!get_ts(r, &n->atime) || !get_ts(r, &n->mtime) || !get_ts(r, &n->ctime))
		return "bad timestamps";
	if (S_ISDIR(mode)) {
		uint64_t parent, next_cookie;
		uint32_t cnt;
		if (!ck_rd_le64(r, &parent) || !ck_rd_le64(r, &next_cookie) || !ck_rd_le32(r, &cnt))
			return "truncated directory";
		if (parent == 0 || parent >= e->next_ino || cnt > (r->len - r->off) / 20 ||
		    next_cookie == UINT64_MAX)
			return "bad directory header";
		n->dir = dir_new(parent);
		if (!n->dir)
			return "out of memory";
		for (uint32_t i = 0; i < cnt; i++) {
			uint64_t cino, cookie;
			const char *name;
			size_t len;
			if (!ck_rd_le64(r, &cino) || !ck_rd_le64(r, &cookie) ||
			    !ck_rd_str(r, VFS_NAME_MAX, &name, &len))
				return "truncated directory entry";
			if (!name_ok(name, len) || cino == 0 || cino >= e->next_ino || cookie < 2 ||
			    cookie >= next_cookie)
				return "bad directory entry";
			if (dir_find(n->dir, name, len))
				return "duplicate directory entry";
			if (i > 0 && n->dir->order[n->dir->n - 1]->cookie >= cookie)
				return "directory cookies out of order";
			if (dir_add(n->dir, name, len, cino, cookie) < 0)
				return "out of memory";
		}
		n->dir->next_cookie = next_cookie;
	} else if (S_ISLNK(mode)) {
		const char *t;
		size_t len;
		if (!ck_rd_str(r, VFS_SYMLINK_MAX, &t, &len) || len == 0 || memchr(t, 0, len) ||
		    len != size)
			return "bad symlink target";
		n->target = strndup(t, len);
		if (!n->target)
			return "out of memory";
	} else if (S_ISREG(mode)) {
		uint32_t nruns;
		if (!ck_rd_le32(r, &nruns) || nruns > (r->len - r->off) / 20)
			return "bad chunk map";
		uint64_t maxc = (size + VFS_CHUNK_SIZE - 1) / VFS_CHUNK_SIZE, prev = 0;
		for (uint32_t i = 0; i < nruns; i++) {
			uint64_t first, layer;
			uint32_t cnt;
			if (!ck_rd_le64(r, &first) || !ck_rd_le32(r, &cnt) ||
			    !ck_rd_le64(r, &layer))
				return "truncated chunk map";
			if (cnt == 0 || layer == 0 || layer > e->info.id || first < prev ||
			    first > maxc || cnt > maxc - first)
				return "bad chunk map run";
			for (uint64_t c = first; c < first + cnt; c++)
				if (cmap_set(&n->map, c, layer) < 0)
					return "out of memory";
			prev = first + cnt;
		}
	}
	return NULL;
}

int ep_read(struct vfs_store *s, uint64_t id, struct ep *ret)
{
	char name[32];
	snprintf(name, sizeof(name), "%llu.ep", (unsigned long long)id);
	_cleanup_free_ char *buf = NULL;
	size_t len;
	const char *why = NULL;
	int r = ck_read_file_at(s->metafd, name, STORE_MAX_META, &buf, &len);
	if (r == -EFBIG)
		why = "too large";
	else if (r < 0) {
		store_set_error(s, "%s/meta/%s: %s", s->path, name, strerror(-r));
		return r;
	}
	struct ep e = {0};
	struct ck_rd rd = {.p = (const uint8_t *)buf, .len = len};
	uint32_t version, flags, nrecs, ndel;
	uint64_t created;
	if (why)
		;
	else if (len < EP_HDR + 8)
		why = "truncated";
	else if (memcmp(buf, EP_MAGIC, 8) != 0)
		why = "bad magic";
	else if (ck_get_le64((const uint8_t *)buf + len - 8) != ck_checksum(buf, len - 8))
		why = "checksum mismatch";
	if (!why) {
		rd.off = 8;
		rd.len = len - 8;
		ck_rd_le32(&rd, &version);
		ck_rd_le32(&rd, &flags);
		ck_rd_le64(&rd, &e.info.id);
		ck_rd_le64(&rd, &e.info.parent);
		ck_rd_le64(&rd, &e.next_ino);
		ck_rd_le64(&rd, &created);
		ck_rd_le64(&rd, &e.info.bytes);
		ck_rd_le32(&rd, &nrecs);
		ck_rd_le32(&rd, &ndel);
		e.info.created = (int64_t)created;
		if (version > EP_VERSION) {
			store_set_error(s,
					"%s/meta/%s: format version %u is newer than this ckptenv",
					s->path, name, version);
			return -EPROTONOSUPPORT;
		}
		if (version == 0 || flags != 0)
			why = "bad version or flags";
		else if (e.info.id != id)
			why = "epoch id does not match the file name";
		else if (e.info.parent >= id)
			why = "parent id not older than the epoch";
		else if (e.next_ino < 2 || e.next_ino == UINT64_MAX) /* no wrap to inode 0 */
			why = "bad inode counter";
		else if (nrecs > (rd.len - rd.off) / 60 || ndel > (rd.len - rd.off) / 8)
			why = "record counts out of range";
	}
	if (!why) {
		e.recs = calloc(nrecs ? nrecs : 1, sizeof(*e.recs));
		e.deleted = calloc(ndel ? ndel : 1, sizeof(*e.deleted));
		if (!e.recs || !e.deleted)
			why = "out of memory";
	}
	for (uint32_t i = 0; !why && i < nrecs; i++) {
		why = rec_decode(&rd, &e, &e.recs[i]);
		e.nrecs++;
		if (!why && e.recs[i].n->ino == VFS_ROOT_INO && !S_ISDIR(e.recs[i].n->mode))
			why = "root is not a directory";
	}
	for (uint32_t i = 0; !why && i < ndel; i++) {
		if (!ck_rd_le64(&rd, &e.deleted[i]) || e.deleted[i] <= VFS_ROOT_INO ||
		    e.deleted[i] >= e.next_ino)
			why = "bad deleted inode";
		e.ndeleted++;
	}
	if (!why && rd.off != rd.len)
		why = "trailing bytes";
	if (why) {
		ep_free(&e);
		store_set_error(s, "%s/meta/%s: %s", s->path, name, why);
		return -EBADMSG;
	}
	*ret = e;
	return 0;
}

/* Apply @e on the inode table (ownership of its records moves to the table). */
int ep_apply(struct vfs_store *s, struct ep *e)
{
	for (size_t i = 0; i < e->ndeleted; i++) {
		struct store_inode *n = inode_get(s, e->deleted[i]);
		if (n) {
			inode_remove(s, n);
			inode_free(n);
		}
	}
	for (size_t i = 0; i < e->nrecs; i++) {
		struct store_inode *n = inode_get(s, e->recs[i].n->ino);
		if (n) {
			inode_remove(s, n);
			inode_free(n);
		}
		n = e->recs[i].n;
		n->in_epoch = true;
		int r = inode_insert(s, n);
		if (r < 0)
			return r;
		e->recs[i].n = NULL;
	}
	if (e->next_ino > s->next_ino)
		s->next_ino = e->next_ino;
	return 0;
}

/* Names of one inode, for the link counts: open addressing by inode number (0: free). */
struct name_count {
	uint64_t ino;
	uint64_t n;
};

static struct name_count *name_slot(struct name_count *t, size_t mask, uint64_t ino)
{
	for (size_t i = (size_t)((ino * 0x9e3779b97f4a7c15ull) >> 20) & mask;; i = (i + 1) & mask)
		if (t[i].ino == ino || !t[i].ino)
			return &t[i];
}

/* Every file's link count is its number of names (an orphan has none). A wrong one is not
 * harmless: unlinking one of two names of a file counted once frees it under the other. */
static int check_links(struct vfs_store *s, uint64_t at)
{
	size_t cap = 16;
	while (cap < 2 * s->ninodes)
		cap *= 2;
	_cleanup_free_ struct name_count *t = calloc(cap, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (size_t b = 0; b < s->nbuckets; b++)
		for (struct store_inode *n = s->tab[b]; n; n = n->hnext)
			for (size_t i = 0; n->dir && i < n->dir->n; i++) {
				struct name_count *c = name_slot(t, cap - 1, n->dir->order[i]->ino);
				c->ino = n->dir->order[i]->ino;
				c->n++;
			}
	for (size_t b = 0; b < s->nbuckets; b++)
		for (struct store_inode *n = s->tab[b]; n; n = n->hnext) {
			uint64_t names = name_slot(t, cap - 1, n->ino)->n;
			if (n->dir || names == n->nlink)
				continue;
			store_set_error(s, "%s/meta/%llu.ep: inode %llu has link count %u but %llu "
					   "names",
					s->path, (unsigned long long)at, (unsigned long long)n->ino,
					n->nlink, (unsigned long long)names);
			return -EBADMSG;
		}
	return 0;
}

/* After loading: every name must lead to an inode, the root must be a directory, link counts
 * must match. */
static int check_tree(struct vfs_store *s, uint64_t at)
{
	struct store_inode *root = inode_get(s, VFS_ROOT_INO);
	if (!root || !S_ISDIR(root->mode)) {
		store_set_error(s, "%s/meta/%llu.ep: the epoch has no root directory", s->path,
				(unsigned long long)at);
		return -EBADMSG;
	}
	for (size_t b = 0; b < s->nbuckets; b++)
		for (struct store_inode *n = s->tab[b]; n; n = n->hnext) {
			if (!n->dir)
				continue;
			for (size_t i = 0; i < n->dir->n; i++)
				if (!inode_get(s, n->dir->order[i]->ino)) {
					store_set_error(s,
							"%s/meta/%llu.ep: entry \"%s\" of inode "
							"%llu names a missing inode",
							s->path, (unsigned long long)at,
							n->dir->order[i]->name,
							(unsigned long long)n->ino);
					return -EBADMSG;
				}
		}
	return check_links(s, at);
}

int store_load_chain(struct vfs_store *s, uint64_t at, unsigned flags)
{
	/* ids root..at, walking parents through the index (parent < id bounds the walk) */
	struct u64vec chain = {0};
	int r = 0;
	for (uint64_t id = at; id;) {
		struct epoch_info *ei = epoch_find(s, id);
		if (!ei && u64vec_has(&s->damaged, id)) {
			struct ep e;
			if (ep_read(s, id, &e) == 0) { /* repaired meanwhile; not indexed */
				ep_free(&e);
				store_set_error(s, "%s/meta/%llu.ep: damaged when the store was opened",
						s->path, (unsigned long long)id);
			}
			store_error_builds_on(s, id, at);
			u64vec_free(&chain);
			return -EBADMSG;
		}
		if (!ei) {
			store_set_error(s, "%s/meta/%llu.ep: missing (an ancestor of epoch %llu)",
					s->path, (unsigned long long)id, (unsigned long long)at);
			u64vec_free(&chain);
			return -EBADMSG;
		}
		r = u64vec_push(&chain, id);
		if (r < 0)
			break;
		id = ei->parent;
	}
	for (size_t i = chain.n; r == 0 && i-- > 0;) {
		struct ep e;
		r = ep_read(s, chain.v[i], &e);
		if (r == 0)
			r = ep_apply(s, &e);
		ep_free(&e);
	}
	u64vec_free(&chain);
	if (r < 0)
		return r;
	r = check_tree(s, at);
	if (r < 0)
		return r;
	/* orphans of the loaded epoch: pinned for the restorer, or dropped now */
	for (size_t b = 0; b < s->nbuckets; b++) {
		struct store_inode *n = s->tab[b], *next;
		for (; n; n = next) {
			next = n->hnext;
			if (n->nlink != 0)
				continue;
			if (flags & VFS_STORE_KEEP_ORPHANS) {
				n->pinned = true;
			} else {
				inode_remove(s, n);
				u64vec_push(&s->deleted, n->ino);
				inode_free(n);
			}
		}
	}
	s->base = at;
	return 0;
}

/* ---- commit ---- */

uint64_t vfs_store_commit_epoch(const struct vfs_store_commit *c)
{
	return c->epoch;
}

/* Layers of @n newer than the parent epoch: written since the last commit, to be synced. */
static int collect_layers(const struct store_inode *n, uint64_t parent, uint64_t sealed,
			  struct u64vec *out, uint64_t *bytes)
{
	uint64_t end = cmap_end(&n->map), last = 0;
	for (uint64_t c = 0; c < end; c++) {
		uint64_t l = cmap_get(&n->map, c);
		if (l == sealed)
			*bytes += VFS_CHUNK_SIZE;
		if (l <= parent || l == last)
			continue;
		last = l;
		bool seen = false;
		for (size_t i = 0; i + 1 < out->n; i += 2)
			seen |= out->v[i] == n->ino && out->v[i + 1] == l;
		if (!seen && (u64vec_push(out, n->ino) < 0 || u64vec_push(out, l) < 0))
			return -ENOMEM;
	}
	return 0;
}

/* Open layer @ino.@layer for syncing into *ret (-1: no such file, as when only zero-filled
 * chunks were ever mapped there) and start its writeback. */
static int sync_open(struct vfs_store *s, uint64_t ino, uint64_t layer, int *ret)
{
	char p[64];
	data_layer_path(p, sizeof(p), ino, layer);
	int fd = store_layer_open(s, p, O_RDONLY);
	*ret = fd < 0 ? -1 : fd;
	if (fd == -ENOENT)
		return 0;
	if (fd < 0) {
		store_set_error(s, "%s/data/%s: cannot open: %s", s->path, p,
				fd == -EINVAL ? "not a regular file" : strerror(-fd));
		return fd;
	}
	(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	return 0;
}

#define SYNC_BATCH 256

/* Make the layers of @layers ((ino, layer) pairs) durable, and data/ (their names). In two
 * passes per batch: writeback is started on every file first, so the host writes them all
 * at once and their block allocations share a journal commit, then fdatasync waits for each
 * (most of the data is usually on its way already: see writeback_kick in store-data.c). */
static int sync_layers(struct vfs_store *s, const struct u64vec *layers, uint64_t *ret_synced)
{
	size_t n = layers->n / 2;
	/* No more at once than the layer fds' cap: under a low open-file limit a batch of 256
	 * failed the commit with EMFILE. */
	size_t batch = CK_MIN((size_t)SYNC_BATCH, (size_t)s->fd_cap);
	int fds[SYNC_BATCH];
	for (size_t b = 0; b < n; b += batch) {
		size_t m = CK_MIN(n - b, batch), opened = 0;
		int r = 0;
		for (; opened < m && r == 0; opened++)
			r = sync_open(s, layers->v[2 * (b + opened)], layers->v[2 * (b + opened) + 1],
				      &fds[opened]);
		for (size_t i = 0; i < opened; i++) {
			if (r == 0 && fds[i] >= 0 && fdatasync(fds[i]) < 0) {
				r = -errno;
				char p[64];
				data_layer_path(p, sizeof(p), layers->v[2 * (b + i)],
						layers->v[2 * (b + i) + 1]);
				store_set_error(s, "%s/data/%s: cannot sync: %s", s->path, p,
						strerror(-r));
			}
			if (fds[i] >= 0) {
				close(fds[i]);
				(*ret_synced)++;
			}
		}
		if (r < 0)
			return r;
	}
	if (n && fsync(s->datafd) < 0) {
		store_set_error(s, "%s/data: cannot sync: %s", s->path, strerror(errno));
		return -errno;
	}
	return 0;
}

int vfs_store_commit_prepare(struct vfs_store *s, struct vfs_store_commit **ret)
{
	struct vfs_store_commit *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	struct ep e = {0};
	struct u64vec dirty = {0}, deleted = {0}, layers = {0};
	struct vfs_commit_stats st = {0};
	uint64_t t0 = ck_now_ns();
	pthread_mutex_lock(&s->meta_lock);
	pthread_rwlock_wrlock(&s->ns);
	uint64_t parent = s->base, sealed = s->live;
	int r = 0;
	e.info =
		(struct epoch_info){.id = sealed, .parent = parent, .created = (int64_t)time(NULL)};
	e.next_ino = s->next_ino;
	dirty = s->dirty;
	deleted = s->deleted;
	s->dirty = (struct u64vec){0};
	s->deleted = (struct u64vec){0};
	e.recs = calloc(dirty.n ? dirty.n : 1, sizeof(*e.recs));
	if (!e.recs)
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < dirty.n; i++) {
		struct store_inode *n = inode_get(s, dirty.v[i]);
		if (!n)
			continue;
		n->dirty = false;
		e.recs[e.nrecs++].n = n; /* borrowed: the write lock keeps it stable */
		if (S_ISREG(n->mode)) {
			r = inode_flush_inline(s, n); /* the epoch's data must be in files */
			if (r == 0)
				r = collect_layers(n, parent, sealed, &layers, &e.info.bytes);
		}
	}
	e.deleted = deleted.v;
	e.ndeleted = deleted.n;
	struct ck_buf b = {0};
	if (r == 0)
		r = ep_encode(&e, &b);
	if (r == 0 && b.len > STORE_MAX_META)
		r = -EFBIG;
	if (r == 0) {
		for (size_t i = 0; i < e.nrecs; i++)
			e.recs[i].n->in_epoch = true;
		s->live = sealed + 1;
		s->base = sealed;
	}
	pthread_rwlock_unlock(&s->ns);
	uint64_t t1 = ck_now_ns();

	/* Outside the namespace lock: the live state goes on over the sealed epoch. */
	char name[32];
	snprintf(name, sizeof(name), "%llu.ep", (unsigned long long)sealed);
	if (r == 0)
		r = sync_layers(s, &layers, &st.layers);
	uint64_t t2 = ck_now_ns();
	if (r == 0) {
		r = store_meta_write(s, s->metafd, name, b.data, b.len);
		if (r < 0)
			store_set_error(s, "%s/meta/%s: cannot write: %s", s->path, name,
					strerror(-r));
	}
	if (r == 0) {
		st.epoch = sealed;
		st.seal_ns = t1 - t0;
		st.data_sync_ns = t2 - t1;
		st.meta_write_ns = ck_now_ns() - t2;
		st.inodes = e.nrecs;
		st.bytes = e.info.bytes;
		s->stats = st;
	}
	if (r == 0) {
		struct epoch_info *ne = realloc(s->epochs, (s->nepochs + 1) * sizeof(*ne));
		if (!ne)
			r = -ENOMEM;
		else {
			s->epochs = ne;
			s->epochs[s->nepochs++] = e.info;
			r = u64vec_push(&s->pending, sealed);
		}
	}
	if (r < 0) {
		/* Not sealed after all: the changes belong to the next commit again. Chunks
		 * already in layer @sealed stay valid: that id is never reused. */
		pthread_rwlock_wrlock(&s->ns);
		if (s->base == sealed)
			s->base = parent;
		for (size_t i = 0; i < dirty.n; i++) {
			struct store_inode *n = inode_get(s, dirty.v[i]);
			if (n)
				inode_mark_dirty(s, n);
		}
		for (size_t i = 0; i < deleted.n; i++)
			u64vec_push(&s->deleted, deleted.v[i]);
		pthread_rwlock_unlock(&s->ns);
	}
	pthread_mutex_unlock(&s->meta_lock);
	ck_buf_free(&b);
	free(e.recs);
	u64vec_free(&dirty);
	u64vec_free(&deleted);
	u64vec_free(&layers);
	if (r < 0) {
		free(c);
		return r;
	}
	c->epoch = sealed;
	c->created = (uint64_t)e.info.created;
	c->bytes = e.info.bytes;
	*ret = c;
	return 0;
}

/* Set @name -> @epoch in a copy of the refs table. meta_lock held. */
static int refs_with(struct vfs_store *s, const struct store_refs *in, const char *name,
		     uint64_t epoch, struct store_refs *out)
{
	struct epoch_info *ei = epoch_find(s, epoch);
	if (!ei)
		return -ENOENT;
	out->next_epoch = in->next_epoch;
	out->n = in->n;
	out->v = malloc((in->n + 1) * sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	if (in->n)
		memcpy(out->v, in->v, in->n * sizeof(*out->v));
	size_t i = 0;
	while (i < out->n && strcmp(out->v[i].name, name))
		i++;
	if (i == out->n)
		out->n++;
	memset(&out->v[i], 0, sizeof(out->v[i]));
	snprintf(out->v[i].name, sizeof(out->v[i].name), "%s", name);
	out->v[i].epoch = epoch;
	out->v[i].created = ei->created;
	out->v[i].bytes = ei->bytes;
	return 0;
}

/* Whether @id is @from or one of its ancestors. */
static bool descends_from(struct vfs_store *s, uint64_t from, uint64_t id)
{
	for (const struct epoch_info *e = epoch_find(s, from); e;
	     e = e->parent ? epoch_find(s, e->parent) : NULL)
		if (e->id == id)
			return true;
	return false;
}

/* Whether epoch @id is still needed: a ref's epoch, the live base or a pending commit, or an
 * ancestor of one. (meta_lock) */
static bool epoch_needed(struct vfs_store *s, uint64_t id)
{
	if (u64vec_has(&s->pending, id) || descends_from(s, s->base, id))
		return true;
	for (size_t i = 0; i < s->refs.n; i++)
		if (descends_from(s, s->refs.v[i].epoch, id))
			return true;
	return false;
}

int vfs_store_commit_finish(struct vfs_store *s, struct vfs_store_commit *c, const char *ref)
{
	if (ref && !strcmp(ref, "head"))
		ref = NULL; /* head is always set */
	if (ref && !store_ref_name_valid(ref)) {
		vfs_store_commit_abort(s, c);
		return -EINVAL;
	}
	pthread_mutex_lock(&s->meta_lock);
	struct store_refs a = {0}, b = {0};
	int r = u64vec_has(&s->pending, c->epoch) ? 0 : -ENOENT;
	if (r == 0 && ref)
		r = refs_with(s, &s->refs, ref, c->epoch, &a);
	if (r == 0)
		r = refs_with(s, ref ? &a : &s->refs, "head", c->epoch, &b);
	if (r == 0) {
		pthread_rwlock_rdlock(&s->ns);
		b.next_epoch = CK_MAX(b.next_epoch, s->live + 1);
		pthread_rwlock_unlock(&s->ns);
		uint64_t t0 = ck_now_ns();
		r = store_refs_write(s, &b);
		if (r == 0 && s->stats.epoch == c->epoch)
			s->stats.refs_write_ns = ck_now_ns() - t0;
	}
	uint64_t old_head = store_refs_epoch(&s->refs, "head");
	if (r == 0) {
		store_refs_free(&s->refs);
		s->refs = b;
		b = (struct store_refs){0};
		u64vec_remove(&s->pending, c->epoch);
		/* The head moved off a state nothing else holds (the first commit of a run from a
		 * snapshot or of a restore): its space goes now, not at the next open. Rare, so
		 * a commit's cost still follows what changed, not the size of the store. */
		if (old_head && !epoch_needed(s, old_head))
			(void)store_gc_locked(s);
	}
	pthread_mutex_unlock(&s->meta_lock);
	store_refs_free(&a);
	store_refs_free(&b);
	free(c);
	return r;
}

void vfs_store_commit_abort(struct vfs_store *s, struct vfs_store_commit *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&s->meta_lock);
	u64vec_remove(&s->pending, c->epoch);
	pthread_mutex_unlock(&s->meta_lock);
	free(c);
}

void vfs_store_last_commit_stats(struct vfs_store *s, struct vfs_commit_stats *ret)
{
	pthread_mutex_lock(&s->meta_lock);
	*ret = s->stats;
	pthread_mutex_unlock(&s->meta_lock);
}

int vfs_store_ref_set(struct vfs_store *s, const char *name, uint64_t epoch)
{
	if (!store_ref_name_valid(name))
		return -EINVAL;
	pthread_mutex_lock(&s->meta_lock);
	struct store_refs n = {0};
	int r = refs_with(s, &s->refs, name, epoch, &n);
	if (r == 0)
		r = store_refs_write(s, &n);
	if (r == 0) {
		store_refs_free(&s->refs);
		s->refs = n;
		n = (struct store_refs){0};
	}
	pthread_mutex_unlock(&s->meta_lock);
	store_refs_free(&n);
	return r;
}

int vfs_store_ref_drop(struct vfs_store *s, const char *name)
{
	pthread_mutex_lock(&s->meta_lock);
	size_t i = 0;
	while (i < s->refs.n && strcmp(s->refs.v[i].name, name))
		i++;
	int r = i < s->refs.n ? 0 : -ENOENT;
	if (r == 0) {
		struct store_refs n = {.next_epoch = s->refs.next_epoch, .n = s->refs.n - 1};
		n.v = malloc((s->refs.n ? s->refs.n : 1) * sizeof(*n.v));
		if (!n.v)
			r = -ENOMEM;
		else {
			for (size_t k = 0, j = 0; k < s->refs.n; k++)
				if (k != i)
					n.v[j++] = s->refs.v[k];
			r = store_refs_write(s, &n);
			if (r == 0) {
				store_refs_free(&s->refs);
				s->refs = n;
			} else {
				store_refs_free(&n);
			}
		}
	}
	if (r == 0)
		r = store_gc_locked(s);
	pthread_mutex_unlock(&s->meta_lock);
	return r;
}

int vfs_store_refs(struct vfs_store *s, struct vfs_ref **ret, size_t *ret_n)
{
	pthread_mutex_lock(&s->meta_lock);
	struct vfs_ref *v = calloc(s->refs.n ? s->refs.n : 1, sizeof(*v));
	if (v) {
		for (size_t i = 0; i < s->refs.n; i++) {
			memcpy(v[i].name, s->refs.v[i].name, sizeof(v[i].name));
			v[i].epoch = s->refs.v[i].epoch;
			v[i].created = s->refs.v[i].created;
			v[i].bytes = s->refs.v[i].bytes;
		}
		*ret = v;
		*ret_n = s->refs.n;
	}
	pthread_mutex_unlock(&s->meta_lock);
	return v ? 0 : -ENOMEM;
}

int vfs_store_gc(struct vfs_store *s)
{
	pthread_mutex_lock(&s->meta_lock);
	int r = store_gc_locked(s);
	pthread_mutex_unlock(&s->meta_lock);
	return r;
}

int vfs_store_head_kept_elsewhere(struct vfs_store *s, uint64_t *ret_head)
{
	pthread_mutex_lock(&s->meta_lock);
	uint64_t head = store_refs_epoch(&s->refs, "head");
	*ret_head = head;
	/* From the head down: an epoch another ref names ends the walk (kept), one that recorded
	 * a change ends it too (not kept); an empty one (a run that changed nothing commits one)
	 * holds its parent's tree. */
	int r = 1;
	for (uint64_t id = head; id; ) {
		/* Only a snapshot keeps it: a checkpoint's ref goes when the checkpoint is pruned. */
		bool named = false;
		for (size_t i = 0; i < s->refs.n && !named; i++)
			named = s->refs.v[i].epoch == id && !strncmp(s->refs.v[i].name, "snap-", 5);
		if (named)
			break;
		struct ep e = {0};
		const struct epoch_info *ei = epoch_find(s, id);
		if (!ei || ep_read(s, id, &e) < 0) {
			r = 0; /* unknown: keep it */
			break;
		}
		bool empty = e.nrecs == 0 && e.ndeleted == 0;
		ep_free(&e);
		if (!empty) {
			r = 0;
			break;
		}
		id = ei->parent;
	}
	pthread_mutex_unlock(&s->meta_lock);
	return r;
}
