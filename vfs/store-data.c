/* Data of regular files: chunk maps over sparse layer files data/<ino>.<layer>.
 *
 * Invariants the code relies on:
 *  - only the live layer is ever written; chunk i of any layer sits at offset i * CHUNK;
 *  - in the layer holding a chunk, bytes past the file size read as zeros (truncate zeroes the
 *    tail, in the live layer, copying the chunk up first if an older layer holds it);
 *  - in the live layer file, a chunk the map does not give to the live layer reads as zeros
 *    (when a live chunk is dropped it is punched out), so a partial write into a hole needs no
 *    copy: the rest of the chunk is already zero;
 *  - small files live in memory: while n->inl is set, chunk 0 is the only chunk mapped, it is
 *    mapped to the live layer, its bytes are n->inl (zeros past inl_cap), and the live layer
 *    file does not exist. The first use of the live layer's fd (layer_fd) writes it out, as does
 *    a commit; an inode unlinked before that never costs a file on the host's disk. */
#include "vfs/store-private.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <sys/statvfs.h>

#define READ_HINT_MIN	(256u * 1024u)
#define READ_HINT_AHEAD (16 * 1024 * 1024)

/* ---- chunk map ---- */

int store_layer_open(struct vfs_store *s, const char *name, int flags)
{
	int fd = openat(s->datafd, name, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	struct stat st;
	int r = fstat(fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EINVAL;
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

uint64_t cmap_get(const struct cmap *m, uint64_t c)
{
	uint64_t p = c >> CMAP_PAGE_SHIFT;
	if (p >= m->npages || !m->pages[p])
		return 0;
	return m->pages[p][c & (CMAP_PAGE - 1)];
}

int cmap_set(struct cmap *m, uint64_t c, uint64_t layer)
{
	uint64_t p = c >> CMAP_PAGE_SHIFT;
	if (p >= m->npages) {
		if (layer == 0)
			return 0;
		size_t np = CK_MAX((size_t)p + 1, m->npages * 2);
		uint64_t **pages = realloc(m->pages, np * sizeof(*pages));
		if (!pages)
			return -ENOMEM;
		memset(pages + m->npages, 0, (np - m->npages) * sizeof(*pages));
		m->pages = pages;
		m->npages = np;
	}
	if (!m->pages[p]) {
		if (layer == 0)
			return 0;
		m->pages[p] = calloc(CMAP_PAGE, sizeof(uint64_t));
		if (!m->pages[p])
			return -ENOMEM;
	}
	uint64_t *slot = &m->pages[p][c & (CMAP_PAGE - 1)];
	m->held += (layer != 0) - (*slot != 0);
	*slot = layer;
	return 0;
}

uint64_t cmap_end(const struct cmap *m)
{
	for (size_t p = m->npages; p-- > 0;) {
		if (!m->pages[p])
			continue;
		for (size_t i = CMAP_PAGE; i-- > 0;)
			if (m->pages[p][i])
				return ((uint64_t)p << CMAP_PAGE_SHIFT) + i + 1;
	}
	return 0;
}

void cmap_free(struct cmap *m)
{
	for (size_t p = 0; p < m->npages; p++)
		free(m->pages[p]);
	free(m->pages);
	*m = (struct cmap){0};
}

/* Next chunk >= @c with (held == @want_data), or UINT64_MAX. */
static uint64_t cmap_next(const struct cmap *m, uint64_t c, bool want_data)
{
	for (;;) {
		uint64_t p = c >> CMAP_PAGE_SHIFT;
		if (p >= m->npages)
			return want_data ? UINT64_MAX : c;
		if (!m->pages[p]) {
			if (!want_data)
				return c;
			c = (p + 1) << CMAP_PAGE_SHIFT;
			continue;
		}
		if ((m->pages[p][c & (CMAP_PAGE - 1)] != 0) == want_data)
			return c;
		c++;
	}
}

/* ---- layer files ---- */

int data_layer_path(char *buf, size_t len, uint64_t ino, uint64_t layer)
{
	int n = snprintf(buf, len, "%llu.%llu", (unsigned long long)ino, (unsigned long long)layer);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* ---- the open layer fds of all inodes (s->fd_lock) ---- */

unsigned store_fd_cap(uint64_t nofile)
{
	/* A sixteenth of the limit, so that the proxy's sessions and a commit's batch of fds
	 * (store-epoch.c) keep theirs: 64 under `ulimit -n 1024`. Reopening a layer costs an
	 * openat, a few us against a FUSE request's 15. */
	return (unsigned)CK_MAX(CK_MIN(nofile / 16, (uint64_t)1024), (uint64_t)32);
}

static void fd_list_del(struct vfs_store *s, struct store_inode *n)
{
	if (!n->fd_listed)
		return;
	*(n->fd_prev ? &n->fd_prev->fd_next : &s->fd_head) = n->fd_next;
	*(n->fd_next ? &n->fd_next->fd_prev : &s->fd_tail) = n->fd_prev;
	n->fd_prev = n->fd_next = NULL;
	n->fd_listed = false;
}

static void fd_list_append(struct vfs_store *s, struct store_inode *n)
{
	n->fd_prev = s->fd_tail;
	n->fd_next = NULL;
	*(s->fd_tail ? &s->fd_tail->fd_next : &s->fd_head) = n;
	s->fd_tail = n;
	n->fd_listed = true;
}

static void close_fds_locked(struct vfs_store *s, struct store_inode *n)
{
	for (unsigned i = 0; i < n->nfds; i++)
		close(n->fds[i].fd);
	s->fd_open -= n->nfds;
	n->nfds = 0;
	fd_list_del(s, n);
}

void inode_close_fds(struct vfs_store *s, struct store_inode *n)
{
	pthread_mutex_lock(&s->fd_lock);
	close_fds_locked(s, n);
	pthread_mutex_unlock(&s->fd_lock);
}

/* @n (its mutex held) opened an fd, one more in all unless it closed one of its own for it
 * (@added false): close other inodes' fds, oldest first, until the count is within the cap. An inode whose mutex is taken is in use: passed over, as is
 * one used since the last pass (a second chance). Gives up after two passes over the list:
 * the cap may be exceeded for a while, never an fd closed under its user. */
static void fd_note_open(struct vfs_store *s, struct store_inode *n, bool added)
{
	pthread_mutex_lock(&s->fd_lock);
	s->fd_open += added;
	if (!n->fd_listed)
		fd_list_append(s, n);
	for (unsigned tries = 0; s->fd_open > s->fd_cap && s->fd_head && tries < 2 * s->fd_open;
	     tries++) {
		struct store_inode *v = s->fd_head;
		fd_list_del(s, v);
		if (v == n || pthread_mutex_trylock(&v->lock) != 0) {
			fd_list_append(s, v);
			continue;
		}
		if (v->fd_used) {
			v->fd_used = false;
			fd_list_append(s, v);
		} else {
			close_fds_locked(s, v);
		}
		pthread_mutex_unlock(&v->lock);
	}
	pthread_mutex_unlock(&s->fd_lock);
}

void inode_drop_inline(struct vfs_store *s, struct store_inode *n)
{
	if (!n->inl)
		return;
	__atomic_sub_fetch(&s->inline_bytes, n->inl_cap, __ATOMIC_RELAXED);
	free(n->inl);
	n->inl = NULL;
	n->inl_cap = 0;
}

/* Write the in-memory chunk 0 through @fd (the new live layer file) and let it go. */
static int inline_flush_fd(struct vfs_store *s, struct store_inode *n, int fd)
{
	if (!n->inl)
		return 0;
	size_t len = (size_t)CK_MIN((uint64_t)n->inl_cap, n->size);
	int r = len ? ck_pwrite_full(fd, n->inl, len, 0) : 0;
	if (r < 0)
		return r;
	inode_drop_inline(s, n);
	return 0;
}

/* The fd of layer @layer of @n (cached); the live layer is created on first use (and gets the
 * in-memory data, if any, at once). */
static int layer_fd(struct vfs_store *s, struct store_inode *n, uint64_t layer)
{
	for (unsigned i = 0; i < n->nfds; i++)
		if (n->fds[i].layer == layer) {
			n->fd_used = true;
			return n->fds[i].fd;
		}
	char p[64];
	data_layer_path(p, sizeof(p), n->ino, layer);
	int fd = store_layer_open(s, p, layer == s->live ? O_RDWR | O_CREAT : O_RDONLY);
	if (fd < 0)
		return fd;
	if (layer == s->live) {
		n->live_file = layer;
		int r = inline_flush_fd(s, n, fd);
		if (r < 0) {
			close(fd);
			return r;
		}
	}
	bool full = n->nfds == INODE_LAYER_FDS;
	if (full) {
		/* evict one that is not the live layer */
		unsigned v = 0;
		while (v < n->nfds - 1 && n->fds[v].layer == s->live)
			v++;
		close(n->fds[v].fd);
		n->fds[v] = n->fds[--n->nfds];
	}
	n->fds[n->nfds++] = (struct layer_fd){.layer = layer, .fd = fd};
	fd_note_open(s, n, !full);
	return fd;
}

int inode_flush_inline(struct vfs_store *s, struct store_inode *n)
{
	if (!n->inl)
		return 0;
	int fd = layer_fd(s, n, s->live);
	if (store_reserve_release(s, fd))
		fd = layer_fd(s, n, s->live); /* the commit's data: see STORE_RESERVE */
	return fd < 0 ? fd : 0;
}

/* Write into the in-memory chunk 0 when the file qualifies: returns 1 if done, 0 if the write
 * must go to the layer file instead (too big, a file already there, budget spent). */
static int inline_write(struct vfs_store *s, struct store_inode *n, const void *buf, size_t len,
			uint64_t off)
{
	uint64_t end = off + len;
	if (end > INLINE_MAX)
		return 0;
	if (!n->inl && (n->map.held != 0 || n->live_file == s->live))
		return 0;
	if (end > n->inl_cap) {
		uint32_t cap = CK_MAX(INLINE_MIN, n->inl_cap);
		while (cap < end)
			cap *= 2;
		uint64_t add = cap - n->inl_cap;
		if (__atomic_add_fetch(&s->inline_bytes, add, __ATOMIC_RELAXED) >
		    STORE_INLINE_BUDGET) {
			__atomic_sub_fetch(&s->inline_bytes, add, __ATOMIC_RELAXED);
			return 0;
		}
		uint8_t *p = realloc(n->inl, cap);
		if (!p) {
			__atomic_sub_fetch(&s->inline_bytes, add, __ATOMIC_RELAXED);
			return 0;
		}
		memset(p + n->inl_cap, 0, add);
		n->inl = p;
		n->inl_cap = cap;
	}
	if (cmap_get(&n->map, 0) != s->live) {
		int r = cmap_set(&n->map, 0, s->live);
		if (r < 0)
			return r;
	}
	memcpy(n->inl + off, buf, len);
	return 1;
}

/* Read chunk @c (the bytes below the file size) from the older layer holding it into @buf
 * (VFS_CHUNK_SIZE, rest zero). */
static int chunk_read(struct vfs_store *s, struct store_inode *n, uint64_t c, uint8_t *buf)
{
	memset(buf, 0, VFS_CHUNK_SIZE);
	uint64_t layer = cmap_get(&n->map, c), start = c * VFS_CHUNK_SIZE;
	if (layer == 0 || start >= n->size)
		return 0;
	int fd = layer_fd(s, n, layer);
	if (fd < 0)
		return fd;
	size_t want = (size_t)CK_MIN((uint64_t)VFS_CHUNK_SIZE, n->size - start);
	ssize_t r = ck_pread_full(fd, buf, want, (off_t)start);
	return r < 0 ? (int)r : 0;
}

/* Drop chunk @c from the map, punching it out of the live layer if it was there. */
static int chunk_drop(struct vfs_store *s, struct store_inode *n, uint64_t c)
{
	uint64_t layer = cmap_get(&n->map, c);
	if (layer == 0)
		return 0;
	if (layer == s->live) {
		int fd = layer_fd(s, n, layer);
		if (fd < 0)
			return fd;
		if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)(c * VFS_CHUNK_SIZE), VFS_CHUNK_SIZE) < 0)
			return -errno;
	}
	return cmap_set(&n->map, c, 0);
}

/* Zero bytes [@a, @b) inside chunk @c (a partial range), in the live layer. */
static int chunk_zero_part(struct vfs_store *s, struct store_inode *n, uint64_t c, uint64_t a,
			   uint64_t b)
{
	uint64_t layer = cmap_get(&n->map, c);
	if (layer == 0)
		return 0;
	int fd = layer_fd(s, n, s->live);
	if (fd < 0)
		return fd;
	if (layer != s->live) {
		_cleanup_free_ uint8_t *buf = malloc(VFS_CHUNK_SIZE);
		if (!buf)
			return -ENOMEM;
		int r = chunk_read(s, n, c, buf);
		if (r < 0)
			return r;
		memset(buf + (a - c * VFS_CHUNK_SIZE), 0, b - a);
		r = ck_pwrite_full(fd, buf, VFS_CHUNK_SIZE, (off_t)(c * VFS_CHUNK_SIZE));
		if (r < 0)
			return r;
		return cmap_set(&n->map, c, s->live);
	}
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)a, (off_t)(b - a)) < 0)
		return -errno;
	return 0;
}

