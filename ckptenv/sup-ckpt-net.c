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
 * A session still connecting at the checkpoint is cut too (with what the job wrote, unsent):
 * re-attached in place it goes on connecting; a new supervisor connects again.
 *
 * net.cut: "CKNETCUT", le32 version (3), le32 count, le64 the proxy's instance (version 3: a
 * restore re-attaches sessions only in that proxy; session ids start at 1 in every one, and
 * a restore in place of an older supervisor's checkpoint attached the job to another
 * connection that had its id and peer), per fd: le32 fd, le32 open flags,
 * le32 session id, le32 family, le32 addr len, addr bytes, le64 up, consumed, delivered,
 * unread checksum, le32 unread len, unread bytes, le32 cut flags, le32 option count, per
 * option le32 level, name, value, le32 unsent len, unsent bytes; then le64 ck_checksum of all
 * before. Versions 1 (no flags, options, unsent) and 2 (no instance) are still read. */
#include "supervisor.h"

#include "common/ck.h"
#include "common/grow.h"
#include "netproxy/netproxy.h"

#include <dirent.h>
#include <stdarg.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define NETCUT_FILE    "net.cut"
#define NETCUT_MAGIC   "CKNETCUT"
#define NETCUT_VERSION 3u
/* How many reset lines the restore's reply carries; the others are counted (all are logged). */
#define REPORT_LINES 8

static int int_cmp(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

/* The job's socket fds, ascending (the lowest of dups is the one handed over at restore), in
 * *ret (malloc'd). */
static int socket_fds(pid_t pid, int **ret, size_t *ret_n)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	int *out = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
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
		if (strncmp(target, "socket:", 7))
			continue;
		if ((r = CK_GROW(out, cap, n + 1)) < 0)
			break;
		out[n++] = atoi(de->d_name);
	}
	closedir(d);
	if (r < 0) {
		free(out);
		return r;
	}
	if (n)
		qsort(out, n, sizeof(int), int_cmp);
	*ret = out;
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
	for (size_t i = 0; i < c->n; i++) {
		free(c->e[i].unread);
		free(c->e[i].unsent);
	}
	free(c->e);
	*c = (struct sup_net_cut){0};
}

#define CUT_PENDING (NETPROXY_CUT_REFUSED | NETPROXY_CUT_RESET)

void sup_ckpt_net_finish(struct sup *s, struct sup_net_cut *c, bool stop)
{
	for (size_t i = 0; s->np && !stop && i < c->n; i++)
		if (!(c->e[i].cut.flags & CUT_PENDING))
			(void)netproxy_session_resume(s->np, c->e[i].cut.id);
	sup_net_cut_free(c);
}

/* The proxied sockets among @fds: their session ids in ids[] (0 with found[i] false for the
 * others), and how many distinct sessions. */
static size_t find_sessions(struct sup *s, int pidfd, const int *fds, size_t n, uint32_t *ids,
			    bool *found)
{
	size_t sessions = 0;
	for (size_t i = 0; i < n; i++) {
		_cleanup_close_ int dup = (int)syscall(SYS_pidfd_getfd, pidfd, fds[i], 0);
		found[i] = dup >= 0 && netproxy_session_find(s->np, dup, &ids[i]) == 0;
		bool seen = false;
		for (size_t j = 0; found[i] && j < i && !seen; j++)
			seen = found[j] && ids[j] == ids[i];
		if (found[i] && seen)
			found[i] = false; /* a dup: the restorer dups the lowest fd */
		sessions += found[i];
	}
	return sessions;
}

/* A TCP socket whose connect failed (state CLOSE) with an error the job has not read yet:
 * NETPROXY_CUT_REFUSED or _RESET, its family in *ret_family; else 0. Reading SO_ERROR takes the
 * error from the job's socket, so it is made pending there again at once. */
