/* Checkpoint directory and manifest (see ckpt.h). Manifest: le32 magic "CKCP", le16 version,
 * le16 reserved, le64 id, le64 epoch, le64 created, le64 frozen ns, le64 bytes, le32 flags,
 * le32 pid, le64 ck_checksum of everything before it. */
#include "ckpt.h"
#include "ckptenv.h"

#include "common/ck.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#define MANIFEST_LEN 64

int ckpt_manifest_write(int dirfd, const struct ckpt_manifest *m)
{
	uint8_t b[MANIFEST_LEN] = {0};
	ck_put_le32(b, CKPT_MAGIC);
	ck_put_le16(b + 4, CKPT_VERSION);
	ck_put_le64(b + 8, m->id);
	ck_put_le64(b + 16, m->epoch);
	ck_put_le64(b + 24, (uint64_t)m->created);
	ck_put_le64(b + 32, m->frozen_ns);
	ck_put_le64(b + 40, m->bytes);
	ck_put_le32(b + 48, m->flags);
	ck_put_le32(b + 52, (uint32_t)m->pid);
	ck_put_le64(b + 56, ck_checksum(b, 56));
	return ck_write_file_atomic(dirfd, CKPT_MANIFEST, b, sizeof(b), 0600);
}

int ckpt_manifest_read(int dirfd, struct ckpt_manifest *ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = ck_read_file_at(dirfd, CKPT_MANIFEST, 4096, &buf, &len);
	if (r < 0)
		return r;
	const uint8_t *b = (const uint8_t *)buf;
	if (len < 8 || ck_get_le32(b) != CKPT_MAGIC)
		return -EBADMSG;
	if (ck_get_le16(b + 4) > CKPT_VERSION)
		return -EPROTONOSUPPORT;
	if (len != MANIFEST_LEN || ck_get_le64(b + 56) != ck_checksum(b, 56))
		return -EBADMSG;
	*ret = (struct ckpt_manifest){.id = ck_get_le64(b + 8),
				      .epoch = ck_get_le64(b + 16),
				      .created = (int64_t)ck_get_le64(b + 24),
				      .frozen_ns = ck_get_le64(b + 32),
				      .bytes = ck_get_le64(b + 40),
				      .flags = ck_get_le32(b + 48),
				      .pid = (int32_t)ck_get_le32(b + 52)};
	return 0;
}

int ckpt_dir_open(int job_fd, bool create, int *ret_fd)
{
	if (create && mkdirat(job_fd, CKPT_DIR, 0700) < 0 && errno != EEXIST)
		return -errno;
	int fd = openat(job_fd, CKPT_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*ret_fd = fd;
	return 0;
}

/* "123" -> 123; anything else (".5.tmp", "LATEST") -> 0. */
static uint64_t parse_id(const char *s)
{
	if (!*s || *s == '0' || strlen(s) > 18)
		return 0;
	uint64_t v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	return v;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static bool complete(int ckdir, uint64_t id)
{
	char n[24];
	snprintf(n, sizeof(n), "%llu", (unsigned long long)id);
	_cleanup_close_ int fd = openat(ckdir, n, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct ckpt_manifest m;
	return fd >= 0 && ckpt_manifest_read(fd, &m) == 0 && m.id == id;
}

int ckpt_dir_stream(int ckdir, DIR **ret)
{
	int fd = dup(ckdir);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	rewinddir(d); /* the dup shares @ckdir's offset, which an earlier scan left at the end */
	*ret = d;
	return 0;
}

/* Every numeric entry, also ".N.tmp" when @tmp_too (for the next id). */
static int scan(int ckdir, bool tmp_too, bool only_complete, uint64_t **ret, size_t *ret_n)
{
	DIR *d = NULL;
	int r = ckpt_dir_stream(ckdir, &d);
	if (r < 0)
		return r;
	uint64_t *ids = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		char name[64];
		if (strlen(de->d_name) >= sizeof(name))
			continue;
		strcpy(name, de->d_name);
		if (tmp_too && name[0] == '.' && strlen(name) > 5 &&
		    !strcmp(name + strlen(name) - 4, ".tmp")) {
			memmove(name, name + 1, strlen(name));
			name[strlen(name) - 4] = 0;
		}
		uint64_t id = parse_id(name);
		if (!id || (only_complete && !complete(ckdir, id)))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			uint64_t *t = realloc(ids, cap * sizeof(*ids));
			if (!t) {
				free(ids);
				closedir(d);
				return -ENOMEM;
			}
			ids = t;
		}
		ids[n++] = id;
	}
	closedir(d);
	if (n)
		qsort(ids, n, sizeof(*ids), cmp_u64);
	*ret = ids;
	*ret_n = n;
	return 0;
}

int ckpt_list(int ckdir, uint64_t **ret, size_t *ret_n)
{
	return scan(ckdir, false, true, ret, ret_n);
}

/* The id LATEST names, complete or not (0: none). */
static uint64_t latest_raw(int ckdir)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	if (ck_read_file_at(ckdir, CKPT_LATEST, 64, &buf, &len) < 0)
		return 0;
	char s[32];
	snprintf(s, sizeof(s), "%.*s", (int)CK_MIN(len, sizeof(s) - 1), buf);
	s[strcspn(s, "\n")] = 0;
	return parse_id(s);
}

