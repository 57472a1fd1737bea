/* State directory and its small files (see state.h). */
#include "state.h"

#include "common/ck.h"

#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#define JOB_MAGIC     0x424a4b43u /* "CKJB" */
#define STATUS_MAGIC  0x54534b43u /* "CKST" */
#define RUN_MAGIC     0x4e524b43u /* "CKRN" */
#define STATE_VERSION 1
#define JOB_FILE_MAX  (16u << 20)
#define JOB_ARGS_MAX  65536u
#define JOB_STR_MAX   (1u << 20)

int state_home(char **ret)
{
	const char *e = getenv("CKPTENV_HOME");
	char *s = NULL;
	if (e && *e == '/') {
		s = strdup(e);
	} else if (e && *e) {
		/* Relative to where the command runs: made absolute here, once, because the
		 * supervisor (a daemon in "/") and the job's store see it from elsewhere. */
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)))
			return -errno;
		if (asprintf(&s, "%s/%s", strcmp(cwd, "/") ? cwd : "", e) < 0)
			s = NULL;
	} else if ((e = getenv("XDG_STATE_HOME")) && *e == '/') {
		if (asprintf(&s, "%s/ckptenv", e) < 0)
			s = NULL;
	} else {
		const char *home = getenv("HOME");
		if (!home || *home != '/') {
			struct passwd *pw = getpwuid(getuid());
			if (!pw || !pw->pw_dir || *pw->pw_dir != '/')
				return -ENOENT;
			home = pw->pw_dir;
		}
		if (asprintf(&s, "%s/.local/state/ckptenv", home) < 0)
			s = NULL;
	}
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

int state_name_check(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > STATE_NAME_MAX || name[0] == '.' || name[0] == '-')
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
		if (!ok)
			return -EINVAL;
	}
	return 0;
}

int state_dir_ours(int fd, mode_t deny, bool root_may, struct stat *ret)
{
	if (fstat(fd, ret) < 0)
		return -errno;
	bool owner = ret->st_uid == geteuid() || (root_may && geteuid() == 0);
	return owner && !(ret->st_mode & deny) ? 0 : -EPERM;
}

int state_jobs_open(const char *home, bool create, int *ret_fd)
{
	_cleanup_free_ char *p = NULL;
	if (asprintf(&p, "%s/jobs", home) < 0)
		return -ENOMEM;
	if (create) {
		int r = ck_mkdir_p(p, 0700);
		if (r < 0)
			return r;
	}
	int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*ret_fd = fd;
	return 0;
}