/* Make [@a, @b) read as zeros (within the current size or not). n->lock held. */
static int data_zero(struct vfs_store *s, struct store_inode *n, uint64_t a, uint64_t b)
{
	while (a < b) {
		uint64_t c = a / VFS_CHUNK_SIZE, cs = c * VFS_CHUNK_SIZE,
			 cend = cs + VFS_CHUNK_SIZE;
		uint64_t e = CK_MIN(b, cend);
		int r;
		if (a == cs && e == cend) {
			uint64_t h = cmap_next(&n->map, c, true);
			if (h == UINT64_MAX)
				return 0; /* nothing held from here on */
			if (h > c) {
				a = CK_MIN(b, h * VFS_CHUNK_SIZE);
				continue;
			}
			r = chunk_drop(s, n, c);
		} else {
			r = chunk_zero_part(s, n, c, a, e);
		}
		if (r < 0)
			return r;
		a = e;
	}
	return 0;
}

int data_truncate(struct vfs_store *s, struct store_inode *n, uint64_t size)
{
	if (size >= n->size) {
		n->size = size;
		inode_mark_dirty(s, n);
		return 0;
	}
	if (n->inl) {
		/* in memory: zero the cut tail (bytes past the size must read as zeros) */
		if (size < n->inl_cap)
			memset(n->inl + size, 0, n->inl_cap - size);
		if (size == 0) {
			inode_drop_inline(s, n);
			cmap_set(&n->map, 0, 0);
		}
		n->size = size;
		inode_mark_dirty(s, n);
		return 0;
	}
	uint64_t end = cmap_end(&n->map);
	uint64_t first_full = (size + VFS_CHUNK_SIZE - 1) / VFS_CHUNK_SIZE;
	int r = 0;
	/* The live layer file: cut it, which zeroes everything past @size in it at once. */
	bool has_live = false;
	for (uint64_t c = first_full; c < end && !has_live; c++)
		has_live = cmap_get(&n->map, c) == s->live;
	if (size % VFS_CHUNK_SIZE && cmap_get(&n->map, size / VFS_CHUNK_SIZE) == s->live)
		has_live = true;
	if (has_live) {
		int fd = layer_fd(s, n, s->live);
		if (fd < 0)
			return fd;
		if (ftruncate(fd, (off_t)size) < 0)
			return -errno;
	}
	for (uint64_t c = first_full; c < end; c++)
		cmap_set(&n->map, c, 0);
	if (size % VFS_CHUNK_SIZE) {
		uint64_t c = size / VFS_CHUNK_SIZE;
		uint64_t layer = cmap_get(&n->map, c);
		if (layer != 0 && layer != s->live)
			r = chunk_zero_part(s, n, c, size, (c + 1) * VFS_CHUNK_SIZE);
	}
	if (r == 0) {
		n->size = size;
		inode_mark_dirty(s, n);
	}
	return r;
}

