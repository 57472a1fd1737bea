/* Pack and unpack of the optional FDSTATE section of core.img (docs/image-format.md): one
 * record per fd of the FDS section, in the same order, each the same fixed sequence of fields
 * whatever the kind (unused ones are zero), so the codec has one path to get right. Every
 * count and length is bounded by a cap and by the bytes left before anything is allocated. */
#include "restore/image-internal.h"

#include <stdlib.h>
#include <sys/socket.h>

void img_fdstate_clear(struct restore_fd_state *st)
{
	free(st->data);
	free(st->msg_len);
	free(st->tfds);
	for (size_t i = 0; i < st->nwatches; i++)
		free(st->watches[i].path);
	free(st->watches);
	*st = (struct restore_fd_state){.dup_of = -1};
}

void img_pack_fdstate(struct ck_buf *b, const struct restore_fd *v, size_t n)
{
	ck_buf_le32(b, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		const struct restore_fd_state *s = &v[i].st;
		ck_buf_le32(b, (uint32_t)v[i].fd);
		ck_buf_le32(b, s->flags);
		ck_buf_le32(b, (uint32_t)s->dup_of);
		ck_buf_le64(b, s->value);
		ck_buf_le64(b, s->peer_ino);
		ck_buf_le32(b, (uint32_t)s->clockid);
		ck_buf_le32(b, s->tflags);
		ck_buf_le64(b, s->it_value_ns);
		ck_buf_le64(b, s->it_interval_ns);
		ck_buf_le64(b, s->ticks);
		ck_buf_le64(b, (uint64_t)s->abs_ns);
		ck_buf_le32(b, (uint32_t)s->family);
		ck_buf_le32(b, (uint32_t)s->type);
		ck_buf_le32(b, (uint32_t)s->protocol);
		ck_buf_le32(b, s->sock_state);
		ck_buf_str(b, (const char *)s->addr, s->addr_len);
		ck_buf_le32(b, s->nopts);
		for (uint32_t j = 0; j < s->nopts; j++) {
			ck_buf_le32(b, (uint32_t)s->opts[j].level);
			ck_buf_le32(b, (uint32_t)s->opts[j].name);
			ck_buf_le32(b, (uint32_t)s->opts[j].value);
		}
		ck_buf_str(b, (const char *)s->data, s->data_len);
		ck_buf_le32(b, s->nmsgs);
		for (uint32_t j = 0; j < s->nmsgs; j++)
			ck_buf_le32(b, s->msg_len[j]);
		ck_buf_le32(b, (uint32_t)s->ntfds);
		for (size_t j = 0; j < s->ntfds; j++) {
			ck_buf_le32(b, (uint32_t)s->tfds[j].fd);
			ck_buf_le32(b, s->tfds[j].events);
			ck_buf_le64(b, s->tfds[j].data);
		}
		ck_buf_le32(b, (uint32_t)s->nwatches);
		for (size_t j = 0; j < s->nwatches; j++) {
			const struct restore_inotify_watch *w = &s->watches[j];
			ck_buf_le32(b, (uint32_t)w->wd);
			ck_buf_le32(b, w->mask);
			ck_buf_le64(b, w->ino);
			ck_buf_le64(b, w->dev);
			ck_buf_le32(b, w->flags);
			ck_buf_str(b, w->path ? w->path : "", w->path ? strlen(w->path) : 0);
		}
	}
}

static bool count(struct ck_rd *r, uint32_t *n, uint32_t max, size_t min_each)
{
	if (!ck_rd_le32(r, n))
		return false;
	if (*n > max || (uint64_t)*n * min_each > r->len - r->off) {
		r->err = -EBADMSG;
		return false;
	}
	return true;
}

static bool i32(struct ck_rd *r, int32_t *v)
{
	uint32_t u;
	if (!ck_rd_le32(r, &u))
		return false;
	*v = (int32_t)u;
	return true;
}

static void *alloc(struct ck_rd *r, size_t n, size_t each)
{
	void *p = calloc(n ? n : 1, each);
	if (!p)
		r->err = -ENOMEM;
	return p;
}

static bool get_watch(struct ck_rd *r, struct restore_inotify_watch *w)
{
	const char *s;
	size_t len;
	if (!i32(r, &w->wd) || !ck_rd_le32(r, &w->mask) || !ck_rd_le64(r, &w->ino) ||
	    !ck_rd_le64(r, &w->dev) || !ck_rd_le32(r, &w->flags) ||
	    !ck_rd_str(r, IMG_MAX_PATH, &s, &len))
		return false;
	if (len == 0 || s[0] != '/' || memchr(s, 0, len) || w->wd <= 0) {
		r->err = -EBADMSG;
		return false;
	}
	if (!(w->path = alloc(r, len + 1, 1)))
		return false;
	memcpy(w->path, s, len);
	return true;
}

