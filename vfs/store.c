/* Opening, creating and closing the store; the FORMAT and refs files; error messages.
 *
 * FORMAT: "CKVFS-FM" le32 version, le32 chunk size, le64 XXH3 of the preceding bytes.
 * refs:   "CKVFS-RF" le32 version, le32 flags, le64 next epoch id, le32 n,
 *         n x (str name, le64 epoch, le64 created, le64 bytes), le64 XXH3.
 * Every file is checked whole (checksum first) before anything in it is believed; a newer
 * version with a valid checksum is -EPROTONOSUPPORT, anything else wrong is -EBADMSG. */
#include "vfs/store-private.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/resource.h>

static const char FMT_MAGIC[8] = {'C', 'K', 'V', 'F', 'S', '-', 'F', 'M'};
static const char REFS_MAGIC[8] = {'C', 'K', 'V', 'F', 'S', '-', 'R', 'F'};
#define REFS_VERSION 1u

static __thread char open_err[STORE_ERR_MAX];

void store_set_error(struct vfs_store *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
}

void vfs_store_last_commit(struct vfs_store *s)
{
	s->use_reserve = true;
}

const char *vfs_store_last_error(struct vfs_store *s)
{
	return s->err;
}

const char *vfs_store_open_error(void)
{
	return open_err;
}

uint64_t vfs_store_base_epoch(struct vfs_store *s)
{
	pthread_rwlock_rdlock(&s->ns);
	uint64_t b = s->base;
	pthread_rwlock_unlock(&s->ns);
	return b;
}

/* The kernel's clock for file times (current_time(): the coarse one, a tick behind the fine
 * one): the times the kernel sets itself (a write's mtime under the writeback cache) and ours
 * must come from one clock, or a later change could carry an older time than an earlier one
 * (a directory's mtime against a file written after it, a stamp file against its source). */
void store_now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME_COARSE, ts);
}

int u64vec_push(struct u64vec *v, uint64_t x)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 16;
		uint64_t *p = realloc(v->v, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		v->v = p;
		v->cap = cap;
	}
	v->v[v->n++] = x;
	return 0;
}

bool u64vec_has(const struct u64vec *v, uint64_t x)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->v[i] == x)
			return true;
	return false;
}

void u64vec_remove(struct u64vec *v, uint64_t x)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->v[i] == x) {
			v->v[i] = v->v[--v->n];
			return;
		}
}

void u64vec_free(struct u64vec *v)
{
	free(v->v);
	*v = (struct u64vec){0};
}

bool store_ref_name_valid(const char *name)
{
	size_t n = strnlen(name, 64);
	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* ---- refs ---- */

void store_refs_free(struct store_refs *r)
{
	free(r->v);
	*r = (struct store_refs){0};
}

uint64_t store_refs_epoch(const struct store_refs *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->v[i].name, name))
			return r->v[i].epoch;
	return 0;
}

int store_refs_parse(const uint8_t *p, size_t len, struct store_refs *ret, char *err, size_t errlen)
{
	const char *why = NULL;
	uint32_t version = 0, flags = 0, n = 0;
	struct store_refs r = {0};
	struct ck_rd rd = {.p = p, .len = len >= 8 ? len - 8 : 0, .off = 8};
	if (len < 8 + 4 + 4 + 8 + 4 + 8)
		why = "truncated";
	else if (memcmp(p, REFS_MAGIC, 8) != 0)
		why = "bad magic";
	else if (ck_get_le64(p + len - 8) != ck_checksum(p, len - 8))
		why = "checksum mismatch";
	if (!why) {
		ck_rd_le32(&rd, &version);
		ck_rd_le32(&rd, &flags);
		ck_rd_le64(&rd, &r.next_epoch);
		ck_rd_le32(&rd, &n);
		if (version > REFS_VERSION) {
			snprintf(err, errlen,
				 "refs: format version %" PRIu32 " is newer than this ckptenv",
				 version);
			return -EPROTONOSUPPORT;
		}
		if (version == 0 || flags != 0)
			why = "bad version or flags";
		else if (r.next_epoch == UINT64_MAX) /* the next commit's id would wrap */
			why = "bad epoch counter";
		else if (n > STORE_MAX_REFS)
			why = "too many refs";
	}
	if (!why) {
		r.v = calloc(n ? n : 1, sizeof(*r.v));
		if (!r.v)
			return -ENOMEM;
	}
	for (uint32_t i = 0; !why && i < n; i++) {
		const char *name;
		size_t nl;
		uint64_t created;
		struct store_refent *e = &r.v[i];
		if (!ck_rd_str(&rd, 63, &name, &nl) || !ck_rd_le64(&rd, &e->epoch) ||
		    !ck_rd_le64(&rd, &created) || !ck_rd_le64(&rd, &e->bytes)) {
			why = "truncated entry";
			break;
		}
		memcpy(e->name, name, nl);
		e->created = (int64_t)created;
		r.n++;
		if (!store_ref_name_valid(e->name) || e->epoch == 0 || e->epoch >= r.next_epoch)
			why = "bad entry";
		for (uint32_t j = 0; !why && j < i; j++)
			if (!strcmp(r.v[j].name, e->name))
				why = "duplicate name";
	}
	if (!why && rd.off != rd.len)
		why = "trailing bytes";
	if (why) {
		store_refs_free(&r);
		snprintf(err, errlen, "refs: %s", why);
		return -EBADMSG;
	}
	*ret = r;
	return 0;
}

