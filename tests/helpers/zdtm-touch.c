/* Helper for bench/checkpoint.sh and the identity e2e tests: the job that is checkpointed.
 * Touches MIB mebibytes of private anonymous memory with a pattern that differs on every page
 * and is not compressible by a zero check (every 8 bytes non-zero), prints "ready MIB" on
 * stdout, and idles. Each SIGUSR1 makes it check the whole pattern and print "verify ok MIB"
 * or "verify bad at OFFSET" (after a restore: the memory came back intact).
 * With a second argument PATH it also keeps PATH open (fd 3) and, with a third "shared",
 * maps its first page MAP_SHARED and checks on SIGUSR1 that the mapping and a pread of the
 * file agree ("verify ok" only then): the identity check of files across a restore.
 *
 *   zdtm-touch MIB [PATH [shared]]
 *
 * NOT TO BE BUILT WITH SANITIZERS: it is checkpointed. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile sig_atomic_t asked;

static void on_usr1(int sig)
{
	(void)sig;
	asked = 1;
}

static uint64_t word(size_t i)
{
	return (i * 0x9e3779b97f4a7c15ull) ^ (i >> 9) ^ 0x5555555555555555ull;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: zdtm-touch MIB [PATH [shared]]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	size_t mib = (size_t)strtoull(argv[1], NULL, 10), len = mib << 20;
	uint64_t *m = NULL;
	if (len) {
		m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED) {
			printf("fail mmap %zu MiB\n", mib);
			return 1;
		}
		for (size_t i = 0; i < len / 8; i++)
			m[i] = word(i) | 1;
	}
	int fd = -1;
	volatile char *sh = NULL;
	if (argc > 2) {
		fd = open(argv[2], O_RDWR | O_CREAT, 0644);
		if (fd < 0 || (fd != 3 && (dup2(fd, 3) < 0 || close(fd) < 0))) {
			printf("fail open %s\n", argv[2]);
			return 1;
		}
		fd = 3;
		if (argc > 3 && strcmp(argv[3], "shared") == 0) {
			if (ftruncate(fd, 4096) < 0) {
				printf("fail ftruncate\n");
				return 1;
			}
			sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			if (sh == MAP_FAILED) {
				printf("fail mmap %s\n", argv[2]);
				return 1;
			}
			memcpy((char *)sh, "shared-before", 14);
		}
	}
	struct sigaction sa = {.sa_handler = on_usr1};
	sigaction(SIGUSR1, &sa, NULL);
	printf("ready %zu\n", mib);
	for (;;) {
		while (!asked)
			pause();
		asked = 0;
		size_t bad = (size_t)-1;
		for (size_t i = 0; i < len / 8 && bad == (size_t)-1; i++)
			if (m[i] != (word(i) | 1))
				bad = i * 8;
		if (bad != (size_t)-1) {
			printf("verify bad at %zu\n", bad);
			continue;
		}
		if (sh) {
			/* The mapping and the file must be the same object after a restore: a write
			 * through one shows in the other. */
			char b[16] = {0};
			sh[0] = 'S';
			if (pread(fd, b, 14, 0) != 14 || memcmp(b, "Shared-before", 14) != 0) {
				printf("verify bad shared mapping (file has \"%.14s\")\n", b);
				continue;
			}
			sh[0] = 's';
		}
		printf("verify ok %zu\n", mib);
	}
}
