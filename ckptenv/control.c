/* Control protocol framing (see control.h). */
#include "control.h"

#include "common/ck.h"
#include "state.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

int control_send(int sock, uint16_t type, const void *payload, size_t len, const int *fds,
		 size_t nfds)
{
	uint8_t buf[CONTROL_HDR + CONTROL_PAYLOAD_MAX];
	if (len > CONTROL_PAYLOAD_MAX || nfds > CONTROL_FDS_MAX)
		return -EINVAL;
	ck_put_le32(buf, CONTROL_MAGIC);
	ck_put_le16(buf + 4, CONTROL_VERSION);
	ck_put_le16(buf + 6, type);
	ck_put_le32(buf + 8, (uint32_t)len);
	if (len)
		memcpy(buf + CONTROL_HDR, payload, len);
	return ck_send_fds(sock, buf, CONTROL_HDR + len, fds, nfds);
}

void control_msg_close_fds(struct control_msg *m)
{
	for (size_t i = 0; i < m->nfds; i++)
		close(m->fds[i]);
	m->nfds = 0;
}

int control_recv(int sock, struct control_msg *m)
{
	/* One byte more than the largest valid message: a datagram that fills it was truncated. */
	uint8_t buf[CONTROL_HDR + CONTROL_PAYLOAD_MAX + 1];
	ssize_t n = ck_recv_fds(sock, buf, sizeof(buf), m->fds, CONTROL_FDS_MAX, &m->nfds);
	if (n < 0) {
		m->nfds = 0;
		return n == -ECONNRESET ? -ECONNRESET : (int)n;
	}
	if (n == 0) {
		control_msg_close_fds(m);
		return -ECONNRESET;
	}
	if ((size_t)n < CONTROL_HDR || (size_t)n == sizeof(buf) ||
	    ck_get_le32(buf) != CONTROL_MAGIC || ck_get_le16(buf + 4) != CONTROL_VERSION ||
	    ck_get_le32(buf + 8) != (size_t)n - CONTROL_HDR) {
		control_msg_close_fds(m);
		return -EBADMSG;
	}
	m->type = ck_get_le16(buf + 6);
	m->len = (uint32_t)((size_t)n - CONTROL_HDR);
	memcpy(m->payload, buf + CONTROL_HDR, m->len);
	return 0;
}

static int send_text(int sock, uint16_t type, int err, const char *msg)
{
	struct ck_buf b = {0};
	size_t l = CK_MIN(strlen(msg), (size_t)1024);
	ck_buf_le32(&b, (uint32_t)err);
	ck_buf_str(&b, msg, l);
	int r = b.err ? b.err : control_send(sock, type, b.data, b.len, NULL, 0);
	ck_buf_free(&b);
	return r;
}

int control_send_error(int sock, int err, const char *msg)
{
	return send_text(sock, CONTROL_ERROR, err, msg);
}

int control_send_note(int sock, int err, const char *msg)
{
	return send_text(sock, CONTROL_NOTE, err, msg);
}

int control_send_u32(int sock, uint16_t type, uint32_t v)
{
	uint8_t p[4];
	ck_put_le32(p, v);
	return control_send(sock, type, p, sizeof(p), NULL, 0);
}

int control_send_u64x2(int sock, uint16_t type, uint64_t a, uint64_t b)
{
	uint8_t p[16];
	ck_put_le64(p, a);
	ck_put_le64(p + 8, b);
	return control_send(sock, type, p, sizeof(p), NULL, 0);
}

int control_parse_error(const struct control_msg *m, int *ret_err, char *buf, size_t len)
{
	struct ck_rd r = {.p = m->payload, .len = m->len};
	uint32_t err;
	const char *s;
	size_t l;
	if ((m->type != CONTROL_ERROR && m->type != CONTROL_NOTE) || len == 0 ||
	    !ck_rd_le32(&r, &err) ||
	    !ck_rd_str(&r, 1024, &s, &l))
		return -EBADMSG;
	l = CK_MIN(l, len - 1);
	memcpy(buf, s, l);
	buf[l] = 0;
	*ret_err = (int)err;
	return 0;
}

int control_parse_u32(const struct control_msg *m, uint32_t *ret)
{
	if (m->len != 4)
		return -EBADMSG;
	*ret = ck_get_le32(m->payload);
	return 0;
}

int control_parse_u64x2(const struct control_msg *m, uint64_t *ret_a, uint64_t *ret_b)
{
	/* Longer payloads carry optional fields after the two (CONTROL_SNAPPED). */
	if (m->len < 16)
		return -EBADMSG;
	*ret_a = ck_get_le64(m->payload);
	*ret_b = ck_get_le64(m->payload + 8);
	return 0;
}

/* sun_path holds 108 bytes; a deep state directory is reached through /proc/self/fd/N, which
 * is always short and resolves to the same directory. */
static int make_addr(int dir_fd, const char *name, struct sockaddr_un *sa, socklen_t *ret_len)
{
	*sa = (struct sockaddr_un){.sun_family = AF_UNIX};
	int n = snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", dir_fd, name);
	if (n < 0 || (size_t)n >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	*ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
	return 0;
}

int control_listen(int dir_fd, const char *name)
{
	return control_unix_listen(dir_fd, name, SOCK_SEQPACKET);
}

int control_unix_listen(int dir_fd, const char *name, int type)
{
	struct sockaddr_un sa;
	socklen_t sl;
	int r = make_addr(dir_fd, name, &sa, &sl);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (unlinkat(dir_fd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	/* The umask makes the socket 0600 from its first instant; fchmodat then states it. */
	mode_t old = umask(0077);
	r = bind(fd, (struct sockaddr *)&sa, sl);
	int saved = errno;
	umask(old);
	if (r < 0)
		return -saved;
	if (fchmodat(dir_fd, name, 0600, 0) < 0)
		return -errno;
	if (listen(fd, 16) < 0)
		return -errno;
	return TAKE_FD(fd);
}

int control_connect(int dir_fd, const char *name)
{
	return control_unix_connect(dir_fd, name, SOCK_SEQPACKET);
}

static int unix_connect(int dir_fd, const char *name, int type, bool wait);

int control_connect_now(int dir_fd, const char *name)
{
	return unix_connect(dir_fd, name, SOCK_SEQPACKET, false);
}

int control_unix_connect(int dir_fd, const char *name, int type)
{
	return unix_connect(dir_fd, name, type, true);
}

static int unix_connect(int dir_fd, const char *name, int type, bool wait)
{
	struct sockaddr_un sa;
	socklen_t sl;
	int r = make_addr(dir_fd, name, &sa, &sl);
	if (r < 0)
		return r;
	/* The CLI takes the job lock before it forks the supervisor, so a job shows as running a
	 * little before its sockets listen (and a killed supervisor leaves a stale socket file
	 * behind). While the lock is held, a missing or refusing socket means "starting" or
	 * "ending": wait for either, bounded, rather than fail an attach right after a restore. */
	uint64_t deadline = ck_now_ns() + CONTROL_START_WAIT_MS * 1000000ull;
	for (;;) {
		_cleanup_close_ int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sl) == 0)
			return TAKE_FD(fd);
		if (errno == EINTR)
			continue;
		int e = errno;
		if (!wait || (e != ENOENT && e != ECONNREFUSED) || ck_now_ns() >= deadline ||
		    state_job_running(dir_fd) != 1)
			return -e;
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
}

int control_call(int sock, uint16_t type, const void *payload, size_t len, struct control_msg *ret)
{
	int r = control_send(sock, type, payload, len, NULL, 0);
	if (r < 0)
		return r;
	return control_recv(sock, ret);
}
