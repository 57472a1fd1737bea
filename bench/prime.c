/* ckbench-prime MIB: touch MIB MiB of fresh anonymous memory, then exit (freeing it).
 *
 * On a virtual machine whose balloon reports free pages to the host, memory that stayed free
 * for a few seconds costs a host fault per page on its next use (here 2-3 s per GiB instead
 * of 0.2), so which of two runs side by side gets recently freed pages decides the result.
 * bench/checkpoint.sh primes before every timed step, so each finds the same warm pages. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
	char *end = NULL;
	unsigned long long mib = argc == 2 ? strtoull(argv[1], &end, 10) : 0;
	if (!end || *end || !mib) {
		fprintf(stderr, "usage: ckbench-prime MIB\n");
		return 2;
	}
	size_t len = (size_t)mib << 20;
	volatile char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("ckbench-prime: mmap");
		return 1;
	}
	for (size_t i = 0; i < len; i += 4096)
		p[i] = 1;
	return 0;
}
