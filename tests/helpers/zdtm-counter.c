/* zdtm-style helper for the restorer: a single thread that counts in blocks inside a
 * register-heavy loop (14 general registers, zmm0..zmm31 and k1..k7 evolve every iteration and
 * are checked against the iteration count after every block), with memory patterns in .data,
 * .bss, anonymous, read-only, shared anonymous, private file, heap and stack mappings, a
 * SIGUSR1 handler on an alternate stack, a blocked SIGUSR2, a umask, a cwd, a soft rlimit and a
 * non-default MXCSR. After each block it reads the clocks (vDSO) and writes "n BLOCK" to
 * PROGRESS_FD. SIGUSR1 makes it verify everything, write "ok" or "fail WHY" and exit 0 or 1.
 *
 *   zdtm-counter PROGRESS_FD DIR [block CMD_FD]
 *
 * With "block", after block 3 it writes "blocked" and waits in read(CMD_FD) for one byte
 * (a restore must restart that read), then counts on.
 *
 * NOT TO BE BUILT WITH SANITIZERS: it is checkpointed. */
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <sys/stat.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define PG    4096u
#define ITERS 200000ull

/* The register state, reached through st_ptr (= &st). */
struct regs;
static struct regs *st_ptr __attribute__((used));
static volatile uint64_t out_rax __attribute__((used));
#define ZDTM_REGS_LOAD	 "st_ptr(%%rip)"
#define ZDTM_REGS_OUT	 "out_rax(%%rip)"
#define ZDTM_REGS_DONE() (st_ptr->g[0] = out_rax)
#include "zdtm-regs.h"

enum { R_DATA, R_BSS, R_ANON, R_RO, R_SHARED, R_FILE, R_HEAP, R_STACK, R_N };
static const char *const rname[R_N] = {"data",	 "bss",	 "anon", "ro",
				       "shared", "file", "heap", "stack"};
static const unsigned rpages[R_N] = {2, 4, 16, 4, 4, 8, 8, 2};

static uint64_t data_area[2 * PG / 8] = {1};
static uint64_t bss_area[4 * PG / 8];
static uint64_t *region[R_N];
static int progress_fd;
static char altstack[64 << 10];
static volatile sig_atomic_t stop_req, handler_on_altstack;
static char dir[PATH_MAX];

static struct regs st, st0;
static struct regs *st_ptr __attribute__((used)) = &st;
static int have_avx512;

static uint64_t pattern(unsigned r, unsigned p, unsigned w)
{
	return ((uint64_t)(r + 1) << 56) | ((uint64_t)p << 32) | (w * 2654435761u) | 1;
}

static void fill(unsigned r, unsigned file_pages_too)
{
	for (unsigned p = 0; p < rpages[r]; p++) {
		if (r == R_FILE && p % 2 && !file_pages_too)
			continue;
		for (unsigned w = 0; w < PG / 8; w++)
			region[r][p * PG / 8 + w] = pattern(r, p, w);
	}
}

static const char *check_memory(void)
{
	for (unsigned r = 0; r < R_N; r++)
		for (unsigned p = 0; p < rpages[r]; p++)
			for (unsigned w = 0; w < PG / 8; w++)
				if (region[r][p * PG / 8 + w] != pattern(r, p, w))
					return rname[r];
	return NULL;
}

static void die(const char *what)
{
	dprintf(progress_fd, "fail %s: %s\n", what, strerror(errno));
	exit(1);
}

static void on_usr1(int sig)
{
	char here;
	(void)sig;
	handler_on_altstack = &here >= altstack && &here < altstack + sizeof(altstack);
	stop_req = 1;
}

static uint8_t *map_file(unsigned pages)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/zdtm-counter.priv", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		die("open");
	uint64_t page[PG / 8];
	for (unsigned p = 0; p < pages; p++) {
		for (unsigned w = 0; w < PG / 8; w++)
			page[w] = pattern(R_FILE, p, w);
		if (write(fd, page, PG) != PG)
			die("write");
	}
	uint8_t *m = mmap(NULL, pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED)
		die("mmap file");
	close(fd);
	return m;
}

