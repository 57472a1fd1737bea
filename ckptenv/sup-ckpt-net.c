/* The network half of a checkpoint and of a restore (issue 6).
 *
 * Checkpoint (job frozen, before /tmp and memory): every fd of the job that is the job side of
 * a proxy session is detached (netproxy_session_detach with a pidfd_getfd duplicate: the
 * proxy stops delivering, drains what the job wrote and peeks what it had not read). The cuts
 * and unread bytes go into "net.cut" of the checkpoint directory, next to the session table
 * ("netproxy.table"), both committed with the checkpoint's rename. The sessions are then
 * resumed, or left detached (--stop) with their upstream kept and buffered.
 *
 * Restore: for each fd in net.cut, the supervisor re-attaches the session (a new job-side
 * socket that first yields the unread bytes, then what arrived since) or, when it cannot (the
 * supervisor is a new one, the peer reset, the job sent bytes after the checkpoint), makes a
 * socket whose first use fails with ECONNRESET and reports one line. The sockets go to the
 * init with launch_go() and from it to the restorer at their old fd numbers.
 *
 * net.cut: "CKNETCUT", le32 version (1), le32 count, per fd: le32 fd, le32 open flags,
 * le32 session id, le32 family, le32 addr len, addr bytes, le64 up, consumed, delivered,
 * unread checksum, le32 unread len, unread bytes; then le64 ck_checksum of all before. */
#include "supervisor.h"

#include "common/ck.h"
#include "netproxy/netproxy.h"

#include <dirent.h>
#include <stdarg.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>

#define NETCUT_FILE    "net.cut"
#define NETCUT_MAGIC   "CKNETCUT"
#define NETCUT_VERSION 1u
#define NETCUT_MAX     LAUNCH_HAND_MAX

static int int_cmp(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

/* The job's socket fds, ascending (the lowest of dups is the one handed over at restore). */
static int socket_fds(pid_t pid, int *out, size_t max, size_t *ret_n)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char lp[320], target[64];
		snprintf(lp, sizeof(lp), "%s/%s", path, de->d_name);
		ssize_t k = readlink(lp, target, sizeof(target) - 1);
		if (k <= 0)
			continue;
		target[k] = 0;
		if (strncmp(target, "socket:", 7) || n == max)
			continue;
		out[n++] = atoi(de->d_name);
	}
	closedir(d);
	qsort(out, n, sizeof(int), int_cmp);
	*ret_n = n;
	return 0;
}

static int fd_flags(pid_t pid, int fd)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, fd);
	_cleanup_close_ int f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return 0;
	ssize_t n = ck_read_full(f, buf, sizeof(buf) - 1);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strstr(buf, "flags:");
	return p ? (int)strtol(p + 6, NULL, 8) : 0;
}

void sup_net_cut_free(struct sup_net_cut *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->e[i].unread);
	c->n = 0;
}

void sup_ckpt_net_finish(struct sup *s, struct sup_net_cut *c, bool stop)
{
	for (size_t i = 0; s->np && !stop && i < c->n; i++)
		(void)netproxy_session_resume(s->np, c->e[i].cut.id);
	sup_net_cut_free(c);
}