int store_refs_write(struct vfs_store *s, const struct store_refs *r)
{
	struct ck_buf b = {0};
	ck_buf_append(&b, REFS_MAGIC, 8);
	ck_buf_le32(&b, REFS_VERSION);
	ck_buf_le32(&b, 0);
	ck_buf_le64(&b, r->next_epoch);
	ck_buf_le32(&b, (uint32_t)r->n);
	for (size_t i = 0; i < r->n; i++) {
		ck_buf_str(&b, r->v[i].name, strlen(r->v[i].name));
		ck_buf_le64(&b, r->v[i].epoch);
		ck_buf_le64(&b, (uint64_t)r->v[i].created);
		ck_buf_le64(&b, r->v[i].bytes);
	}
	if (!b.err)
		ck_buf_le64(&b, ck_checksum(b.data, b.len));
	int rc = b.err ? b.err : store_meta_write(s, s->dirfd, "refs", b.data, b.len);
	if (rc < 0)
		store_set_error(s, "%s/refs: cannot write: %s", s->path, strerror(-rc));
	ck_buf_free(&b);
	return rc;
}

bool store_reserve_release(struct vfs_store *s, int r)
{
	return r == -ENOSPC && s->use_reserve && unlinkat(s->dirfd, STORE_RESERVE, 0) == 0;
}

int store_meta_write(struct vfs_store *s, int dirfd, const char *name, const void *p, size_t len)
{
	int r = ck_write_file_atomic(dirfd, name, p, len, 0600);
	if (store_reserve_release(s, r))
		r = ck_write_file_atomic(dirfd, name, p, len, 0600);
	return r;
}

void store_error_builds_on(struct vfs_store *s, uint64_t id, uint64_t at)
{
	size_t l = strlen(s->err);
	if (id != at && l < sizeof(s->err) - 1)
		snprintf(s->err + l, sizeof(s->err) - l, " (epoch %llu builds on it)",
			 (unsigned long long)at);
}

/* Set the reserve aside if it is not (a store opened on a full disk goes without one). */
static void reserve_take(struct vfs_store *s)
{
	struct stat st;
	if (fstatat(s->dirfd, STORE_RESERVE, &st, 0) == 0 &&
	    (uint64_t)st.st_blocks * 512 >= STORE_RESERVE_SIZE)
		return;
	int fd = openat(s->dirfd, STORE_RESERVE, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	int r = posix_fallocate(fd, 0, STORE_RESERVE_SIZE);
	close(fd);
	if (r != 0)
		unlinkat(s->dirfd, STORE_RESERVE, 0);
}

/* Read @dir's refs; the message names the file as "<prefix>/refs". */
static int refs_load(int dirfd, const char *prefix, struct store_refs *ret, char *err,
		     size_t errlen)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = ck_read_file_at(dirfd, "refs", 1u << 20, &buf, &len);
	if (r == -EFBIG) {
		snprintf(err, errlen, "%s/refs: too large", prefix);
		return -EBADMSG;
	}
	if (r < 0) {
		snprintf(err, errlen, "%s/refs: %s", prefix, strerror(-r));
		return r == -ENOENT ? -EBADMSG : r;
	}
	char why[96];
	r = store_refs_parse((const uint8_t *)buf, len, ret, why, sizeof(why));
	if (r < 0) {
		int n = snprintf(err, errlen, "%s/", prefix);
		if (n >= 0 && (size_t)n < errlen)
			snprintf(err + n, errlen - (size_t)n, "%s", why);
	}
	return r;
}