/* Look up and lock regular inode @ino; returns with the read lock and n->lock held. */
static int get_reg(struct vfs_store *s, uint64_t ino, struct store_inode **ret)
{
	pthread_rwlock_rdlock(&s->ns);
	struct store_inode *n = inode_get(s, ino);
	int r = !n ? -ENOENT : S_ISDIR(n->mode) ? -EISDIR : !S_ISREG(n->mode) ? -EINVAL : 0;
	if (r < 0) {
		pthread_rwlock_unlock(&s->ns);
		return r;
	}
	pthread_mutex_lock(&n->lock);
	*ret = n;
	return 0;
}

static void put_reg(struct vfs_store *s, struct store_inode *n)
{
	pthread_mutex_unlock(&n->lock);
	pthread_rwlock_unlock(&s->ns);
}

ssize_t vfs_store_read(struct vfs_store *s, uint64_t ino, void *buf, size_t len, off_t off)
{
	struct store_inode *n;
	if (off < 0)
		return -EINVAL;
	int r = get_reg(s, ino, &n);
	if (r < 0)
		return r;
	uint64_t o = (uint64_t)off;
	size_t total = o >= n->size ? 0 : (size_t)CK_MIN((uint64_t)len, n->size - o);
	size_t done = 0;
	if (n->inl) {
		/* only chunk 0 is mapped, and it is in memory */
		size_t have = o >= n->inl_cap ? 0 : (size_t)CK_MIN((uint64_t)total, n->inl_cap - o);
		memcpy(buf, n->inl + (have ? o : 0), have);
		memset((uint8_t *)buf + have, 0, total - have);
		done = total;
	}
	while (done < total) {
		uint64_t pos = o + done, c = pos / VFS_CHUNK_SIZE;
		uint64_t layer = cmap_get(&n->map, c);
		/* a run of chunks held by the same layer: one pread */
		uint64_t c2 = c + 1;
		while (c2 * VFS_CHUNK_SIZE < o + total && cmap_get(&n->map, c2) == layer)
			c2++;
		size_t run = (size_t)CK_MIN(c2 * VFS_CHUNK_SIZE - pos, (uint64_t)(total - done));
		uint8_t *dst = (uint8_t *)buf + done;
		if (layer == 0) {
			memset(dst, 0, run);
		} else {
			int fd = layer_fd(s, n, layer);
			if (fd < 0) {
				r = fd;
				break;
			}
			ssize_t got = ck_pread_full(fd, dst, run, (off_t)pos);
			/* A large read is usually part of a sequential one: have the host read the
			 * next stretch of this layer meanwhile (concurrent READs from several
			 * workers defeat its own readahead heuristics). */
			if (got == (ssize_t)run && run >= READ_HINT_MIN)
				posix_fadvise(fd, (off_t)(pos + run), READ_HINT_AHEAD,
					      POSIX_FADV_WILLNEED);
			if (got < 0) {
				r = (int)got;
				break;
			}
			memset(dst + got, 0, run - (size_t)got);
		}
		done += run;
	}
	put_reg(s, n);
	return r < 0 ? r : (ssize_t)done;
}

