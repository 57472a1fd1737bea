/* Image writer. Pages go to pages.img as they are dumped (zero pages dropped, the rest coalesced
 * into runs of at most IMG_CHUNK_PAGES, as a run never spans two chunks); core.img is written at commit. An I/O thread does
 * the zero check, checksums, pwrite and early writeback while the dumper copies the next chunk
 * out of the target into another of WQ_N buffers (img_writer_buf/img_writer_submit), so the
 * copy overlaps the disk. The files
 * live in ".ID.tmp" until commit renames the directory to ID; LATEST is replaced last, so a
 * crash at any point leaves the previous checkpoint complete and the new one invisible. */
#include "restore/image-internal.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <pthread.h>
#include <sys/stat.h>

#define WQ_N	 4
#define WQ_BYTES ((size_t)IMG_CHUNK_PAGES * RESTORE_PAGE_SIZE)
/* The flusher starts writeback of every FLUSH_STEP bytes written. */
#define FLUSH_STEP (8ull << 20)

struct wslot {
	uint8_t *buf; /* WQ_BYTES, owned */
	uint64_t addr;
	size_t len;
};

struct restore_image_writer {
	/* Queue between the dumper (fills slot[tail]) and the I/O thread (drains slot[head]). */
	pthread_t io;
	bool io_running;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct wslot slot[WQ_N];
	unsigned head, tail, count;
	bool stop;
	int io_err; /* first error of the I/O thread, reported by the next submit/commit */
	/* Writeback is started by a thread of its own: sync_file_range(WRITE) blocks while the
	 * disk's queue is full, and in the I/O thread that tied the copy out of the frozen
	 * process to the disk's speed. Now the copy runs at memory speed (the process can be
	 * resumed at once, restore_dump_opts.copied) while the disk is kept busy behind it. */
	pthread_t flusher;
	bool flusher_running, flusher_stop;
	uint64_t flushed; /* pages.img offset up to which writeback was started */

	int dirfd; /* borrowed */
	char id[NAME_MAX + 1];
	char tmp[NAME_MAX + 1];
	int tmpfd; /* the temporary directory */
	int pages_fd;
	uint64_t off; /* next write offset in pages.img */
	uint64_t last_end;
	struct restore_page_run *runs;
	size_t nruns, cap;
	bool committed;
};

static void *io_main(void *arg);
static void *flusher_main(void *arg);

static bool id_valid(const char *id)
{
	size_t n = strlen(id);
	return n > 0 && n <= NAME_MAX - 5 && !strchr(id, '/') && id[0] != '.';
}