int vfs_store_epoch_check(const char *dir, uint64_t epoch, char *err, size_t errlen)
{
	struct vfs_store s = {.dirfd = -1, .metafd = -1, .path = (char *)dir};
	int r = 0;
	s.metafd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s.metafd >= 0) {
		int m = openat(s.metafd, "meta", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		close(s.metafd);
		s.metafd = m;
	}
	if (s.metafd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s/meta: %m", dir);
		return r;
	}
	/* parent < id bounds the walk */
	for (uint64_t id = epoch, last = UINT64_MAX; id && r == 0; last = id) {
		struct ep e;
		r = ep_read(&s, id, &e);
		if (r == 0) {
			id = e.info.parent;
			ep_free(&e);
			if (id >= last)
				break;
		} else {
			store_error_builds_on(&s, id, epoch);
			snprintf(err, errlen, "%s", s.err);
		}
	}
	close(s.metafd);
	return r;
}

int vfs_store_refs_read(const char *dir, struct vfs_ref **ret, size_t *ret_n)
{
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	if (faccessat(dfd, "FORMAT", F_OK, 0) < 0)
		return -ENOENT;
	struct store_refs r;
	char err[STORE_ERR_MAX];
	int rc = refs_load(dfd, dir, &r, err, sizeof(err));
	if (rc < 0)
		return rc;
	struct vfs_ref *v = calloc(r.n ? r.n : 1, sizeof(*v));
	if (!v) {
		store_refs_free(&r);
		return -ENOMEM;
	}
	for (size_t i = 0; i < r.n; i++) {
		memcpy(v[i].name, r.v[i].name, sizeof(v[i].name));
		v[i].epoch = r.v[i].epoch;
		v[i].created = r.v[i].created;
		v[i].bytes = r.v[i].bytes;
	}
	*ret = v;
	*ret_n = r.n;
	store_refs_free(&r);
	return 0;
}

/* ---- FORMAT ---- */

static int format_write(struct vfs_store *s)
{
	uint8_t b[24];
	memcpy(b, FMT_MAGIC, 8);
	ck_put_le32(b + 8, STORE_FORMAT_VERSION);
	ck_put_le32(b + 12, VFS_CHUNK_SIZE);
	ck_put_le64(b + 16, ck_checksum(b, 16));
	return ck_write_file_atomic(s->dirfd, "FORMAT", b, sizeof(b), 0600);
}

static int format_check(struct vfs_store *s)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = ck_read_file_at(s->dirfd, "FORMAT", 4096, &buf, &len);
	const char *why = NULL;
	if (r == -EFBIG)
		why = "too large";
	else if (r < 0) {
		store_set_error(s, "%s/FORMAT: %s", s->path, strerror(-r));
		return r;
	} else if (len < 24)
		why = "truncated";
	else if (memcmp(buf, FMT_MAGIC, 8) != 0)
		why = "bad magic";
	else if (ck_get_le64((uint8_t *)buf + len - 8) != ck_checksum(buf, len - 8))
		why = "checksum mismatch";
	else if (ck_get_le32((uint8_t *)buf + 8) > STORE_FORMAT_VERSION) {
		store_set_error(
			s, "%s/FORMAT: store format version %u is newer than this ckptenv (%u)",
			s->path, ck_get_le32((uint8_t *)buf + 8), STORE_FORMAT_VERSION);
		return -EPROTONOSUPPORT;
	} else if (len != 24 || ck_get_le32((uint8_t *)buf + 8) == 0)
		why = "bad version or length";
	else if (ck_get_le32((uint8_t *)buf + 12) != VFS_CHUNK_SIZE)
		why = "unsupported chunk size";
	if (why) {
		store_set_error(s, "%s/FORMAT: %s", s->path, why);
		return -EBADMSG;
	}
	return 0;
}

/* ---- open / close ---- */

static bool parse_u64(const char *p, const char **end, uint64_t *ret)
{
	uint64_t v = 0;
	const char *q = p;
	for (; *q >= '0' && *q <= '9'; q++) {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*q - '0');
	}
	if (q == p || (q - p > 1 && *p == '0'))
		return false;
	*end = q;
	*ret = v;
	return true;
}

/* Remove "*.tmp.*" leftovers of interrupted atomic writes in directory @fd. */
static void remove_tmp(int fd)
{
	int dfd = dup(fd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	rewinddir(d);
	struct dirent *de;
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".tmp."))
			unlinkat(fd, de->d_name, 0);
	closedir(d);
}