uint64_t ckpt_next_id(int ckdir)
{
	/* LATEST is left naming a dropped checkpoint (ckpt-gc.c): its id is not given again. */
	uint64_t high = latest_raw(ckdir);
	_cleanup_free_ uint64_t *ids = NULL;
	size_t n = 0;
	if (scan(ckdir, true, false, &ids, &n) == 0 && n && ids[n - 1] > high)
		high = ids[n - 1];
	return high + 1;
}

int ckpt_latest(int ckdir, uint64_t *ret)
{
	uint64_t id = latest_raw(ckdir);
	if (id && complete(ckdir, id)) {
		*ret = id;
		return 0;
	}
	_cleanup_free_ uint64_t *ids = NULL;
	size_t n = 0;
	int r = ckpt_list(ckdir, &ids, &n);
	if (r < 0)
		return r;
	if (!n)
		return -ENOENT;
	*ret = ids[n - 1];
	return 0;
}

int ckpt_latest_write(int ckdir, uint64_t id)
{
	char s[32];
	int n = snprintf(s, sizeof(s), "%llu\n", (unsigned long long)id);
	return ck_write_file_atomic(ckdir, CKPT_LATEST, s, (size_t)n, 0600);
}

#define POLICY_LEN_V1 32
#define POLICY_LEN    40

int ckpt_policy_write(int job_fd, const struct ckpt_policy *p)
{
	if (!p->every_ns && !p->keep && !p->flags && !p->log_size) {
		if (unlinkat(job_fd, CKPT_POLICY, 0) < 0 && errno != ENOENT)
			return -errno;
		return 0;
	}
	uint8_t b[POLICY_LEN] = {0};
	ck_put_le32(b, CKPT_POLICY_MAGIC);
	ck_put_le16(b + 4, CKPT_POLICY_VERSION);
	ck_put_le16(b + 6, (uint16_t)p->flags);
	ck_put_le64(b + 8, p->every_ns);
	ck_put_le32(b + 16, p->keep);
	ck_put_le64(b + 24, p->log_size);
	ck_put_le64(b + 32, ck_checksum(b, 32));
	return ck_write_file_atomic(job_fd, CKPT_POLICY, b, sizeof(b), 0600);
}

int ckpt_policy_read(int job_fd, struct ckpt_policy *ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = ck_read_file_at(job_fd, CKPT_POLICY, 4096, &buf, &len);
	if (r == -ENOENT) {
		*ret = (struct ckpt_policy){0};
		return 0;
	}
	if (r < 0)
		return r;
	const uint8_t *b = (const uint8_t *)buf;
	if (len < 8 || ck_get_le32(b) != CKPT_POLICY_MAGIC)
		return -EBADMSG;
	uint16_t version = ck_get_le16(b + 4);
	if (version > CKPT_POLICY_VERSION)
		return -EPROTONOSUPPORT;
	size_t want = version < 2 ? POLICY_LEN_V1 : POLICY_LEN;
	if (version == 0 || len != want || ck_get_le64(b + want - 8) != ck_checksum(b, want - 8))
		return -EBADMSG;
	struct ckpt_policy p = {.flags = ck_get_le16(b + 6),
				.every_ns = ck_get_le64(b + 8),
				.keep = ck_get_le32(b + 16),
				.log_size = version < 2 ? 0 : ck_get_le64(b + 24)};
	/* What `run` refuses, refused here too: a checkpoint every 0 s keeping all of them
	 * fills the disk as fast as it can write. */
	if ((p.flags & ~CKPT_POLICY_ON_TERM) || p.keep > CKPT_KEEP_MAX ||
	    (p.log_size && (p.log_size < LOG_SIZE_MIN || p.log_size > LOG_SIZE_MAX)) ||
	    (p.every_ns && (p.every_ns < CKPT_EVERY_MIN_NS || p.every_ns > CKPT_EVERY_MAX_NS ||
			    !p.keep)))
		return -EBADMSG;
	*ret = p;
	return 0;
}

int ckpt_duration_parse(const char *s, uint64_t *ret_ns)
{
	static const struct {
		const char *unit;
		uint64_t ns;
	} units[] = {{"", 1000000000ull},	  {"s", 1000000000ull},	 {"ms", 1000000ull},
		     {"m", 60 * 1000000000ull},	  {"min", 60 * 1000000000ull},
		     {"h", 3600 * 1000000000ull}, {"d", 86400 * 1000000000ull}};
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit))
			continue;
		if (v > CKPT_EVERY_MAX_NS / units[i].ns)
			return -EINVAL;
		uint64_t ns = v * units[i].ns;
		if (ns < CKPT_EVERY_MIN_NS)
			return -EINVAL;
		*ret_ns = ns;
		return 0;
	}
	return -EINVAL;
}