static void setup(uint64_t *stack_area)
{
	region[R_DATA] = data_area;
	region[R_BSS] = bss_area;
	region[R_ANON] = mmap(NULL, rpages[R_ANON] * PG, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	region[R_RO] = mmap(NULL, rpages[R_RO] * PG, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	region[R_SHARED] = mmap(NULL, rpages[R_SHARED] * PG, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	region[R_FILE] = (uint64_t *)(void *)map_file(rpages[R_FILE]);
	region[R_HEAP] = malloc(rpages[R_HEAP] * PG); /* below the mmap threshold: brk heap */
	region[R_STACK] = stack_area;
	for (unsigned r = 0; r < R_N; r++) {
		if (region[r] == MAP_FAILED || !region[r])
			die(rname[r]);
		fill(r, 0); /* odd file pages stay clean: they come back from the file */
	}
	if (mprotect(region[R_RO], rpages[R_RO] * PG, PROT_READ) < 0)
		die("mprotect");
	srand(42);
	for (int i = 0; i < NG; i++)
		st.g[i] = ((uint64_t)rand() << 33) ^ (uint64_t)rand();
	for (int i = 1; i < 8; i++)
		st.k[i] = ((uint64_t)rand() << 31) ^ (uint64_t)rand();
	for (int i = 0; i < 32; i++)
		for (int j = 0; j < 8; j++)
			st.z[i][j] = ((uint64_t)rand() << 32) ^ (uint64_t)rand() ^ (uint64_t)i;
	st0 = st;
}

static const char *verify(void)
{
	const char *why = check_memory();
	if (why)
		return why;
	if (!handler_on_altstack)
		return "handler not on the alternate stack";
	sigset_t cur;
	sigprocmask(SIG_SETMASK, NULL, &cur);
	if (!sigismember(&cur, SIGUSR2) || sigismember(&cur, SIGUSR1))
		return "signal mask";
	if (umask(027) != 027)
		return "umask";
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof(cwd)) || strcmp(cwd, dir) != 0)
		return "cwd";
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur != 777)
		return "rlimit";
	uint32_t mxcsr;
	__asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
	if ((mxcsr & 0xffc0) != 0x7f80)
		return "mxcsr";
	if (__rseq_size) {
		unsigned long tp;
		syscall(SYS_arch_prctl, 0x1003, &tp);
		void *area = (char *)tp + __rseq_offset;
		long r = syscall(SYS_rseq, area, __rseq_size, 0, RSEQ_SIG);
		if (r < 0 && errno == EINVAL)
			r = syscall(SYS_rseq, area, 32, 0, RSEQ_SIG);
		if (r == 0 || errno != EBUSY)
			return "rseq not registered";
	}
	/* The program break was restored: the heap grows. */
	char *b = sbrk(0), *nb = sbrk(64 * PG);
	if (nb == (void *)-1 || nb != b)
		return "brk";
	memset(nb, 0x5a, 64 * PG);
	char *m = malloc(100000);
	if (!m)
		return "malloc";
	memset(m, 1, 100000);
	free(m);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: zdtm-counter PROGRESS_FD DIR [block CMD_FD]\n");
		return 2;
	}
	progress_fd = atoi(argv[1]);
	int cmd_fd = argc > 4 && strcmp(argv[3], "block") == 0 ? atoi(argv[4]) : -1;
	if (!realpath(argv[2], dir))
		die("realpath");
	uint64_t stack_area[2 * PG / 8];
	setup(stack_area);
	unsigned a, b, c, d;
	__cpuid_count(7, 0, a, b, c, d);
	have_avx512 = (b & (1u << 16)) && (b & (1u << 30)); /* avx512f, avx512bw */
	(void)a, (void)c, (void)d;

	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack)};
	struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_ONSTACK};
	sigemptyset(&sa.sa_mask);
	sigset_t blk;
	sigemptyset(&blk);
	sigaddset(&blk, SIGUSR2);
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = 777;
	if (sigaltstack(&ss, NULL) < 0 || sigaction(SIGUSR1, &sa, NULL) < 0 ||
	    sigprocmask(SIG_BLOCK, &blk, NULL) < 0 || chdir(dir) < 0 ||
	    setrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("setup");
	umask(027);
	uint32_t mxcsr = 0x7f80; /* all exceptions masked, round toward zero */
	__asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));

	for (uint64_t n = 1; !stop_req; n++) {
		if (have_avx512)
			block_avx512();
		else
			block_gpr();
		if (!regs_check(&st, &st0, n, have_avx512)) {
			dprintf(progress_fd, "fail registers after block %llu\n",
				(unsigned long long)n);
			return 1;
		}
		struct timespec ts;
		struct timeval tv;
		if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0 || gettimeofday(&tv, NULL) < 0)
			die("clock");
		dprintf(progress_fd, "n %llu\n", (unsigned long long)n);
		if (cmd_fd >= 0 && n == 3) {
			dprintf(progress_fd, "blocked\n");
			char ch;
			ssize_t r;
			while ((r = read(cmd_fd, &ch, 1)) < 0 && errno == EINTR && !stop_req)
				;
			if (r != 1 && !stop_req)
				die("read of the command pipe");
		}
	}
	const char *why = verify();
	if (why) {
		dprintf(progress_fd, "fail %s\n", why);
		return 1;
	}
	dprintf(progress_fd, "ok\n");
	return 0;
}
