/* zdtm-style helper for "a restore from every checkpoint gives the state of that instant": a
 * sequence advanced one step per command line read from stdin (the job's terminal), each step
 * written into /tmp, into memory and to the terminal, so that each checkpoint holds a different
 * instant of all three.
 *
 *   zdtm-seq            reads commands, one per line:
 *     n   next step K: /tmp/seq.txt rewritten to "1\n2\n...K\n", memory updated (a table of
 *         K entries and a 4 MiB buffer filled with byte K), then "STEP K" printed
 *     v   verify memory against K and /tmp/seq.txt against K: "OK K" or "BAD K: WHY"
 *     q   exit with status K
 *
 * Prints "seq ready" first. NOT TO BE BUILT WITH SANITIZERS: it is checkpointed. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_STEPS 64
#define BUF_SIZE  (4u << 20)

static uint64_t table[MAX_STEPS + 1];
static unsigned char *buf;
static unsigned step;

static uint64_t mix(uint64_t k)
{
	return (k + 1) * 0x9e3779b97f4a7c15ull ^ (k << 29);
}

static int write_seq(unsigned k)
{
	char s[MAX_STEPS * 4];
	size_t l = 0;
	for (unsigned i = 1; i <= k; i++)
		l += (size_t)snprintf(s + l, sizeof(s) - l, "%u\n", i);
	int fd = open("/tmp/seq.txt", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	int r = write(fd, s, l) == (ssize_t)l ? 0 : -1;
	return close(fd) < 0 ? -1 : r;
}

/* Empty string when memory and /tmp agree with @step, else what is wrong. */
static const char *verify(void)
{
	static char why[128];
	for (unsigned i = 1; i <= MAX_STEPS; i++)
		if (table[i] != (i <= step ? mix(i) : 0)) {
			snprintf(why, sizeof(why), "table[%u] wrong", i);
			return why;
		}
	for (size_t i = 0; i < BUF_SIZE; i += 512)
		if (buf[i] != (unsigned char)step) {
			snprintf(why, sizeof(why), "buffer byte %zu is %u", i, buf[i]);
			return why;
		}
	char want[MAX_STEPS * 4], got[MAX_STEPS * 4 + 1];
	size_t l = 0;
	for (unsigned i = 1; i <= step; i++)
		l += (size_t)snprintf(want + l, sizeof(want) - l, "%u\n", i);
	int fd = open("/tmp/seq.txt", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, got, sizeof(got) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (step == 0 && fd < 0)
		return "";
	if (n < 0 || (size_t)n != l || memcmp(got, want, l)) {
		snprintf(why, sizeof(why), "/tmp/seq.txt has %zd bytes, not the %zu of step %u", n, l,
			 step);
		return why;
	}
	return "";
}

int main(void)
{
	buf = malloc(BUF_SIZE);
	if (!buf)
		return 100;
	memset(buf, 0, BUF_SIZE);
	setvbuf(stdout, NULL, _IONBF, 0);
	printf("seq ready\n");
	char line[64];
	while (fgets(line, sizeof(line), stdin)) {
		if (line[0] == 'n' && step < MAX_STEPS) {
			step++;
			table[step] = mix(step);
			memset(buf, (int)step, BUF_SIZE);
			if (write_seq(step) < 0) {
				printf("BAD %u: cannot write /tmp/seq.txt\n", step);
				continue;
			}
			printf("STEP %u\n", step);
		} else if (line[0] == 'v') {
			const char *why = verify();
			if (*why)
				printf("BAD %u: %s\n", step, why);
			else
				printf("OK %u\n", step);
		} else if (line[0] == 'q') {
			return (int)step;
		}
	}
	return (int)step;
}