/* Early writeback: once STORE_WB_KICK bytes were written to an inode's live layer since the
 * last kick, ask the host to start writing that range out (SYNC_FILE_RANGE_WRITE: starts I/O on
 * the dirty pages, waits for none), so a commit's fdatasync finds little left to do. One range
 * per inode, widened by each write: sync_file_range only visits the dirty pages within it. */
static void writeback_kick(struct vfs_store *s, struct store_inode *n, int fd, uint64_t pos,
			   size_t len)
{
	uint64_t end = pos + len;
	if (n->wb_layer != s->live || n->wb_bytes == 0) {
		n->wb_layer = s->live;
		n->wb_lo = pos;
		n->wb_hi = end;
		n->wb_bytes = 0;
	} else {
		n->wb_lo = CK_MIN(n->wb_lo, pos);
		n->wb_hi = CK_MAX(n->wb_hi, end);
	}
	n->wb_bytes += len;
	if (n->wb_bytes < STORE_WB_KICK)
		return;
	(void)sync_file_range(fd, (off_t)n->wb_lo, (off_t)(n->wb_hi - n->wb_lo),
			      SYNC_FILE_RANGE_WRITE);
	n->wb_bytes = 0;
}

/* Move exactly @len bytes from pipe @pipe_fd to @fd at @pos (splice: the pages go from the pipe
 * into the layer's page cache with one copy, none through our memory). */