/* Index every meta/E.ep (each verified whole), and the highest id any file uses. */
static int scan_meta(struct vfs_store *s, uint64_t *max_id)
{
	int dfd = dup(s->metafd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return -errno;
	}
	rewinddir(d);
	int r = 0;
	struct dirent *de;
	while (r == 0 && (de = readdir(d))) {
		uint64_t id;
		const char *end;
		if (!parse_u64(de->d_name, &end, &id) || strcmp(end, ".ep") != 0 || id == 0)
			continue;
		struct ep e;
		r = ep_read(s, id, &e);
		if (r == -EBADMSG) {
			/* One damaged file must not take the others with it: the epochs that do
			 * not build on it still open (store_load_chain names it to those that do). */
			*max_id = CK_MAX(*max_id, id);
			r = u64vec_push(&s->damaged, id);
			continue;
		}
		if (r < 0)
			break;
		struct epoch_info *ne = realloc(s->epochs, (s->nepochs + 1) * sizeof(*ne));
		if (!ne)
			r = -ENOMEM;
		else {
			s->epochs = ne;
			s->epochs[s->nepochs++] = e.info;
			*max_id = CK_MAX(*max_id, id);
		}
		ep_free(&e);
	}
	closedir(d);
	for (size_t i = 0; r == 0 && i < s->nepochs; i++) {
		uint64_t p = s->epochs[i].parent;
		if (p && !epoch_find(s, p) && !u64vec_has(&s->damaged, p)) {
			store_set_error(
				s, "%s/meta/%" PRIu64 ".ep: parent epoch %" PRIu64 " is missing",
				s->path, s->epochs[i].id, p);
			r = -EBADMSG;
		}
	}
	return r;
}