int sup_ckpt_net_detach(struct sup *s, pid_t pid, struct sup_net_cut *c, char *err, size_t errlen)
{
	c->n = 0;
	if (!s->np)
		return 0;
	int fds[NETCUT_MAX * 2];
	size_t n = 0;
	int r = socket_fds(pid, fds, CK_ARRAY_SIZE(fds), &n);
	if (r < 0) {
		snprintf(err, errlen, "cannot list the job's sockets: %s", strerror(-r));
		return r;
	}
	_cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		snprintf(err, errlen, "pidfd_open of the job: %m");
		return -errno;
	}
	for (size_t i = 0; i < n; i++) {
		_cleanup_close_ int dup = (int)syscall(SYS_pidfd_getfd, pidfd, fds[i], 0);
		uint32_t id;
		if (dup < 0 || netproxy_session_find(s->np, dup, &id) < 0)
			continue; /* not a proxied socket (or closed meanwhile: the job is frozen) */
		bool seen = false;
		for (size_t j = 0; j < c->n; j++)
			seen |= c->e[j].cut.id == id;
		if (seen)
			continue; /* a dup: the restorer dups the lowest fd */
		if (c->n == NETCUT_MAX) {
			snprintf(err, errlen,
				 "the job has more than %d proxied connections; a checkpoint takes "
				 "at most that many",
				 NETCUT_MAX);
			r = -EMFILE;
			goto fail;
		}
		struct sup_net_cut_ent *e = &c->e[c->n];
		*e = (struct sup_net_cut_ent){.fd = fds[i], .flags = fd_flags(pid, fds[i])};
		void *u = NULL;
		r = netproxy_session_detach(s->np, id, dup, &u, &e->len);
		if (r == -EBUSY)
			continue; /* still connecting: the restored connect() is served anew */
		if (r == -EAGAIN) {
			snprintf(err, errlen,
				 "the job's connection on fd %d is still replaying after the last "
				 "restore (the job has not sent again what it had sent); try again "
				 "in a moment",
				 fds[i]);
			goto fail;
		}
		if (r < 0) {
			snprintf(err, errlen, "cannot detach the job's connection on fd %d: %s",
				 fds[i], strerror(-r));
			goto fail;
		}
		e->unread = u;
		c->n++;
		r = netproxy_session_cut(s->np, id, &e->cut);
		if (r < 0) {
			snprintf(err, errlen, "connection on fd %d: %s", fds[i], strerror(-r));
			goto fail;
		}
	}
	return 0;
fail:
	sup_ckpt_net_finish(s, c, false);
	return r;
}

static socklen_t addr_len(const struct sockaddr_storage *a)
{
	return a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

int sup_ckpt_net_save(struct sup *s, const struct sup_net_cut *c, int dirfd)
{
	struct ck_buf b = {0};
	ck_buf_append(&b, NETCUT_MAGIC, 8);
	ck_buf_le32(&b, NETCUT_VERSION);
	ck_buf_le32(&b, (uint32_t)c->n);
	for (size_t i = 0; i < c->n; i++) {
		const struct sup_net_cut_ent *e = &c->e[i];
		ck_buf_le32(&b, (uint32_t)e->fd);
		ck_buf_le32(&b, (uint32_t)e->flags);
		ck_buf_le32(&b, e->cut.id);
		ck_buf_le32(&b, (uint32_t)e->cut.family);
		socklen_t al = addr_len(&e->cut.peer);
		ck_buf_le32(&b, al);
		ck_buf_append(&b, &e->cut.peer, al);
		ck_buf_le64(&b, e->cut.up);
		ck_buf_le64(&b, e->cut.consumed);
		ck_buf_le64(&b, e->cut.delivered);
		ck_buf_le64(&b, e->cut.unread_sum);
		ck_buf_le32(&b, (uint32_t)e->len);
		ck_buf_append(&b, e->unread ? e->unread : (void *)"", e->len);
	}
	int r = b.err;
	if (!r)
		ck_buf_le64(&b, ck_checksum(b.data, b.len));
	if (!r && !(r = b.err))
		r = ck_write_file_atomic(dirfd, NETCUT_FILE, b.data, b.len, 0600);
	ck_buf_free(&b);
	if (r == 0 && s->np)
		r = netproxy_table_save(s->np, dirfd);
	return r;
}

static int cut_load(int dirfd, struct sup_net_cut *c)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	c->n = 0;
	int r = ck_read_file_at(dirfd, NETCUT_FILE, 256u << 20, &buf, &len);
	if (r < 0)
		return r;
	const uint8_t *p = (const uint8_t *)buf, *end = p + len;
	if (len < 24 || memcmp(p, NETCUT_MAGIC, 8) ||
	    ck_get_le64(end - 8) != ck_checksum(p, len - 8))
		return -EBADMSG;
	if (ck_get_le32(p + 8) != NETCUT_VERSION)
		return -EPROTONOSUPPORT;
	uint32_t n = ck_get_le32(p + 12);
	if (n > NETCUT_MAX)
		return -EBADMSG;
	p += 16;
	end -= 8;
	for (uint32_t i = 0; i < n; i++) {
		struct sup_net_cut_ent *e = &c->e[i];
		*e = (struct sup_net_cut_ent){0};
		if (end - p < 20)
			goto bad;
		e->fd = (int)ck_get_le32(p);
		e->flags = (int)ck_get_le32(p + 4);
		e->cut.id = ck_get_le32(p + 8);
		e->cut.family = (int)ck_get_le32(p + 12);
		uint32_t al = ck_get_le32(p + 16);
		p += 20;
		if (al > sizeof(e->cut.peer) || (size_t)(end - p) < al + 36)
			goto bad;
		memcpy(&e->cut.peer, p, al);
		p += al;
		e->cut.up = ck_get_le64(p);
		e->cut.consumed = ck_get_le64(p + 8);
		e->cut.delivered = ck_get_le64(p + 16);
		e->cut.unread_sum = ck_get_le64(p + 24);
		e->len = ck_get_le32(p + 32);
		p += 36;
		if ((size_t)(end - p) < e->len || e->fd < 3 ||
		    (e->cut.family != AF_INET && e->cut.family != AF_INET6))
			goto bad;
		e->unread = malloc(e->len + 1);
		if (!e->unread) {
			sup_net_cut_free(c);
			return -ENOMEM;
		}
		memcpy(e->unread, p, e->len);
		p += e->len;
		c->n++;
	}
	if (p != end)
		goto bad;
	return 0;
bad:
	sup_net_cut_free(c);
	return -EBADMSG;
}