static int splice_full(int pipe_fd, int fd, size_t len, uint64_t pos)
{
	loff_t o = (loff_t)pos;
	while (len > 0) {
		ssize_t k = splice(pipe_fd, NULL, fd, &o, len, SPLICE_F_MOVE);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			return -EIO; /* the pipe held less than the request said */
		len -= (size_t)k;
	}
	return 0;
}

/* Write a run of chunks that need no copy straight from the caller's buffer, or from
 * @pipe_fd when @buf is NULL. */
static int write_direct_from(struct vfs_store *s, struct store_inode *n, const uint8_t *buf,
			     int pipe_fd, size_t len, uint64_t pos)
{
	int fd = layer_fd(s, n, s->live);
	if (fd < 0)
		return fd;
	int r = buf ? ck_pwrite_full(fd, buf, len, (off_t)pos) : splice_full(pipe_fd, fd, len, pos);
	if (r == 0)
		writeback_kick(s, n, fd, pos, len);
	uint64_t c0 = pos / VFS_CHUNK_SIZE, c1 = (pos + len - 1) / VFS_CHUNK_SIZE;
	for (uint64_t c = c0; c <= c1; c++) {
		if (r < 0) {
			/* keep the live layer's unmapped chunks zero */
			if (cmap_get(&n->map, c) != s->live)
				fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					  (off_t)(c * VFS_CHUNK_SIZE), VFS_CHUNK_SIZE);
		} else {
			int q = cmap_set(&n->map, c, s->live);
			if (q < 0)
				return q;
		}
	}
	return r;
}