int restore_image_writer_new(int dirfd, const char *id, struct restore_image_writer **ret)
{
	if (!id_valid(id))
		return -EINVAL;
	struct stat st;
	if (fstatat(dirfd, id, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	_cleanup_free_ struct restore_image_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->dirfd = dirfd;
	w->tmpfd = w->pages_fd = -1;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	snprintf(w->id, sizeof(w->id), "%s", id);
	snprintf(w->tmp, sizeof(w->tmp), ".%s.tmp", id);
	int r = ck_rm_rf_at(dirfd, w->tmp); /* left over by a crashed checkpoint */
	if (r < 0)
		return r;
	if (mkdirat(dirfd, w->tmp, 0700) < 0)
		return -errno;
	w->tmpfd = openat(dirfd, w->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->tmpfd < 0) {
		r = -errno;
		goto undo_mkdir;
	}
	w->pages_fd = openat(w->tmpfd, IMG_PAGES_NAME, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->pages_fd < 0) {
		r = -errno;
		close(w->tmpfd);
		goto undo_mkdir;
	}
	w->off = IMG_PAGES_HDR_LEN;
	for (int i = 0; i < WQ_N; i++) {
		w->slot[i].buf = aligned_alloc(RESTORE_PAGE_SIZE, WQ_BYTES);
		if (!w->slot[i].buf) {
			restore_image_writer_free(TAKE_PTR(w));
			return -ENOMEM;
		}
	}
	r = -pthread_create(&w->io, NULL, io_main, w);
	if (r < 0) {
		restore_image_writer_free(TAKE_PTR(w));
		return r;
	}
	w->io_running = true;
	w->flushed = IMG_PAGES_HDR_LEN;
	r = -pthread_create(&w->flusher, NULL, flusher_main, w);
	if (r < 0) {
		restore_image_writer_free(TAKE_PTR(w));
		return r;
	}
	w->flusher_running = true;
	*ret = TAKE_PTR(w);
	return 0;
undo_mkdir:
	ck_rm_rf_at(dirfd, w->tmp);
	return r;
}

uint64_t img_writer_bytes_nowait(struct restore_image_writer *w)
{
	/* Only the I/O thread moves off while chunks are queued: read it under the lock. */
	pthread_mutex_lock(&w->mu);
	uint64_t off = w->off;
	pthread_mutex_unlock(&w->mu);
	return off - IMG_PAGES_HDR_LEN;
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)(const void *)p;
	uint64_t acc = 0;
	for (size_t i = 0; i < RESTORE_PAGE_SIZE / 8; i += 8)
		acc |= q[i] | q[i + 1] | q[i + 2] | q[i + 3] | q[i + 4] | q[i + 5] | q[i + 6] |
		       q[i + 7];
	return acc == 0;
}

static int add_run(struct restore_image_writer *w, uint64_t addr, const uint8_t *p, size_t np)
{
	int r = ck_pwrite_full(w->pages_fd, p, np * RESTORE_PAGE_SIZE, (off_t)w->off);
	if (r < 0)
		return r;
	if (w->nruns == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 256;
		struct restore_page_run *n = realloc(w->runs, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		w->runs = n;
		w->cap = cap;
	}
	w->runs[w->nruns++] = (struct restore_page_run){
		.addr = addr,
		.file_off = w->off,
		.npages = (uint32_t)np,
		.checksum = ck_checksum(p, np * RESTORE_PAGE_SIZE),
	};
	pthread_mutex_lock(&w->mu); /* restore_image_writer_bytes() and the flusher read it */
	w->off += np * RESTORE_PAGE_SIZE;
	if (w->off - w->flushed >= FLUSH_STEP)
		pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

/* Start writeback of what the I/O thread wrote, FLUSH_STEP at a time, so the final fsync has
 * little left to do. Advisory: write errors surface at that fsync. */
static void *flusher_main(void *arg)
{
	struct restore_image_writer *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->flusher_stop && w->off - w->flushed < FLUSH_STEP)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->flusher_stop)
			break;
		uint64_t from = w->flushed, to = w->off;
		pthread_mutex_unlock(&w->mu);
		sync_file_range(w->pages_fd, (off_t)from, (off_t)(to - from),
				SYNC_FILE_RANGE_WRITE);
		pthread_mutex_lock(&w->mu);
		w->flushed = to;
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static void flusher_stop(struct restore_image_writer *w)
{
	if (!w->flusher_running)
		return;
	pthread_mutex_lock(&w->mu);
	w->flusher_stop = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->flusher, NULL);
	w->flusher_running = false;
}

/* Zero check, run building and writing of one chunk: runs on the I/O thread only. */
static int write_chunk(struct restore_image_writer *w, uint64_t addr, const uint8_t *p, size_t len)
{
	size_t n = len / RESTORE_PAGE_SIZE, i = 0;
	while (i < n) {
		while (i < n && page_is_zero(p + i * RESTORE_PAGE_SIZE))
			i++;
		size_t j = i;
		while (j < n && j - i < IMG_MAX_RUN_PAGES &&
		       !page_is_zero(p + j * RESTORE_PAGE_SIZE))
			j++;
		if (j > i) {
			int r = add_run(w, addr + i * RESTORE_PAGE_SIZE, p + i * RESTORE_PAGE_SIZE,
					j - i);
			if (r < 0)
				return r;
		}
		i = j;
	}
	return 0;
}

static void *io_main(void *arg)
{
	struct restore_image_writer *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (w->count == 0 && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->count == 0)
			break;
		struct wslot s = w->slot[w->head];
		bool skip = w->io_err != 0;
		pthread_mutex_unlock(&w->mu);
		int r = skip ? 0 : write_chunk(w, s.addr, s.buf, s.len);
		pthread_mutex_lock(&w->mu);
		if (r < 0 && !w->io_err)
			w->io_err = r;
		w->head = (w->head + 1) % WQ_N;
		w->count--;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

uint8_t *img_writer_buf(struct restore_image_writer *w)
{
	pthread_mutex_lock(&w->mu);
	while (w->count == WQ_N)
		pthread_cond_wait(&w->cv, &w->mu);
	uint8_t *b = w->slot[w->tail].buf; /* single producer: slot[tail] stays ours */
	pthread_mutex_unlock(&w->mu);
	return b;
}

int img_writer_submit(struct restore_image_writer *w, uint64_t addr, size_t len)
{
	if (w->committed || addr % RESTORE_PAGE_SIZE || len % RESTORE_PAGE_SIZE || len > WQ_BYTES ||
	    addr < w->last_end || addr + len < addr)
		return -EINVAL;
	w->last_end = addr + len;
	pthread_mutex_lock(&w->mu);
	w->slot[w->tail].addr = addr;
	w->slot[w->tail].len = len;
	w->tail = (w->tail + 1) % WQ_N;
	w->count++;
	int r = w->io_err;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return r;
}

/* Wait until the I/O thread has written everything queued; its first error, or 0. */
static int drain(struct restore_image_writer *w)
{
	pthread_mutex_lock(&w->mu);
	while (w->count > 0)
		pthread_cond_wait(&w->cv, &w->mu);
	int r = w->io_err;
	pthread_mutex_unlock(&w->mu);
	return r;
}

uint64_t restore_image_writer_bytes(struct restore_image_writer *w)
{
	drain(w);
	return img_writer_bytes_nowait(w);
}

int restore_image_writer_add_pages(struct restore_image_writer *w, uint64_t addr, const void *buf,
				   size_t len)
{
	if (w->committed || addr % RESTORE_PAGE_SIZE || len % RESTORE_PAGE_SIZE ||
	    addr < w->last_end || addr + len < addr)
		return -EINVAL;
	const uint8_t *p = buf;
	while (len > 0) {
		size_t n = CK_MIN(len, WQ_BYTES);
		memcpy(img_writer_buf(w), p, n);
		int r = img_writer_submit(w, addr, n);
		if (r < 0)
			return r;
		p += n;
		addr += n;
		len -= n;
	}
	return 0;
}

static void put_section_flags(struct ck_buf *out, uint32_t type, uint32_t flags,
			      const struct ck_buf *payload)
{
	uint8_t h[IMG_SEC_HDR_LEN];
	ck_put_le32(h, type);
	ck_put_le32(h + 4, flags);
	ck_put_le64(h + 8, payload->len);
	ck_put_le64(h + 16, ck_checksum(payload->data, payload->len));
	ck_buf_append(out, h, sizeof(h));
	ck_buf_append(out, payload->data, payload->len);
}

static void put_section(struct ck_buf *out, uint32_t type, const struct ck_buf *payload)
{
	put_section_flags(out, type, 0, payload);
}

/* Build the body of core.img: one section per part, in the order the reader expects. */
static int build_core(const struct restore_image_writer *w, const struct restore_image *m,
		      struct ck_buf *body)
{
	struct ck_buf s = {0};
	img_pack_proc(&s, &m->proc);
	put_section(body, IMG_SEC_PROC, &s);
	for (size_t i = 0; i < m->nthreads; i++) {
		s.len = 0;
		img_pack_thread(&s, &m->threads[i]);
		put_section(body, IMG_SEC_THREAD, &s);
	}
	s.len = 0;
	img_pack_vmas(&s, m->vmas, m->nvmas);
	put_section(body, IMG_SEC_VMAS, &s);
	s.len = 0;
	img_pack_fds(&s, m->fds, m->nfds);
	put_section(body, IMG_SEC_FDS, &s);
	s.len = 0;
	img_pack_runs(&s, w->runs, w->nruns, w->off);
	put_section(body, IMG_SEC_RUNS, &s);
	if (m->timers.flags & RESTORE_TIMERS_F_VALID) {
		s.len = 0;
		img_pack_timers(&s, &m->timers);
		put_section(body, IMG_SEC_TIMERS, &s);
	}
	bool fdstate = false;
	for (size_t i = 0; i < m->nfds; i++)
		fdstate |= m->fds[i].st.present;
	if (fdstate) {
		s.len = 0;
		img_pack_fdstate(&s, m->fds, m->nfds);
		put_section_flags(body, IMG_SEC_FDSTATE, IMG_SEC_F_OPTIONAL, &s);
	}
	int r = s.err ? s.err : body->err;
	ck_buf_free(&s);
	return r;
}

int restore_image_writer_commit(struct restore_image_writer *w, const struct restore_image *meta)
{
	if (w->committed)
		return -EINVAL;
	int r = drain(w);
	if (r < 0)
		return r;
	flusher_stop(w); /* the fsync below does the rest */
	if (meta->nthreads == 0 || meta->nthreads > IMG_MAX_THREADS || meta->nvmas > IMG_MAX_VMAS ||
	    meta->nfds > IMG_MAX_FDS || meta->timers.nposix > RESTORE_MAX_TIMERS)
		return -E2BIG;
	uint8_t ph[IMG_PAGES_HDR_LEN] = {0};
	uint32_t version = img_version_of(meta);
	img_hdr_pack(ph, IMG_MAGIC_PAGES, version, IMG_PAGES_HDR_LEN, w->off - IMG_PAGES_HDR_LEN,
		     0);
	r = ck_pwrite_full(w->pages_fd, ph, sizeof(ph), 0);
	if (r < 0)
		return r;
	if (fsync(w->pages_fd) < 0)
		return -errno;

	struct ck_buf body = {0};
	ck_buf_append(&body, ph, IMG_CORE_HDR_LEN); /* placeholder for the header */
	r = build_core(w, meta, &body);
	if (r == 0 && body.len - IMG_CORE_HDR_LEN > IMG_CORE_MAX_LEN)
		r = -E2BIG;
	if (r == 0) {
		uint64_t blen = body.len - IMG_CORE_HDR_LEN;
		img_hdr_pack(body.data, IMG_MAGIC_CORE, version, IMG_CORE_HDR_LEN, blen,
			     ck_checksum(body.data + IMG_CORE_HDR_LEN, blen));
		r = ck_write_file_atomic(w->tmpfd, IMG_CORE_NAME, body.data, body.len, 0600);
	}
	ck_buf_free(&body);
	if (r < 0)
		return r;
	if (fsync(w->tmpfd) < 0)
		return -errno;
	if (renameat(w->dirfd, w->tmp, w->dirfd, w->id) < 0)
		return -errno;
	w->committed = true;
	if (fsync(w->dirfd) < 0)
		return -errno;
	char line[NAME_MAX + 2];
	int n = snprintf(line, sizeof(line), "%s\n", w->id);
	return ck_write_file_atomic(w->dirfd, IMG_LATEST_NAME, line, (size_t)n, 0600);
}

void restore_image_writer_free(struct restore_image_writer *w)
{
	if (!w)
		return;
	if (w->io_running) {
		pthread_mutex_lock(&w->mu);
		w->stop = true;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->io, NULL);
	}
	flusher_stop(w);
	for (int i = 0; i < WQ_N; i++)
		free(w->slot[i].buf);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	if (w->pages_fd >= 0)
		close(w->pages_fd);
	if (w->tmpfd >= 0)
		close(w->tmpfd);
	if (!w->committed)
		ck_rm_rf_at(w->dirfd, w->tmp);
	free(w->runs);
	free(w);
}