static void report(struct sup *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(struct sup *s, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	sup_log(s, "restore: %s", line);
	size_t used = strlen(s->net_report);
	snprintf(s->net_report + used, sizeof(s->net_report) - used, "%s\n", line);
}

static const char *why(const struct sup *s, int r)
{
	switch (r) {
	case -ENOENT:
		return s->np ? "it was closed after the checkpoint"
			     : "its supervisor ended since the checkpoint (a reboot?)";
	case -ECONNRESET:
		return "the peer reset it";
	case -ESTALE:
		return "it carried bytes after the checkpoint, which a replay cannot match";
	default:
		return strerror(-r);
	}
}

int sup_ckpt_net_restore(struct sup *s, int rdir, int *fds, int *targets, size_t *ret_n,
			 char *err, size_t errlen)
{
	s->net_report[0] = 0;
	*ret_n = 0;
	struct sup_net_cut c;
	int r = cut_load(rdir, &c);
	if (r == -ENOENT)
		c.n = 0; /* taken with no connection, or by an older ckptenv */
	else if (r < 0) {
		snprintf(err, errlen, "the checkpoint's %s is %s; restore another checkpoint",
			 NETCUT_FILE, r == -EPROTONOSUPPORT ? "of an unknown version" : "corrupt");
		return r;
	}
	uint32_t kept[NETCUT_MAX];
	size_t nkept = 0;
	for (size_t i = 0; i < c.n; i++) {
		struct sup_net_cut_ent *e = &c.e[i];
		char peer[64] = "?";
		(void)netproxy_addr_format(&e->cut.peer, peer, sizeof(peer));
		int fd = -1;
		r = s->np ? netproxy_session_reattach(s->np, &e->cut, e->unread, e->len, &fd)
			  : -ENOENT;
		if (r == 0) {
			kept[nkept++] = e->cut.id;
		} else {
			if (s->np)
				(void)netproxy_session_drop(s->np, e->cut.id);
			int r2 = netproxy_reset_socket(e->cut.family, &fd);
			if (r2 < 0) {
				snprintf(err, errlen, "cannot make a socket for fd %d: %s", e->fd,
					 strerror(-r2));
				for (size_t j = 0; j < *ret_n; j++)
					close(fds[j]);
				*ret_n = 0;
				sup_net_cut_free(&c);
				return r2;
			}
			report(s, "connection to %s (fd %d) reset: %s; the job gets ECONNRESET", peer,
			       e->fd, why(s, r));
		}
		if (e->flags & O_NONBLOCK)
			(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		fds[*ret_n] = fd;
		targets[*ret_n] = e->fd;
		(*ret_n)++;
	}
	sup_net_cut_free(&c);
	/* What the old job had besides: connections opened after the checkpoint. */
	_cleanup_free_ struct netproxy_session_info *v = NULL;
	size_t n = 0;
	if (s->np && netproxy_status(s->np, &v, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			bool k = false;
			for (size_t j = 0; j < nkept; j++)
				k |= kept[j] == v[i].id;
			if (k)
				continue;
			char peer[64] = "?";
			(void)netproxy_addr_format(&v[i].peer, peer, sizeof(peer));
			(void)netproxy_session_drop(s->np, v[i].id);
			report(s, "connection to %s closed: the checkpoint does not have it", peer);
		}
	}
	return 0;
}