static int write_direct(struct vfs_store *s, struct store_inode *n, const uint8_t *buf, size_t len,
			uint64_t pos)
{
	return write_direct_from(s, n, buf, -1, len, pos);
}

static int write_check(off_t off, size_t len)
{
	if (off < 0)
		return -EINVAL;
	if ((uint64_t)off > STORE_MAX_FILE || len > STORE_MAX_FILE - (uint64_t)off)
		return -EFBIG;
	return 0;
}

/* After a successful write of [@off, @end): size and times. */
static void write_done(struct vfs_store *s, struct store_inode *n, uint64_t end, unsigned flags)
{
	if (end > n->size)
		n->size = end;
	if (!(flags & VFS_STORE_KERNEL_TIMES)) {
		store_now(&n->mtime);
		n->ctime = n->mtime;
	}
	inode_mark_dirty(s, n);
}

ssize_t vfs_store_write_pipe(struct vfs_store *s, uint64_t ino, int pipe_fd, size_t len, off_t off,
			     unsigned flags)
{
	struct store_inode *n;
	int r = write_check(off, len);
	if (r < 0)
		return r;
	uint64_t o = (uint64_t)off, end = o + len;
	/* Small writes may belong in memory (inline_write): they take the buffered path. */
	if (len == 0 || end <= INLINE_MAX)
		return 0;
	r = get_reg(s, ino, &n);
	if (r < 0)
		return r;
	/* Only a write that needs no copy-up goes straight from the pipe; chunk by chunk the
	 * same test as vfs_store_write's loop. */
	for (uint64_t c = o / VFS_CHUNK_SIZE; c * VFS_CHUNK_SIZE < end; c++) {
		uint64_t cs = c * VFS_CHUNK_SIZE, layer = cmap_get(&n->map, c);
		bool full = o <= cs && end >= cs + VFS_CHUNK_SIZE;
		if (layer != 0 && layer != s->live && !full && cs < n->size) {
			put_reg(s, n);
			return 0;
		}
	}
	r = write_direct_from(s, n, NULL, pipe_fd, len, o);
	if (r == 0)
		write_done(s, n, end, flags);
	put_reg(s, n);
	return r < 0 ? r : (ssize_t)len;
}