static void scan_data_max(struct vfs_store *s, uint64_t *max_id)
{
	int dfd = dup(s->datafd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	rewinddir(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		uint64_t ino, layer;
		const char *end;
		if (parse_u64(de->d_name, &end, &ino) && *end == '.' &&
		    parse_u64(end + 1, &end, &layer) && !*end)
			*max_id = CK_MAX(*max_id, layer);
	}
	closedir(d);
}

static int store_create(struct vfs_store *s)
{
	/* No FORMAT: either nothing is here, or a creation was interrupted before its last step.
	 * Refuse if epochs exist: that is a damaged store, not a new one. */
	int mfd = openat(s->dirfd, "meta", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mfd >= 0) {
		DIR *d = fdopendir(mfd);
		struct dirent *de;
		bool epochs = false;
		while (d && (de = readdir(d)))
			epochs |= strstr(de->d_name, ".ep") != NULL;
		if (d)
			closedir(d);
		else
			close(mfd);
		if (epochs) {
			store_set_error(s, "%s/FORMAT: missing in a store that has epochs",
					s->path);
			return -EBADMSG;
		}
	}
	if (mkdirat(s->dirfd, "meta", 0700) < 0 && errno != EEXIST)
		return -errno;
	if (mkdirat(s->dirfd, "data", 0700) < 0 && errno != EEXIST)
		return -errno;
	struct store_refs r = {.next_epoch = 1};
	int rc = store_refs_write(s, &r);
	if (rc == 0)
		rc = format_write(s);
	return rc;
}

static int store_open(struct vfs_store *s, const char *dir, unsigned flags, uint64_t at)
{
	int r;
	if (flags & VFS_STORE_CREATE) {
		r = ck_mkdir_p(dir, 0700);
		if (r < 0) {
			store_set_error(s, "%s: cannot create: %s", dir, strerror(-r));
			return r;
		}
	}
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		r = -errno;
		store_set_error(s, "%s: %s", dir, strerror(-r));
		return r;
	}
	bool exists = faccessat(s->dirfd, "FORMAT", F_OK, 0) == 0;
	if (!exists && !(flags & VFS_STORE_CREATE)) {
		store_set_error(s, "%s: no store here", dir);
		return -ENOENT;
	}
	s->lockfd = openat(s->dirfd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lockfd < 0) {
		r = -errno;
		store_set_error(s, "%s/LOCK: %s", dir, strerror(-r));
		return r;
	}
	if (flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		store_set_error(s, "%s: in use by another process (LOCK is held)", dir);
		return r;
	}
	if (!exists && (r = store_create(s)) < 0) {
		if (!s->err[0])
			store_set_error(s, "%s: cannot create the store: %s", dir, strerror(-r));
		return r;
	}
	r = format_check(s);
	if (r < 0)
		return r;
	s->metafd = openat(s->dirfd, "meta", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	s->datafd = openat(s->dirfd, "data", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->metafd < 0 || s->datafd < 0) {
		r = -errno;
		store_set_error(s, "%s/%s: %s", dir, s->metafd < 0 ? "meta" : "data", strerror(-r));
		return r == -ENOENT ? -EBADMSG : r;
	}
	remove_tmp(s->dirfd);
	remove_tmp(s->metafd);
	remove_tmp(s->datafd);
	r = refs_load(s->dirfd, s->path, &s->refs, s->err, sizeof(s->err));
	if (r < 0)
		return r;
	uint64_t max_id = 0;
	r = scan_meta(s, &max_id);
	if (r < 0)
		return r;
	for (size_t i = 0; i < s->refs.n; i++)
		if (!epoch_find(s, s->refs.v[i].epoch) &&
		    !u64vec_has(&s->damaged, s->refs.v[i].epoch)) {
			store_set_error(
				s, "%s/refs: ref \"%s\" names epoch %" PRIu64 ", which is missing",
				s->path, s->refs.v[i].name, s->refs.v[i].epoch);
			return -EBADMSG;
		}
	scan_data_max(s, &max_id);
	if (at == 0) {
		at = store_refs_epoch(&s->refs, "head");
	} else if (!epoch_find(s, at) && !u64vec_has(&s->damaged, at)) {
		store_set_error(s, "%s: no epoch %" PRIu64, s->path, at);
		return -ENOENT;
	}
	s->nbuckets = 64;
	s->tab = calloc(s->nbuckets, sizeof(*s->tab));
	if (!s->tab)
		return -ENOMEM;
	if (max_id == UINT64_MAX) {
		store_set_error(s, "%s/meta: an epoch numbered %" PRIu64 " leaves no id for the next",
				s->path, max_id);
		return -EBADMSG;
	}
	s->live = CK_MAX(max_id + 1, s->refs.next_epoch);
	s->next_ino = VFS_ROOT_INO + 1;
	if (at) {
		r = store_load_chain(s, at, flags);
		if (r < 0)
			return r;
	} else {
		struct store_inode *root = inode_new(VFS_ROOT_INO, S_IFDIR | 01777);
		if (!root || !(root->dir = dir_new(VFS_ROOT_INO))) {
			inode_free(root);
			return -ENOMEM;
		}
		root->nlink = 2;
		root->uid = getuid();
		root->gid = getgid();
		root->generation = s->live;
		store_now(&root->ctime);
		root->atime = root->mtime = root->ctime;
		inode_insert(s, root);
		inode_mark_dirty(s, root);
	}
	/* Claim the live id durably so no later open hands it out again. */
	struct store_refs nr = s->refs;
	nr.next_epoch = s->live + 1;
	r = store_refs_write(s, &nr);
	if (r < 0)
		return r;
	s->refs.next_epoch = nr.next_epoch;
	r = store_gc_locked(s);
	if (r == 0)
		reserve_take(s); /* after the GC, which may have freed the space for it */
	return r;
}

int vfs_store_open(const char *dir, unsigned flags, uint64_t at_epoch, struct vfs_store **ret)
{
	open_err[0] = 0;
	struct vfs_store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dirfd = s->metafd = s->datafd = s->lockfd = -1;
	pthread_mutex_init(&s->meta_lock, NULL);
	pthread_rwlock_init(&s->ns, NULL);
	pthread_mutex_init(&s->dirty_lock, NULL);
	pthread_mutex_init(&s->fd_lock, NULL);
	struct rlimit rl;
	s->fd_cap = store_fd_cap(getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024);
	s->path = strdup(dir);
	int r = s->path ? store_open(s, dir, flags, at_epoch) : -ENOMEM;
	if (r < 0) {
		snprintf(open_err, sizeof(open_err), "%s", s->err[0] ? s->err : strerror(-r));
		vfs_store_close(s);
		return r;
	}
	/* Each inode keeps a few layer files open: make room. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	s->fd_cap = store_fd_cap(getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024);
	*ret = s;
	return 0;
}

void vfs_store_close(struct vfs_store *s)
{
	if (!s)
		return;
	if (s->tab)
		for (size_t b = 0; b < s->nbuckets; b++) {
			struct store_inode *n = s->tab[b], *next;
			for (; n; n = next) {
				next = n->hnext;
				inode_free(n);
			}
		}
	free(s->tab);
	u64vec_free(&s->dirty);
	u64vec_free(&s->deleted);
	u64vec_free(&s->pending);
	store_refs_free(&s->refs);
	free(s->epochs);
	u64vec_free(&s->damaged);
	free(s->path);
	if (s->metafd >= 0)
		close(s->metafd);
	if (s->datafd >= 0)
		close(s->datafd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	if (s->lockfd >= 0)
		close(s->lockfd); /* releases the flock */
	pthread_mutex_destroy(&s->meta_lock);
	pthread_rwlock_destroy(&s->ns);
	pthread_mutex_destroy(&s->dirty_lock);
	pthread_mutex_destroy(&s->fd_lock);
	free(s);
}