static bool get_subs(struct ck_rd *r, struct restore_fd_state *s)
{
	uint32_t n;
	const char *p;
	size_t len;
	if (!ck_rd_str(r, IMG_MAX_FD_DATA, &p, &len))
		return false;
	if (len && !(s->data = alloc(r, len, 1)))
		return false;
	if (len)
		memcpy(s->data, p, len);
	s->data_len = len;
	if (!count(r, &n, IMG_MAX_FD_SUBS, 4))
		return false;
	uint64_t sum = 0;
	if (n && !(s->msg_len = alloc(r, n, sizeof(uint32_t))))
		return false;
	s->nmsgs = n;
	for (uint32_t j = 0; j < n; j++) {
		if (!ck_rd_le32(r, &s->msg_len[j]))
			return false;
		sum += s->msg_len[j];
	}
	if (s->nmsgs && sum != s->data_len)
		return r->err = -EBADMSG, false;
	if (!count(r, &n, IMG_MAX_FD_SUBS, 16))
		return false;
	if (n && !(s->tfds = alloc(r, n, sizeof(*s->tfds))))
		return false;
	for (uint32_t j = 0; j < n; j++) {
		struct restore_epoll_tfd *t = &s->tfds[j];
		if (!i32(r, &t->fd) || !ck_rd_le32(r, &t->events) || !ck_rd_le64(r, &t->data))
			return false;
		s->ntfds = j + 1;
		if (t->fd < 0)
			return r->err = -EBADMSG, false;
	}
	if (!count(r, &n, IMG_MAX_FD_SUBS, 32))
		return false;
	if (n && !(s->watches = alloc(r, n, sizeof(*s->watches))))
		return false;
	for (uint32_t j = 0; j < n; j++) {
		s->nwatches = j + 1;
		if (!get_watch(r, &s->watches[j]))
			return false;
		if (j > 0 && s->watches[j].wd <= s->watches[j - 1].wd)
			return r->err = -EBADMSG, false;
	}
	return true;
}

static bool get_one(struct ck_rd *r, const struct restore_fd *f, struct restore_fd_state *s)
{
	int32_t fd;
	uint32_t u;
	uint64_t abs;
	const char *p;
	size_t len;
	if (!i32(r, &fd) || !ck_rd_le32(r, &s->flags) || !i32(r, &s->dup_of) ||
	    !ck_rd_le64(r, &s->value) || !ck_rd_le64(r, &s->peer_ino) || !i32(r, &s->clockid) ||
	    !ck_rd_le32(r, &s->tflags) || !ck_rd_le64(r, &s->it_value_ns) ||
	    !ck_rd_le64(r, &s->it_interval_ns) || !ck_rd_le64(r, &s->ticks) ||
	    !ck_rd_le64(r, &abs) || !i32(r, &s->family) || !i32(r, &s->type) ||
	    !i32(r, &s->protocol) || !ck_rd_le32(r, &s->sock_state) ||
	    !ck_rd_str(r, sizeof(s->addr), &p, &len))
		return false;
	s->abs_ns = (int64_t)abs;
	if (len)
		memcpy(s->addr, p, len);
	s->addr_len = (uint32_t)len;
	if (fd != f->fd || s->dup_of < -1 || s->dup_of >= fd ||
	    s->sock_state > RESTORE_SOCK_CONNECTED || s->clockid < 0 || s->clockid > 15 ||
	    (s->family != 0 && s->family != AF_UNIX && s->family != AF_INET &&
	     s->family != AF_INET6))
		return r->err = -EBADMSG, false;
	if (!count(r, &u, RESTORE_SOCKOPT_MAX, 12))
		return false;
	s->nopts = u;
	for (uint32_t j = 0; j < u; j++)
		if (!i32(r, &s->opts[j].level) || !i32(r, &s->opts[j].name) ||
		    !i32(r, &s->opts[j].value))
			return false;
	return get_subs(r, s);
}

int img_unpack_fdstate(struct ck_rd *r, struct restore_image *img)
{
	uint32_t n;
	if (!ck_rd_le32(r, &n))
		return r->err;
	if (n != img->nfds)
		return -EBADMSG;
	for (uint32_t i = 0; i < n && !r->err; i++) {
		struct restore_fd_state *s = &img->fds[i].st;
		*s = (struct restore_fd_state){.present = true, .dup_of = -1};
		get_one(r, &img->fds[i], s);
	}
	if (!r->err && r->off != r->len)
		r->err = -EBADMSG;
	return r->err;
}