ssize_t vfs_store_write(struct vfs_store *s, uint64_t ino, const void *buf, size_t len, off_t off,
			unsigned flags)
{
	struct store_inode *n;
	int r = write_check(off, len);
	if (r < 0)
		return r;
	if (len == 0)
		return 0;
	r = get_reg(s, ino, &n);
	if (r < 0)
		return r;
	const uint8_t *src = buf;
	uint64_t o = (uint64_t)off, end = o + len;
	uint64_t run_start = o; /* start of the pending direct run */
	uint8_t *tmp = NULL;
	r = inline_write(s, n, buf, len, o);
	bool in_memory = r != 0;
	if (r > 0)
		r = 0;
	for (uint64_t pos = o; pos < end && r == 0 && !in_memory;) {
		uint64_t c = pos / VFS_CHUNK_SIZE, cs = c * VFS_CHUNK_SIZE;
		uint64_t ce = CK_MIN(end, cs + VFS_CHUNK_SIZE);
		uint64_t layer = cmap_get(&n->map, c);
		bool full = pos == cs && ce == cs + VFS_CHUNK_SIZE;
		if (layer == 0 || layer == s->live || full || cs >= n->size) {
			pos = ce;
			continue;
		}
		/* partial write to a chunk an older layer holds: flush the run, copy up */
		if (pos > run_start)
			r = write_direct(s, n, src + (run_start - o), pos - run_start, run_start);
		if (r == 0 && !tmp && !(tmp = malloc(VFS_CHUNK_SIZE)))
			r = -ENOMEM;
		if (r == 0)
			r = chunk_read(s, n, c, tmp);
		if (r == 0) {
			memcpy(tmp + (pos - cs), src + (pos - o), ce - pos);
			uint64_t valid = CK_MAX(ce, CK_MIN(n->size, cs + VFS_CHUNK_SIZE)) - cs;
			r = write_direct(s, n, tmp, valid, cs);
		}
		pos = run_start = ce;
	}
	if (r == 0 && !in_memory && end > run_start)
		r = write_direct(s, n, src + (run_start - o), end - run_start, run_start);
	free(tmp);
	if (r == 0)
		write_done(s, n, end, flags);
	put_reg(s, n);
	return r < 0 ? r : (ssize_t)len;
}

/* fallocate mode 0 / KEEP_SIZE: the holes of [a, b) go to the live layer and are allocated
 * there, so that writes into them cannot fail for space and a request beyond the disk's free
 * space fails with ENOSPC, as on a local disk. A chunk an older layer holds is copied up when
 * written, as on any copy-on-write file system: its space is not reserved. More than the
 * host's free space is refused before anything is allocated (ext4 would fill the disk first
 * and keep what it got), and a run that fails part way is punched out again. */
