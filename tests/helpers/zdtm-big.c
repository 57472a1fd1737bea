/* Helper for the dump benchmark: touches MIB mebibytes of private anonymous memory with a
 * non-zero pattern (every page distinct), writes "ready" to REPORT_FD and waits.
 *
 *   zdtm-big REPORT_FD MIB
 *
 * NOT TO BE BUILT WITH SANITIZERS: it is checkpointed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: zdtm-big REPORT_FD MIB\n");
		return 2;
	}
	int fd = atoi(argv[1]);
	size_t len = (size_t)strtoull(argv[2], NULL, 10) << 20;
	uint64_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		dprintf(fd, "fail mmap\n");
		return 1;
	}
	for (size_t i = 0; i < len / 8; i++)
		m[i] = (i * 0x9e3779b97f4a7c15ull) | 1;
	dprintf(fd, "ready %lx\n", (unsigned long)(uintptr_t)m);
	for (;;)
		pause();
}
