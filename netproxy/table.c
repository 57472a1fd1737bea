/* The session table file "netproxy.table", little-endian:
 *   le32 magic "CKNT", le32 version (1), le32 count,
 *   count records: le32 id, le32 state, local addr, peer addr,
 *                  le64 bytes_up, bytes_down, consumed, delivered, unread checksum,
 *   le64 checksum (ck_checksum of everything before it).
 * An address is le16 family, 16 address bytes (IPv4 in the first 4), le16 port (host order
 * value), le32 IPv6 scope id. */
#include "netproxy/netproxy-internal.h"

#include <arpa/inet.h>

#define NP_TABLE_FILE	 "netproxy.table"
#define NP_TABLE_MAGIC	 0x544e4b43u /* "CKNT" */
#define NP_TABLE_VERSION 1u
#define NP_TABLE_MAX	 (1u << 20)
#define NP_ADDR_SIZE	 (2 + 16 + 2 + 4)
#define NP_REC_SIZE	 (4 + 4 + 2 * NP_ADDR_SIZE + 5 * 8)

static void put_addr(struct ck_buf *b, const struct sockaddr_storage *ss)
{
	uint8_t raw[16] = {0};
	uint16_t port = 0;
	uint32_t scope = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)ss;
		memcpy(raw, &s4->sin_addr, 4);
		port = ntohs(s4->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;
		memcpy(raw, &s6->sin6_addr, 16);
		port = ntohs(s6->sin6_port);
		scope = s6->sin6_scope_id;
	}
	ck_buf_le16(b, ss->ss_family);
	ck_buf_append(b, raw, sizeof(raw));
	ck_buf_le16(b, port);
	ck_buf_le32(b, scope);
}

static bool get_addr(struct ck_rd *r, struct sockaddr_storage *ss)
{
	uint16_t fam, port;
	uint8_t raw[16];
	uint32_t scope;
	if (!ck_rd_le16(r, &fam) || !ck_rd_bytes(r, raw, sizeof(raw)) || !ck_rd_le16(r, &port) ||
	    !ck_rd_le32(r, &scope))
		return false;
	memset(ss, 0, sizeof(*ss));
	if (fam == AF_INET) {
		struct sockaddr_in *s4 = (void *)ss;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, raw, 4);
		s4->sin_port = htons(port);
	} else if (fam == AF_INET6) {
		struct sockaddr_in6 *s6 = (void *)ss;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, raw, 16);
		s6->sin6_port = htons(port);
		s6->sin6_scope_id = scope;
	} else if (fam != AF_UNSPEC) {
		r->err = -EBADMSG;
		return false;
	}
	return true;
}

int netproxy_table_save(struct netproxy *np, int dirfd)
{
	_cleanup_free_ struct netproxy_session_info *v = NULL;
	size_t n;
	int r = netproxy_status(np, &v, &n);
	if (r < 0)
		return r;
	struct ck_buf b = {0};
	ck_buf_le32(&b, NP_TABLE_MAGIC);
	ck_buf_le32(&b, NP_TABLE_VERSION);
	ck_buf_le32(&b, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		struct np_session *s = np_session_by_id(np, v[i].id);
		ck_buf_le32(&b, v[i].id);
		ck_buf_le32(&b, (uint32_t)v[i].state);
		put_addr(&b, &v[i].local);
		put_addr(&b, &v[i].peer);
		ck_buf_le64(&b, v[i].bytes_up);
		ck_buf_le64(&b, v[i].bytes_down);
		ck_buf_le64(&b, v[i].consumed);
		ck_buf_le64(&b, v[i].delivered);
		ck_buf_le64(&b, s ? s->unread_sum : 0);
	}
	if (b.err) {
		ck_buf_free(&b);
		return b.err;
	}
	ck_buf_le64(&b, ck_checksum(b.data, b.len));
	r = b.err ? b.err : ck_write_file_atomic(dirfd, NP_TABLE_FILE, b.data, b.len, 0600);
	ck_buf_free(&b);
	return r;
}

int netproxy_table_load(int dirfd, struct netproxy_session_info **ret, size_t *ret_n)
{
	_cleanup_free_ char *data = NULL;
	size_t len;
	int r = ck_read_file_at(dirfd, NP_TABLE_FILE, 12 + (size_t)NP_TABLE_MAX * NP_REC_SIZE + 8,
				&data, &len);
	if (r == -EFBIG)
		return -EBADMSG;
	if (r < 0)
		return r;
	if (len < 12 + 8)
		return -EBADMSG;
	const uint8_t *p = (const uint8_t *)data;
	if (ck_get_le64(p + len - 8) != ck_checksum(p, len - 8))
		return -EBADMSG;
	struct ck_rd rd = {.p = p, .len = len - 8};
	uint32_t magic, version, count;
	if (!ck_rd_le32(&rd, &magic) || !ck_rd_le32(&rd, &version) || !ck_rd_le32(&rd, &count))
		return -EBADMSG;
	if (magic != NP_TABLE_MAGIC)
		return -EBADMSG;
	if (version != NP_TABLE_VERSION)
		return -EPROTONOSUPPORT;
	if (count > NP_TABLE_MAX || (size_t)count * NP_REC_SIZE != rd.len - rd.off)
		return -EBADMSG;
	_cleanup_free_ struct netproxy_session_info *v = calloc(count ? count : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < count; i++) {
		uint32_t state;
		uint64_t sum;
		if (!ck_rd_le32(&rd, &v[i].id) || !ck_rd_le32(&rd, &state) ||
		    !get_addr(&rd, &v[i].local) || !get_addr(&rd, &v[i].peer) ||
		    !ck_rd_le64(&rd, &v[i].bytes_up) || !ck_rd_le64(&rd, &v[i].bytes_down) ||
		    !ck_rd_le64(&rd, &v[i].consumed) || !ck_rd_le64(&rd, &v[i].delivered) ||
		    !ck_rd_le64(&rd, &sum))
			return -EBADMSG;
		if (state > NETPROXY_STATE_LOST || v[i].consumed > v[i].delivered)
			return -EBADMSG;
		v[i].state = (enum netproxy_state)state;
	}
	*ret = TAKE_PTR(v);
	*ret_n = count;
	return 0;
}
