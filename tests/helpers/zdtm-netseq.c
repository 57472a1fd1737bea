/* zdtm-style helper for the network half of the checkpoint (tests/e2e/ckpt/net-cut.sh): it
 * connects to 127.0.0.1:PORT, streams a counted sequence ("c%014llu\n", line i at offset 16 i)
 * of TOTAL bytes and reads the server's ("s%014llu\n") at a steady pace, checking every byte it
 * reads against its offset. After TOTAL both ways it half-closes and expects end of file.
 * Lines on stdout:
 *   netseq progress sent S recv R     every 256 KiB read
 *   netseq OK sent S recv R           both streams exact, EOF after them (exit 0)
 *   netseq BAD ...                    a byte lost, repeated or foreign (exit 2)
 *   netseq ECONNRESET recv R          the connection was reset (exit 3)
 *   netseq ERROR ...                  anything else (exit 4)
 *
 *   zdtm-netseq PORT TOTAL
 *
 * NOT TO BE BUILT WITH SANITIZERS: it is checkpointed. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void say(const char *fmt, ...)
{
	char b[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b, sizeof(b), fmt, ap);
	va_end(ap);
	if (n > 0)
		(void)!write(1, b, (size_t)n < sizeof(b) ? (size_t)n : sizeof(b) - 1);
}

/* The byte at offset @off of the stream whose lines start with @tag. */
static unsigned char seq_byte(char tag, unsigned long long off)
{
	char line[24];
	snprintf(line, sizeof(line), "%c%014llu\n", tag, off / 16);
	return (unsigned char)line[off % 16];
}

static void pause_ms(long ms)
{
	struct timespec ts = {0, ms * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: zdtm-netseq PORT TOTAL\n");
		return 4;
	}
	unsigned long long total = strtoull(argv[2], NULL, 10), sent = 0, got = 0;
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((unsigned short)atoi(argv[1])),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		say("netseq ERROR connect: %s\n", strerror(errno));
		return 4;
	}
	say("netseq connected\n");
	static unsigned char buf[4096];
	bool shut = false;
	unsigned long long next_progress = 256 << 10;
	for (;;) {
		if (sent < total) {
			size_t n = sizeof(buf) < total - sent ? sizeof(buf) : (size_t)(total - sent);
			for (size_t i = 0; i < n; i++)
				buf[i] = seq_byte('c', sent + i);
			ssize_t k = send(s, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (k > 0)
				sent += (unsigned long long)k;
			else if (k < 0 && errno == ECONNRESET) {
				say("netseq ECONNRESET recv %llu\n", got);
				return 3;
			} else if (k < 0 && errno != EAGAIN && errno != EINTR) {
				say("netseq ERROR send at %llu: %s\n", sent, strerror(errno));
				return 4;
			}
		} else if (!shut) {
			shutdown(s, SHUT_WR);
			shut = true;
		}
		ssize_t k = recv(s, buf, sizeof(buf), MSG_DONTWAIT);
		if (k < 0 && errno == ECONNRESET) {
			say("netseq ECONNRESET recv %llu\n", got);
			return 3;
		}
		if (k < 0 && errno != EAGAIN && errno != EINTR) {
			say("netseq ERROR recv at %llu: %s\n", got, strerror(errno));
			return 4;
		}
		if (k == 0) {
			if (got != total || sent != total) {
				say("netseq BAD end of file after %llu of %llu bytes\n", got, total);
				return 2;
			}
			say("netseq OK sent %llu recv %llu\n", sent, got);
			return 0;
		}
		for (ssize_t i = 0; i < k; i++) {
			if (got + (unsigned long long)i >= total ||
			    buf[i] != seq_byte('s', got + (unsigned long long)i)) {
				say("netseq BAD byte at offset %llu\n", got + (unsigned long long)i);
				return 2;
			}
		}
		if (k > 0)
			got += (unsigned long long)k;
		if (got >= next_progress) {
			say("netseq progress sent %llu recv %llu\n", sent, got);
			next_progress += 256 << 10;
		}
		pause_ms(2);
	}
}
