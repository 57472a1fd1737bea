/* zdtm-style helper: shared-memory objects mapped more than once in one process.
 *
 *   zdtm-shmalias SHMPATH
 *
 *   memfd M (4 pages):   A maps it whole, B maps pages 2..3 elsewhere (another offset), and C
 *                        maps page 1..2 read-only (a third view, not writable);
 *   shared anon S (3 pages): S2 is a mremap(old_size 0) alias of it at another address;
 *   file SHMPATH (/dev/shm, 2 pages): F maps it whole, G maps its page 1 elsewhere.
 * Every page gets a pattern written through one view (B's pages through B). Then prints
 * "ready A B C S S2" (addresses, hex) and waits. On SIGUSR2 (sent after a restore) it checks from
 * inside: every view still shows the patterns (through the other views too), and a write
 * through one view is seen through its aliases (A/B/C, S/S2, F/G; then undone, so a second
 * restore finds the file as it was); prints "ok" (exit 0) or "fail: WHY" (exit 1). The memfd
 * and file descriptors are closed once mapped.
 *
 * NOT TO BE BUILT WITH SANITIZERS: it is checkpointed. */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096ul

static volatile sig_atomic_t verify_asked;

static void on_usr2(int sig)
{
	(void)sig;
	verify_asked = 1;
}

static void fill(uint8_t *p, unsigned seed)
{
	for (size_t i = 0; i < PG; i++)
		p[i] = (uint8_t)(seed * 31 + i * 7);
}

static int check(const uint8_t *p, unsigned seed, const char *what)
{
	for (size_t i = 0; i < PG; i++)
		if (p[i] != (uint8_t)(seed * 31 + i * 7))
			return printf("fail: %s: byte %zu is %u, not %u\n", what, i, p[i],
				      (uint8_t)(seed * 31 + i * 7)),
			       1;
	return 0;
}

/* A write through @w is seen through @r (both views of one page); the old value goes back, so
 * that the file in /dev/shm is as the checkpoint saw it for the next restore. */
static int alias(volatile uint64_t *w, volatile uint64_t *r, const char *what)
{
	uint64_t old = *w, v = 0x5a5a000000000000ull ^ (uint64_t)(uintptr_t)w;
	*w = v;
	bool seen = *r == v;
	*w = old;
	if (!seen)
		return printf("fail: a write through %s is not seen through its alias\n", what), 1;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: zdtm-shmalias /dev/shm/FILE\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct sigaction sa = {.sa_handler = on_usr2, .sa_flags = SA_RESTART};
	sigaction(SIGUSR2, &sa, NULL);
	int m = memfd_create("zdtm-shmalias", MFD_CLOEXEC);
	int f = open(argv[1], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (m < 0 || f < 0 || ftruncate(m, 4 * PG) < 0 || ftruncate(f, 2 * PG) < 0) {
		perror("zdtm-shmalias: memfd/file");
		return 2;
	}
	const int rw = PROT_READ | PROT_WRITE;
	uint8_t *a = mmap(NULL, 4 * PG, rw, MAP_SHARED, m, 0);
	uint8_t *b = mmap(NULL, 2 * PG, rw, MAP_SHARED, m, 2 * PG);
	uint8_t *c = mmap(NULL, 2 * PG, PROT_READ, MAP_SHARED, m, PG);
	uint8_t *s = mmap(NULL, 3 * PG, rw, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint8_t *s2 = s == MAP_FAILED ? MAP_FAILED : mremap(s, 0, 3 * PG, MREMAP_MAYMOVE);
	uint8_t *fm = mmap(NULL, 2 * PG, rw, MAP_SHARED, f, 0);
	uint8_t *g = mmap(NULL, PG, rw, MAP_SHARED, f, PG);
	if (a == MAP_FAILED || b == MAP_FAILED || c == MAP_FAILED || s == MAP_FAILED ||
	    s2 == MAP_FAILED || fm == MAP_FAILED || g == MAP_FAILED) {
		perror("zdtm-shmalias: mmap");
		return 2;
	}
	close(m);
	close(f);
	fill(a, 1);	 /* M page 0 */
	fill(a + PG, 2); /* M page 1 */
	fill(b, 3);	 /* M page 2, through B */
	fill(b + PG, 4); /* M page 3, through B */
	fill(s, 5);
	fill(s2 + 2 * PG, 6); /* S page 2, through the alias */
	fill(fm, 7);
	fill(g, 8); /* file page 1, through G */
	printf("ready %lx %lx %lx %lx %lx\n", (unsigned long)a, (unsigned long)b, (unsigned long)c,
	       (unsigned long)s, (unsigned long)s2);
	while (!verify_asked)
		usleep(2000);
	int bad = check(a, 1, "memfd page 0 via A") || check(a + PG, 2, "memfd page 1 via A") ||
		  check(c, 2, "memfd page 1 via C") || check(a + 2 * PG, 3, "memfd page 2 via A") ||
		  check(b, 3, "memfd page 2 via B") || check(c + PG, 3, "memfd page 2 via C") ||
		  check(a + 3 * PG, 4, "memfd page 3 via A") || check(s, 5, "anon page 0 via S") ||
		  check(s2, 5, "anon page 0 via S2") || check(s + 2 * PG, 6, "anon page 2 via S") ||
		  check(fm, 7, "file page 0") || check(fm + PG, 8, "file page 1 via F") ||
		  check(g, 8, "file page 1 via G");
	bad = bad || alias((uint64_t *)b, (uint64_t *)(a + 2 * PG), "B (memfd at offset 2)") ||
	      alias((uint64_t *)(a + PG), (uint64_t *)c, "A (memfd page 1, C read-only)") ||
	      alias((uint64_t *)(a + 3 * PG + 8), (uint64_t *)(b + PG + 8), "A (memfd page 3)") ||
	      alias((uint64_t *)(s2 + PG), (uint64_t *)(s + PG), "S2 (mremap alias)") ||
	      alias((uint64_t *)(s + 16), (uint64_t *)(s2 + 16), "S (anon)") ||
	      alias((uint64_t *)g, (uint64_t *)(fm + PG), "G (/dev/shm file)");
	if (bad)
		return 1;
	printf("ok\n");
	return 0;
}
