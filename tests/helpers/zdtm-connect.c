/* zdtm-style helper for the netproxy e2e tests: a single thread that, every 10 ms, looks for a
 * request file; when it holds a port, it connects to 127.0.0.1:PORT, sends "ECHO\nping", reads
 * the echo, and writes "ok PEERPORT SECCOMP" (getpeername's port; the Seccomp mode of
 * /proc/self/status) to the answer file, then removes the request. Used across a checkpoint and
 * restore: the restored process must still be under the job's filter, its connects proxied.
 *
 *   zdtm-connect REQUEST ANSWER
 *
 * NOT TO BE BUILT WITH SANITIZERS: it is checkpointed. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int seccomp_mode(void)
{
	char line[256];
	int mode = -1;
	FILE *f = fopen("/proc/self/status", "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "Seccomp:", 8))
			mode = atoi(line + 8);
	fclose(f);
	return mode;
}

static void serve(const char *req, const char *ans)
{
	char b[64] = "";
	int fd = open(req, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, b, sizeof(b) - 1);
	close(fd);
	if (n <= 0)
		return;
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((unsigned short)atoi(b)),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	char out[128];
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		snprintf(out, sizeof(out), "connect failed: %m\n");
	} else {
		char e[4] = "";
		struct sockaddr_in p = {0};
		socklen_t pl = sizeof(p);
		size_t got = 0;
		if (write(s, "ECHO\nping", 9) != 9)
			got = (size_t)-1;
		while (got < 4) {
			ssize_t k = read(s, e + got, 4 - got);
			if (k <= 0)
				break;
			got += (size_t)k;
		}
		getpeername(s, (struct sockaddr *)&p, &pl);
		if (got == 4 && !memcmp(e, "ping", 4))
			snprintf(out, sizeof(out), "ok %d %d\n", ntohs(p.sin_port), seccomp_mode());
		else
			snprintf(out, sizeof(out), "echo failed\n");
	}
	if (s >= 0)
		close(s);
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", ans);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (write(fd, out, strlen(out)) < 0)
			perror("zdtm-connect: answer");
		close(fd);
		rename(tmp, ans);
	}
	unlink(req);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: zdtm-connect REQUEST ANSWER\n");
		return 2;
	}
	for (;;) {
		serve(argv[1], argv[2]);
		struct timespec ts = {0, 10 * 1000 * 1000};
		while (nanosleep(&ts, &ts) < 0)
			;
	}
}
