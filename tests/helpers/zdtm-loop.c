/* zdtm-style helper for the ckptenv checkpoint e2e tests: a single thread that prints an
 * increasing counter ("count N") to stdout every 10 ms and keeps /tmp/zdtm-loop.dat open,
 * writing the counter into it (pwrite at offset 0) every 100 counts.
 *
 *   zdtm-loop [START]
 *
 * NOT TO BE BUILT WITH SANITIZERS: it is checkpointed. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	unsigned long long n = argc > 1 ? strtoull(argv[1], NULL, 10) : 0;
	int fd = open("/tmp/zdtm-loop.dat", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		perror("zdtm-loop: /tmp/zdtm-loop.dat");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (;;) {
		printf("count %llu\n", n);
		if (n % 100 == 0) {
			char b[32];
			int l = snprintf(b, sizeof(b), "%llu\n", n);
			if (pwrite(fd, b, (size_t)l, 0) != l)
				return 2;
		}
		n++;
		struct timespec ts = {0, 10 * 1000 * 1000};
		while (nanosleep(&ts, &ts) < 0)
			;
	}
}
