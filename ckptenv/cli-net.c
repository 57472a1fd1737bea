/* `ckptenv status NAME`, network part: the proxied connections of a running job, asked from
 * its supervisor (CONTROL_NET_STATUS; the reply's layout is documented in sup-net.c). */
#include "ckptenv.h"
#include "control.h"

#include "common/ck.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>

static bool rd_cstr(struct ck_rd *rd, char *buf, size_t len)
{
	const char *p;
	size_t l;
	if (!ck_rd_str(rd, len - 1, &p, &l))
		return false;
	memcpy(buf, p, l);
	buf[l] = 0;
	for (size_t i = 0; i < l; i++) /* never print control bytes from a socket */
		if ((unsigned char)buf[i] < 0x20)
			buf[i] = '?';
	return true;
}

int env_count_parse(const char *v, unsigned max, unsigned *ret)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (!*v || *end || errno || n == 0 || n > max || v[0] == '-')
		return -EINVAL;
	if (ret)
		*ret = (unsigned)n;
	return 0;
}

int net_max_sessions_parse(const char *v, unsigned *ret)
{
	return env_count_parse(v, NET_MAX_SESSIONS_MAX, ret);
}

int cli_status_net(int job_fd)
{
	_cleanup_close_ int sock = control_connect(job_fd, "control.sock");
	if (sock < 0)
		return sock;
	struct timeval tv = {.tv_sec = 2};
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct control_msg m;
	int r = control_call(sock, CONTROL_NET_STATUS, NULL, 0, &m);
	if (r < 0)
		return r;
	control_msg_close_fds(&m);
	if (m.type == CONTROL_ERROR)
		return -EIO;
	if (m.type != CONTROL_NET_STATUS_REPLY)
		return -EBADMSG;
	struct ck_rd rd = {.p = m.payload, .len = m.len};
	uint32_t n, max, listed;
	uint64_t made, refused;
	if (!ck_rd_le32(&rd, &n) || !ck_rd_le32(&rd, &max) || !ck_rd_le64(&rd, &made) ||
	    !ck_rd_le64(&rd, &refused) || !ck_rd_le32(&rd, &listed))
		return -EBADMSG;
	printf("network:    %u proxied connection%s (limit %u; %llu made, %llu refused at the "
	       "limit)\n",
	       n, n == 1 ? "" : "s", max, (unsigned long long)made, (unsigned long long)refused);
	if (listed)
		printf("  %-5s %-12s %-24s %-24s %12s %12s\n", "ID", "STATE", "PEER", "LOCAL",
		       "BYTES-UP", "BYTES-DOWN");
	for (uint32_t i = 0; i < listed; i++) {
		uint32_t id;
		uint64_t up, down;
		char st[32], peer[64], local[64];
		if (!ck_rd_le32(&rd, &id) || !rd_cstr(&rd, st, sizeof(st)) ||
		    !rd_cstr(&rd, peer, sizeof(peer)) || !rd_cstr(&rd, local, sizeof(local)) ||
		    !ck_rd_le64(&rd, &up) || !ck_rd_le64(&rd, &down))
			return -EBADMSG;
		printf("  %-5u %-12s %-24s %-24s %12llu %12llu\n", id, st, peer, local,
		       (unsigned long long)up, (unsigned long long)down);
	}
	if (listed < n)
		printf("  ... and %u more\n", n - listed);
	return 0;
}

void cli_print_restore_report(const char *cmd, const char *name, const struct control_msg *m)
{
	if (m->len <= 4)
		return;
	const char *p = (const char *)m->payload + 4, *end = (const char *)m->payload + m->len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char line[512];
		l = CK_MIN(l, sizeof(line) - 1);
		for (size_t i = 0; i < l; i++) /* never print control bytes from a socket */
			line[i] = (unsigned char)p[i] < 0x20 ? '?' : p[i];
		line[l] = 0;
		if (l)
			fprintf(stderr, "ckptenv: %s %s: %s\n", cmd, name, line);
		p += l + 1;
	}
}