static int data_reserve(struct vfs_store *s, struct store_inode *n, uint64_t a, uint64_t b)
{
	uint64_t c = a / VFS_CHUNK_SIZE, end = (b - 1) / VFS_CHUNK_SIZE + 1, holes = 0;
	for (uint64_t k = cmap_next(&n->map, c, false); k < end;
	     k = cmap_next(&n->map, k + 1, false))
		holes += CK_MIN(b, (k + 1) * VFS_CHUNK_SIZE) - CK_MAX(a, k * VFS_CHUNK_SIZE);
	struct statvfs sv;
	if (holes && fstatvfs(s->datafd, &sv) == 0 && holes / sv.f_frsize >= sv.f_bavail)
		return -ENOSPC;
	struct u64vec done = {0}; /* runs mapped here, [first, end) chunk pairs: undone on error */
	int fd = -1, r = 0;
	while (c < end && r == 0) {
		if (cmap_get(&n->map, c)) {
			c++;
			continue;
		}
		if (fd < 0) { /* moves an in-memory chunk 0 to the file first: see the top */
			fd = layer_fd(s, n, s->live);
			r = fd < 0 ? fd : 0;
			continue;
		}
		uint64_t e = c;
		while (e < end && !cmap_get(&n->map, e))
			e++;
		uint64_t lo = CK_MAX(a, c * VFS_CHUNK_SIZE), hi = CK_MIN(b, e * VFS_CHUNK_SIZE);
		if (fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)lo, (off_t)(hi - lo)) < 0) {
			r = -errno; /* these chunks are not the live layer's: zeros there */
			(void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)lo,
					(off_t)(hi - lo));
			break;
		}
		if ((r = u64vec_push(&done, c)) < 0 || (r = u64vec_push(&done, e)) < 0)
			break;
		for (uint64_t k = c; k < e && r == 0; k++)
			r = cmap_set(&n->map, k, s->live);
		c = e;
	}
	/* A failure maps nothing of this call: chunks mapped past the size the call did not get
	 * to set would make the epoch unreadable (a chunk map beyond the file). */
	for (size_t i = 0; r < 0 && i + 1 < done.n; i += 2) {
		for (uint64_t k = done.v[i]; k < done.v[i + 1]; k++)
			(void)cmap_set(&n->map, k, 0); /* clearing allocates nothing */
		uint64_t lo = CK_MAX(a, done.v[i] * VFS_CHUNK_SIZE),
			 hi = CK_MIN(b, done.v[i + 1] * VFS_CHUNK_SIZE);
		(void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)lo,
				(off_t)(hi - lo));
	}
	u64vec_free(&done);
	return r;
}

int vfs_store_fallocate(struct vfs_store *s, uint64_t ino, int mode, off_t off, off_t len)
{
	if (off < 0 || len <= 0)
		return -EINVAL;
	if ((uint64_t)off > STORE_MAX_FILE || (uint64_t)len > STORE_MAX_FILE - (uint64_t)off)
		return -EFBIG;
	bool keep = mode & FALLOC_FL_KEEP_SIZE, zero;
	switch (mode) {
	case 0:
	case FALLOC_FL_KEEP_SIZE:
		zero = false;
		break;
	case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
	case FALLOC_FL_ZERO_RANGE:
	case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
		zero = true;
		break;
	default:
		return -EOPNOTSUPP;
	}
	struct store_inode *n;
	int r = get_reg(s, ino, &n);
	if (r < 0)
		return r;
	uint64_t a = (uint64_t)off, b = a + (uint64_t)len;
	if (zero && a < n->size)
		r = data_zero(s, n, a, CK_MIN(b, n->size));
	else if (!zero && a < (keep ? n->size : b))
		/* Not past the size the call leaves: a chunk map stays within its file. */
		r = data_reserve(s, n, a, keep ? CK_MIN(b, n->size) : b);
	if (r == 0 && !keep && b > n->size)
		n->size = b;
	/* Times stay: with the writeback cache the kernel owns a regular file's mtime and ctime
	 * (it sets them itself when the call extends the file, and sends them), and a punched
	 * hole does not change the ones it shows the job. Set here, the stored ones would differ
	 * from what the job saw. */
	if (r == 0)
		inode_mark_dirty(s, n);
	put_reg(s, n);
	return r;
}

int vfs_store_lseek(struct vfs_store *s, uint64_t ino, off_t off, int whence, off_t *ret)
{
	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	if (off < 0)
		return -ENXIO;
	struct store_inode *n;
	int r = get_reg(s, ino, &n);
	if (r < 0)
		return r;
	uint64_t o = (uint64_t)off;
	if (o >= n->size) {
		r = -ENXIO;
	} else {
		uint64_t c = cmap_next(&n->map, o / VFS_CHUNK_SIZE, whence == SEEK_DATA);
		uint64_t at = c == UINT64_MAX ? UINT64_MAX : CK_MAX(o, c * VFS_CHUNK_SIZE);
		if (whence == SEEK_DATA && at >= n->size)
			r = -ENXIO;
		else
			*ret = (off_t)CK_MIN(at, n->size);
	}
	put_reg(s, n);
	return r;
}