int state_job_open(int jobs_fd, const char *name, bool create, int *ret_fd)
{
	if (create && mkdirat(jobs_fd, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	int fd = openat(jobs_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP ? -ENOTDIR : -errno;
	*ret_fd = fd;
	return 0;
}

static int lock_try(int job_fd, int op, int tries, int *ret_fd)
{
	_cleanup_close_ int fd =
		openat(job_fd, "supervisor.lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	for (int i = 0;; i++) {
		if (flock(fd, op | LOCK_NB) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK)
			return -errno;
		if (i + 1 >= tries)
			return -EBUSY;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int state_lock_take(int job_fd, int *ret_fd)
{
	return lock_try(job_fd, LOCK_EX, 20, ret_fd);
}

int state_lock_try(int job_fd, int *ret_fd)
{
	return lock_try(job_fd, LOCK_EX, 1, ret_fd);
}

int state_lock_wait(int job_fd, int timeout_ms, int *ret_fd)
{
	int r = lock_try(job_fd, LOCK_EX, CK_MAX(1, timeout_ms / 10), ret_fd);
	return r == -EBUSY ? -ETIMEDOUT : r;
}

int state_job_running(int job_fd)
{
	_cleanup_close_ int fd =
		openat(job_fd, "supervisor.lock", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	/* A shared probe conflicts only with the supervisor's exclusive lock; `run` retries when
	 * it meets a probe. */
	for (;;) {
		if (flock(fd, LOCK_SH | LOCK_NB) == 0)
			return 0; /* released by close */
		if (errno == EWOULDBLOCK)
			return 1;
		if (errno != EINTR)
			return -errno;
	}
}

/* ---- packed files: le32 magic, le16 version, le16 0, body, le64 xxh3 of all before ---- */

static void hdr(struct ck_buf *b, uint32_t magic)
{
	ck_buf_le32(b, magic);
	ck_buf_le16(b, STATE_VERSION);
	ck_buf_le16(b, 0);
}

static int seal_and_write(int job_fd, const char *file, struct ck_buf *b)
{
	ck_buf_le64(b, ck_checksum(b->data, b->len));
	int r = b->err ? b->err : ck_write_file_atomic(job_fd, file, b->data, b->len, 0600);
	ck_buf_free(b);
	return r;
}

/* Check the trailer checksum and the header; on success *r reads the body. */
static int open_reader(const uint8_t *p, size_t len, uint32_t magic, struct ck_rd *r)
{
	if (len < 16)
		return -EBADMSG;
	if (ck_get_le32(p) != magic)
		return -EBADMSG;
	if (ck_get_le64(p + len - 8) != ck_checksum(p, len - 8))
		return -EBADMSG;
	uint16_t version = ck_get_le16(p + 4);
	if (version > STATE_VERSION)
		return -EPROTONOSUPPORT;
	if (version == 0)
		return -EBADMSG;
	*r = (struct ck_rd){.p = p, .len = len - 8, .off = 8};
	return 0;
}

static int read_packed(int job_fd, const char *file, uint8_t **ret, size_t *ret_len)
{
	char *buf;
	size_t len;
	int r = ck_read_file_at(job_fd, file, JOB_FILE_MAX, &buf, &len);
	if (r == -EFBIG)
		return -EBADMSG;
	if (r < 0)
		return r;
	*ret = (uint8_t *)buf;
	*ret_len = len;
	return 0;
}

static void put_strv(struct ck_buf *b, char *const *v, uint32_t n)
{
	ck_buf_le32(b, n);
	for (uint32_t i = 0; i < n; i++)
		ck_buf_str(b, v[i], strlen(v[i]));
}

static char *dup_str(const char *s, size_t n)
{
	if (memchr(s, 0, n))
		return NULL;
	/* Not strndup: ASan's interceptor reads n+1 bytes, past the end of an exact buffer. */
	char *d = malloc(n + 1);
	if (!d)
		return NULL;
	memcpy(d, s, n);
	d[n] = 0;
	return d;
}

static int get_strv(struct ck_rd *r, char ***ret, uint32_t *ret_n)
{
	uint32_t n;
	if (!ck_rd_le32(r, &n))
		return -EBADMSG;
	if (n > JOB_ARGS_MAX || n > r->len - r->off)
		return -EBADMSG;
	char **v = calloc((size_t)n + 1, sizeof(char *));
	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		const char *s;
		size_t l;
		if (!ck_rd_str(r, JOB_STR_MAX, &s, &l) || !(v[i] = dup_str(s, l))) {
			for (uint32_t j = 0; j < i; j++)
				free(v[j]);
			free(v);
			return -EBADMSG;
		}
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

int job_spec_pack(const struct job_spec *s, uint8_t **ret, size_t *ret_len)
{
	struct ck_buf b = {0};
	hdr(&b, JOB_MAGIC);
	ck_buf_le32(&b, s->flags);
	ck_buf_le64(&b, s->from_epoch);
	ck_buf_le64(&b, (uint64_t)s->created);
	ck_buf_str(&b, s->cwd, strlen(s->cwd));
	put_strv(&b, s->argv, s->argc);
	put_strv(&b, s->envp, s->envc);
	ck_buf_le64(&b, ck_checksum(b.data, b.len));
	if (b.err) {
		int r = b.err;
		ck_buf_free(&b);
		return r;
	}
	*ret = b.data;
	*ret_len = b.len;
	return 0;
}

int job_spec_unpack(const uint8_t *p, size_t len, struct job_spec *ret)
{
	struct ck_rd r;
	int q = open_reader(p, len, JOB_MAGIC, &r);
	if (q < 0)
		return q;
	struct job_spec s = {0};
	uint64_t created;
	const char *cwd;
	size_t cwd_len;
	if (!ck_rd_le32(&r, &s.flags) || !ck_rd_le64(&r, &s.from_epoch) ||
	    !ck_rd_le64(&r, &created) || !ck_rd_str(&r, JOB_STR_MAX, &cwd, &cwd_len))
		return -EBADMSG;
	s.created = (int64_t)created;
	if (!(s.cwd = dup_str(cwd, cwd_len)))
		return -EBADMSG;
	q = get_strv(&r, &s.argv, &s.argc);
	if (q == 0)
		q = get_strv(&r, &s.envp, &s.envc);
	if (q == 0 && (s.argc == 0 || r.off != r.len))
		q = -EBADMSG;
	if (q < 0) {
		job_spec_free(&s);
		return q;
	}
	*ret = s;
	return 0;
}

int job_spec_write(int job_fd, const struct job_spec *s)
{
	uint8_t *p;
	size_t len;
	int r = job_spec_pack(s, &p, &len);
	if (r < 0)
		return r;
	r = ck_write_file_atomic(job_fd, "job", p, len, 0600);
	free(p);
	return r;
}

int job_spec_read(int job_fd, struct job_spec *ret)
{
	_cleanup_free_ uint8_t *p = NULL;
	size_t len;
	int r = read_packed(job_fd, "job", &p, &len);
	if (r < 0)
		return r;
	return job_spec_unpack(p, len, ret);
}

static void strv_free(char **v)
{
	if (!v)
		return;
	for (char **i = v; *i; i++)
		free(*i);
	free(v);
}

void job_spec_free(struct job_spec *s)
{
	if (!s)
		return;
	strv_free(s->argv);
	strv_free(s->envp);
	free(s->cwd);
	*s = (struct job_spec){0};
}

char *job_spec_command(const struct job_spec *s)
{
	struct ck_buf b = {0};
	/* For one line of `list` and `status`: control characters are shown escaped. */
	for (uint32_t i = 0; i < s->argc; i++) {
		if (i)
			ck_buf_append(&b, " ", 1);
		for (const unsigned char *c = (const unsigned char *)s->argv[i]; *c; c++) {
			char e[8];
			if (*c == '\n' || *c == '\t')
				ck_buf_append(&b, *c == '\n' ? "\\n" : "\\t", 2);
			else if (*c < 0x20 || *c == 0x7f)
				ck_buf_append(&b, e, (size_t)snprintf(e, sizeof(e), "\\x%02x", *c));
			else
				ck_buf_append(&b, c, 1);
		}
	}
	ck_buf_append(&b, "", 1);
	if (b.err) {
		ck_buf_free(&b);
		return NULL;
	}
	return (char *)b.data;
}

int job_status_write(int job_fd, const struct job_status *s)
{
	struct ck_buf b = {0};
	hdr(&b, STATUS_MAGIC);
	ck_buf_le32(&b, (uint32_t)s->exit_code);
	ck_buf_le64(&b, (uint64_t)s->started);
	ck_buf_le64(&b, (uint64_t)s->ended);
	ck_buf_le64(&b, s->run_id);
	return seal_and_write(job_fd, "status", &b);
}

int job_status_read(int job_fd, struct job_status *ret)
{
	_cleanup_free_ uint8_t *p = NULL;
	size_t len;
	int r = read_packed(job_fd, "status", &p, &len);
	if (r < 0)
		return r;
	struct ck_rd rd;
	if ((r = open_reader(p, len, STATUS_MAGIC, &rd)) < 0)
		return r;
	uint32_t code;
	uint64_t st, en, id;
	if (!ck_rd_le32(&rd, &code) || !ck_rd_le64(&rd, &st) || !ck_rd_le64(&rd, &en) ||
	    !ck_rd_le64(&rd, &id))
		return -EBADMSG;
	*ret = (struct job_status){.exit_code = (int32_t)code,
				   .run_id = id,
				   .started = (int64_t)st,
				   .ended = (int64_t)en};
	return 0;
}

int job_run_write(int job_fd, const struct job_run *run)
{
	struct ck_buf b = {0};
	hdr(&b, RUN_MAGIC);
	ck_buf_le32(&b, (uint32_t)run->supervisor_pid);
	ck_buf_le32(&b, (uint32_t)run->init_pid);
	ck_buf_le64(&b, (uint64_t)run->started);
	ck_buf_le64(&b, run->run_id);
	return seal_and_write(job_fd, "run", &b);
}

int job_run_read(int job_fd, struct job_run *ret)
{
	_cleanup_free_ uint8_t *p = NULL;
	size_t len;
	int r = read_packed(job_fd, "run", &p, &len);
	if (r < 0)
		return r;
	struct ck_rd rd;
	if ((r = open_reader(p, len, RUN_MAGIC, &rd)) < 0)
		return r;
	uint32_t sp, ip;
	uint64_t st, id;
	if (!ck_rd_le32(&rd, &sp) || !ck_rd_le32(&rd, &ip) || !ck_rd_le64(&rd, &st) ||
	    !ck_rd_le64(&rd, &id))
		return -EBADMSG;
	*ret = (struct job_run){.supervisor_pid = (int32_t)sp,
				.init_pid = (int32_t)ip,
				.run_id = id,
				.started = (int64_t)st};
	return 0;
}

int job_status_signal(int wstatus)
{
	if (WIFSIGNALED(wstatus))
		return WTERMSIG(wstatus);
	return WEXITSTATUS(wstatus) > 128 ? WEXITSTATUS(wstatus) - 128 : 0;
}