static uint32_t pending_error(struct sup *s, int dup, int fd, int *ret_family)
{
	int dom = 0, type = 0, proto = 0, e = 0;
	socklen_t l = sizeof(int);
	struct tcp_info ti;
	socklen_t tl = sizeof(ti);
	struct pollfd p = {.fd = dup, .events = 0};
	if (getsockopt(dup, SOL_SOCKET, SO_DOMAIN, &dom, &l) < 0 ||
	    (dom != AF_INET && dom != AF_INET6) ||
	    getsockopt(dup, SOL_SOCKET, SO_TYPE, &type, &l) < 0 || type != SOCK_STREAM ||
	    getsockopt(dup, SOL_SOCKET, SO_PROTOCOL, &proto, &l) < 0 || proto != IPPROTO_TCP ||
	    getsockopt(dup, IPPROTO_TCP, TCP_INFO, &ti, &tl) < 0 || ti.tcpi_state != TCP_CLOSE ||
	    poll(&p, 1, 0) != 1 || !(p.revents & POLLERR) ||
	    getsockopt(dup, SOL_SOCKET, SO_ERROR, &e, &l) < 0 || !e)
		return 0;
	int r = netproxy_pend_error(dup, dom, e);
	if (r < 0)
		sup_log(s, "checkpoint: fd %d: the job's unread connect error (%s) could not be "
			   "kept for it: %s",
			fd, strerror(e), strerror(-r));
	*ret_family = dom;
	return e == ECONNREFUSED ? NETPROXY_CUT_REFUSED : e == ECONNRESET ? NETPROXY_CUT_RESET : 0;
}

int sup_ckpt_net_detach(struct sup *s, pid_t pid, struct sup_net_cut *c, char *err, size_t errlen)
{
	*c = (struct sup_net_cut){0};
	if (!s->np)
		return 0;
	_cleanup_free_ int *fds = NULL;
	size_t n = 0;
	int r = socket_fds(pid, &fds, &n);
	if (r < 0) {
		snprintf(err, errlen, "cannot list the job's sockets: %s", strerror(-r));
		return r;
	}
	_cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		snprintf(err, errlen, "pidfd_open of the job: %m");
		return -errno;
	}
	_cleanup_free_ uint32_t *ids = calloc(n + 1, sizeof(*ids));
	_cleanup_free_ bool *found = calloc(n + 1, sizeof(*found));
	_cleanup_free_ ino_t *pend_ino = calloc(n + 1, sizeof(*pend_ino));
	size_t npend = 0;
	if (!ids || !found || !pend_ino) {
		snprintf(err, errlen, "out of memory listing the job's connections");
		return -ENOMEM;
	}
	/* Counted before anything is detached: a refusal leaves every connection as it was. */
	size_t want = find_sessions(s, pidfd, fds, n, ids, found);
	if (want > SUP_NET_CUT_MAX) {
		snprintf(err, errlen,
			 "the job has %zu proxied connections; a checkpoint takes at most %u",
			 want, SUP_NET_CUT_MAX);
		return -EMFILE;
	}
	/* and room for the sockets with a connect error pending (pending_error) */
	if ((want || n) && !(c->e = calloc(want + n, sizeof(*c->e)))) {
		snprintf(err, errlen, "out of memory for %zu connections", want);
		return -ENOMEM;
	}
	c->cap = want + n;
	uint64_t bytes = 0;
	for (size_t i = 0; i < n; i++) {
		_cleanup_close_ int dup = (int)syscall(SYS_pidfd_getfd, pidfd, fds[i], 0);
		if (dup < 0)
			continue; /* cannot happen: the job is frozen */
		struct sup_net_cut_ent *e = &c->e[c->n];
		*e = (struct sup_net_cut_ent){.fd = fds[i], .flags = fd_flags(pid, fds[i])};
		if (!found[i] && ids[i])
			continue; /* a second fd of a session: the restorer dups the first */
		if (!found[i]) {
			/* once per socket, at its lowest fd: the restorer dups the others */
			struct stat st;
			bool seen = fstat(dup, &st) < 0;
			for (size_t j = 0; j < npend && !seen; j++)
				seen = pend_ino[j] == st.st_ino;
			if (!seen && (e->cut.flags = pending_error(s, dup, fds[i], &e->cut.family))) {
				pend_ino[npend++] = st.st_ino;
				c->n++;
			}
			continue;
		}
		void *u = NULL;
		r = netproxy_session_detach(s->np, ids[i], dup, &u, &e->len);
		if (r == -EBUSY)
			continue; /* its connect() not answered yet: restarted, served anew */
		if (r < 0) {
			snprintf(err, errlen, "cannot detach the job's connection on fd %d: %s",
				 fds[i], strerror(-r));
			goto fail;
		}
		e->unread = u;
		c->n++;
		r = netproxy_session_cut(s->np, ids[i], &e->cut);
		if (r == 0 && (e->cut.flags & NETPROXY_CUT_CONNECTING))
			r = netproxy_session_unsent(s->np, ids[i], &e->unsent, &e->unsent_len);
		if (r < 0) {
			snprintf(err, errlen, "connection on fd %d: %s", fds[i], strerror(-r));
			goto fail;
		}
		bytes += e->len + e->unsent_len;
		if (bytes > SUP_NET_CUT_BYTES_MAX) {
			snprintf(err, errlen,
				 "the job's %zu proxied connections hold more than %u MiB not yet "
				 "read or sent, more than a checkpoint keeps; checkpoint again once "
				 "the job has read them",
				 want, SUP_NET_CUT_BYTES_MAX >> 20);
			r = -E2BIG;
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
	ck_buf_le64(&b, s->np ? netproxy_instance(s->np) : 0);
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
		ck_buf_le32(&b, e->cut.flags);
		ck_buf_le32(&b, e->cut.nopts);
		for (uint32_t k = 0; k < e->cut.nopts; k++) {
			ck_buf_le32(&b, (uint32_t)e->cut.opts[k].level);
			ck_buf_le32(&b, (uint32_t)e->cut.opts[k].name);
			ck_buf_le32(&b, (uint32_t)e->cut.opts[k].value);
		}
		ck_buf_le32(&b, (uint32_t)e->unsent_len);
		ck_buf_append(&b, e->unsent ? e->unsent : (void *)"", e->unsent_len);
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

/* The bytes of @len at *p into a malloc'd copy (*ret); false when they are not there. */
static bool take_bytes(const uint8_t **p, const uint8_t *end, uint32_t len, void **ret)
{
	if ((size_t)(end - *p) < len || !(*ret = malloc((size_t)len + 1)))
		return false;
	memcpy(*ret, *p, len);
	*p += len;
	return true;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Two entries for one fd, or for one session (id 0: a pending error, no session). */
static bool has_duplicates(const struct sup_net_cut *c)
{
	_cleanup_free_ uint64_t *k = calloc(2 * c->n + 1, sizeof(*k));
	if (!k)
		return true;
	for (size_t i = 0; i < c->n; i++) { /* fds (>= 3) below 2^32, session ids above */
		k[i] = (uint32_t)c->e[i].fd;
		k[c->n + i] = c->e[i].cut.id ? (1ull << 32) | c->e[i].cut.id : 0;
	}
	qsort(k, 2 * c->n, sizeof(*k), u64_cmp);
	for (size_t i = 1; i < 2 * c->n; i++)
		if (k[i] && k[i] == k[i - 1])
			return true;
	return false;
}

static int cut_load(int dirfd, struct sup_net_cut *c)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	*c = (struct sup_net_cut){0};
	int r = ck_read_file_at(dirfd, NETCUT_FILE, SUP_NET_CUT_BYTES_MAX + (256u << 20), &buf,
				&len);
	if (r < 0)
		return r;
	const uint8_t *p = (const uint8_t *)buf, *end = p + len;
	if (len < 24 || memcmp(p, NETCUT_MAGIC, 8) ||
	    ck_get_le64(end - 8) != ck_checksum(p, len - 8))
		return -EBADMSG;
	uint32_t version = ck_get_le32(p + 8);
	if (version < 1 || version > NETCUT_VERSION)
		return -EPROTONOSUPPORT;
	uint32_t n = ck_get_le32(p + 12);
	p += 16;
	end -= 8;
	if (version >= 3) {
		if (end - p < 8)
			return -EBADMSG;
		c->instance = ck_get_le64(p);
		p += 8;
	}
	if (n > SUP_NET_CUT_MAX || n > (size_t)(end - p) / 56)
		return -EBADMSG;
	if (n && !(c->e = calloc(n, sizeof(*c->e))))
		return -ENOMEM;
	c->cap = n;
	for (uint32_t i = 0; i < n; i++) {
		struct sup_net_cut_ent *e = &c->e[i];
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
		c->n++; /* from here on sup_net_cut_free frees what the entry holds */
		if (!take_bytes(&p, end, (uint32_t)e->len, &e->unread) || e->fd < 3 ||
		    (e->cut.family != AF_INET && e->cut.family != AF_INET6))
			goto bad;
		if (version == 1)
			continue;
		if (end - p < 8)
			goto bad;
		e->cut.flags = ck_get_le32(p);
		e->cut.nopts = ck_get_le32(p + 4);
		p += 8;
		if (e->cut.nopts > NETPROXY_CUT_OPTS_MAX || (size_t)(end - p) < e->cut.nopts * 12 + 4)
			goto bad;
		for (uint32_t k = 0; k < e->cut.nopts; k++, p += 12)
			e->cut.opts[k] = (struct netproxy_sockopt){(int32_t)ck_get_le32(p),
								   (int32_t)ck_get_le32(p + 4),
								   (int32_t)ck_get_le32(p + 8)};
		uint32_t ul = ck_get_le32(p);
		p += 4;
		if (!take_bytes(&p, end, ul, &e->unsent))
			goto bad;
		e->unsent_len = ul;
	}
	if (p != end)
		goto bad;
	/* What a checkpoint could have written: one entry per fd and per session (a session
	 * twice re-attached the second time over the first, which the job then held dead). */
	for (size_t i = 0; i < c->n; i++)
		if (netproxy_cut_check(&c->e[i].cut) < 0)
			goto bad;
	if (has_duplicates(c))
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
	unsigned lines = 0;
	for (const char *q = s->net_report; (q = strchr(q, '\n')); q++)
		lines++;
	if (lines < REPORT_LINES && used + strlen(line) + 2 < sizeof(s->net_report))
		snprintf(s->net_report + used, sizeof(s->net_report) - used, "%s\n", line);
	else
		s->net_report_more++;
}

/* After the last report(): one line for those that did not fit. */
static void report_rest(struct sup *s)
{
	if (!s->net_report_more)
		return;
	size_t used = strlen(s->net_report);
	snprintf(s->net_report + used, sizeof(s->net_report) - used,
		 "... and %u more connection(s) like these (all in 'ckptenv log %s')\n",
		 s->net_report_more, s->a->name);
}

static const char *why(bool fresh, int r)
{
	switch (r) {
	case -ENOENT:
		return !fresh ? "it was closed after the checkpoint (or its connect failed)"
			      : "its supervisor ended since the checkpoint (a reboot?)";
	case -ECONNRESET:
		return "the peer reset it";
	case -ESTALE:
		return "it carried bytes after the checkpoint, which a replay cannot match";
	default:
		return strerror(-r);
	}
}

/* The socket restored job gets at e->fd: the session re-attached (in place), connected
 * again (a new supervisor, the session was connecting), or one that fails with ECONNRESET,
 * reported. -errno only when no socket at all can be made. */
static int restore_one(struct sup *s, bool fresh, struct sup_net_cut_ent *e, bool *kept,
		       int *ret_fd, char *err, size_t errlen)
{
	char peer[64] = "?";
	(void)netproxy_addr_format(&e->cut.peer, peer, sizeof(peer));
	int fd = -1, r = -ENOENT;
	*kept = false;
	if (e->cut.flags & CUT_PENDING) { /* its connect failed; the job has not read why yet */
		if (e->cut.flags & NETPROXY_CUT_RESET) {
			r = netproxy_reset_socket(e->cut.family, &fd);
		} else if ((fd = socket(e->cut.family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
			r = -errno;
		} else if ((r = netproxy_pend_error(fd, e->cut.family, ECONNREFUSED)) < 0) {
			close(fd);
		}
		if (r < 0) {
			snprintf(err, errlen, "cannot make a socket for fd %d: %s", e->fd,
				 strerror(-r));
			return r;
		}
		if (e->flags & O_NONBLOCK)
			(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		*ret_fd = fd;
		return 0;
	}
	if (!fresh)
		r = netproxy_session_reattach(s->np, &e->cut, e->unread, e->len, &fd);
	else if (e->cut.flags & NETPROXY_CUT_CONNECTING)
		r = netproxy_session_reconnect(s->np, &e->cut, e->unsent, e->unsent_len, &fd);
	if (r == 0) {
		*kept = !fresh;
	} else {
		if (!fresh)
			(void)netproxy_session_drop(s->np, e->cut.id);
		int r2 = netproxy_reset_socket(e->cut.family, &fd);
		if (r2 < 0) {
			snprintf(err, errlen, "cannot make a socket for fd %d: %s", e->fd,
				 strerror(-r2));
			return r2;
		}
		/* The job reads back the options it set, on this socket too. */
		netproxy_cut_apply_opts(&e->cut, fd);
		report(s, "connection to %s (fd %d) reset: %s; the job gets ECONNRESET", peer,
		       e->fd, why(fresh, r));
	}
	if (e->flags & O_NONBLOCK)
		(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	*ret_fd = fd;
	return 0;
}

/* Close every connection of the proxy but the @nkept of @kept, each reported as the checkpoint
 * not having it. */
static void drop_others(struct sup *s, const uint32_t *kept, size_t nkept)
{
	_cleanup_free_ struct netproxy_session_info *v = NULL;
	size_t nv = 0;
	if (netproxy_status(s->np, &v, &nv) < 0)
		return;
	for (size_t i = 0; i < nv; i++) {
		bool k = false;
		for (size_t j = 0; j < nkept && !k; j++)
			k = kept[j] == v[i].id;
		if (k)
			continue;
		char peer[64] = "?";
		(void)netproxy_addr_format(&v[i].peer, peer, sizeof(peer));
		(void)netproxy_session_drop(s->np, v[i].id);
		report(s, "connection to %s closed: the checkpoint does not have it", peer);
	}
}

int sup_ckpt_net_restore(struct sup *s, int rdir, int **ret_fds, int **ret_targets,
			 size_t *ret_n, char *err, size_t errlen)
{
	s->net_report[0] = 0;
	s->net_report_more = 0;
	*ret_n = 0;
	*ret_fds = *ret_targets = NULL;
	_cleanup_(sup_net_cut_free) struct sup_net_cut c = {0};
	int r = cut_load(rdir, &c);
	if (r == -ENOENT)
		c.n = 0; /* taken with no connection, or by an older ckptenv */
	else if (r < 0) {
		snprintf(err, errlen, "the checkpoint's %s is %s; restore another checkpoint",
			 NETCUT_FILE, r == -EPROTONOSUPPORT ? "of an unknown version" : "corrupt");
		return r;
	}
	/* The checkpoint's sessions are only in the proxy that cut them: another supervisor's
	 * (a new one, or this one restoring a checkpoint of the one before it) has none. */
	bool fresh = !s->np || !c.instance || c.instance != netproxy_instance(s->np);
	if (fresh && s->np)
		drop_others(s, NULL, 0); /* the replaced job's: none of them is the checkpoint's */
	bool reconnect = false;
	for (size_t i = 0; i < c.n; i++)
		reconnect |= (c.e[i].cut.flags & NETPROXY_CUT_CONNECTING) != 0;
	if (!s->np && reconnect && (r = sup_net_new(s)) < 0) {
		snprintf(err, errlen, "cannot start the job's network proxy: %s", strerror(-r));
		return r;
	}
	_cleanup_free_ int *fds = calloc(c.n + 1, sizeof(int));
	_cleanup_free_ int *targets = calloc(c.n + 1, sizeof(int));
	_cleanup_free_ uint32_t *kept = calloc(c.n + 1, sizeof(uint32_t));
	if (!fds || !targets || !kept) {
		snprintf(err, errlen, "out of memory for %zu connections", c.n);
		return -ENOMEM;
	}
	size_t nkept = 0, n = 0;
	for (; n < c.n; n++) {
		bool k;
		r = restore_one(s, fresh, &c.e[n], &k, &fds[n], err, errlen);
		if (r < 0) {
			for (size_t j = 0; j < n; j++)
				close(fds[j]);
			return r;
		}
		targets[n] = c.e[n].fd;
		if (k)
			kept[nkept++] = c.e[n].cut.id;
	}
	if (!fresh) /* what the old job had besides: connections opened after the checkpoint */
		drop_others(s, kept, nkept);
	report_rest(s);
	*ret_fds = TAKE_PTR(fds);
	*ret_targets = TAKE_PTR(targets);
	*ret_n = n;
	return 0;
}
