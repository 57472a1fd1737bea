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
#define NG    13 /* rax rbx rdx rsi rdi r8..r15 (rcx counts, rbp/rsp are the frame) */

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

/* Register state between blocks: g[NG], k[8] (k0 unused), z[32][8]. */
struct regs {
	uint64_t g[NG];
	uint64_t k[8];
	uint64_t z[32][8] __attribute__((aligned(64)));
};
static struct regs st, st0;
static struct regs *st_ptr __attribute__((used)) = &st;
_Static_assert(offsetof(struct regs, k) == 104, "asm offsets");
_Static_assert(offsetof(struct regs, z) == 192, "asm offsets");
static volatile uint64_t out_rax __attribute__((used));
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

/* ITERS iterations; every general register i adds 2i+1, zmm0..30 add zmm31, k1..k6 add k7. */
__attribute__((target("avx512f,avx512bw"), noinline)) static void block_avx512(void)
{
	__asm__ volatile(
		"mov st_ptr(%%rip), %%rax\n\t"
#define LZ(i) "vmovdqu64 " #i "*64+192(%%rax), %%zmm" #i "\n\t"
		LZ(0) LZ(1) LZ(2) LZ(3) LZ(4) LZ(5) LZ(6) LZ(7) LZ(8) LZ(9) LZ(10) LZ(11) LZ(12)
			LZ(13) LZ(14) LZ(15) LZ(16) LZ(17) LZ(18) LZ(19) LZ(20) LZ(21) LZ(22) LZ(23)
				LZ(24) LZ(25) LZ(26) LZ(27) LZ(28) LZ(29) LZ(30) LZ(31)
#define LK(i) "kmovq " #i "*8+104(%%rax), %%k" #i "\n\t"
					LK(1) LK(2) LK(3) LK(4) LK(5) LK(6)
						LK(7) "mov 8(%%rax), %%rbx\n\t"
						      "mov 16(%%rax), %%rdx\n\t"
						      "mov 24(%%rax), %%rsi\n\t"
						      "mov 32(%%rax), %%rdi\n\t"
						      "mov 40(%%rax), %%r8\n\t"
						      "mov 48(%%rax), %%r9\n\t"
						      "mov 56(%%rax), %%r10\n\t"
						      "mov 64(%%rax), %%r11\n\t"
						      "mov 72(%%rax), %%r12\n\t"
						      "mov 80(%%rax), %%r13\n\t"
						      "mov 88(%%rax), %%r14\n\t"
						      "mov 96(%%rax), %%r15\n\t"
						      "mov 0(%%rax), %%rax\n\t"
						      "mov %[n], %%rcx\n\t"
						      "1:\n\t"
						      "add $1, %%rax\n\t"
						      "add $3, %%rbx\n\t"
						      "add $5, %%rdx\n\t"
						      "add $7, %%rsi\n\t"
						      "add $9, %%rdi\n\t"
						      "add $11, %%r8\n\t"
						      "add $13, %%r9\n\t"
						      "add $15, %%r10\n\t"
						      "add $17, %%r11\n\t"
						      "add $19, %%r12\n\t"
						      "add $21, %%r13\n\t"
						      "add $23, %%r14\n\t"
						      "add $25, %%r15\n\t"
#define AZ(i) "vpaddq %%zmm31, %%zmm" #i ", %%zmm" #i "\n\t"
		AZ(0) AZ(1) AZ(2) AZ(3) AZ(4) AZ(5) AZ(6) AZ(7) AZ(8) AZ(9) AZ(10) AZ(11) AZ(12)
			AZ(13) AZ(14) AZ(15) AZ(16) AZ(17) AZ(18) AZ(19) AZ(20) AZ(21) AZ(22) AZ(23)
				AZ(24) AZ(25) AZ(26) AZ(27) AZ(28) AZ(29) AZ(30)
#define AK(i) "kaddq %%k7, %%k" #i ", %%k" #i "\n\t"
					AK(1) AK(2) AK(3) AK(4) AK(5)
						AK(6) "dec %%rcx\n\t"
						      "jnz 1b\n\t"
						      "mov %%rax, out_rax(%%rip)\n\t"
						      "mov st_ptr(%%rip), %%rax\n\t"
						      "mov %%rbx, 8(%%rax)\n\t"
						      "mov %%rdx, 16(%%rax)\n\t"
						      "mov %%rsi, 24(%%rax)\n\t"
						      "mov %%rdi, 32(%%rax)\n\t"
						      "mov %%r8, 40(%%rax)\n\t"
						      "mov %%r9, 48(%%rax)\n\t"
						      "mov %%r10, 56(%%rax)\n\t"
						      "mov %%r11, 64(%%rax)\n\t"
						      "mov %%r12, 72(%%rax)\n\t"
						      "mov %%r13, 80(%%rax)\n\t"
						      "mov %%r14, 88(%%rax)\n\t"
						      "mov %%r15, 96(%%rax)\n\t"
#define SK(i) "kmovq %%k" #i ", " #i "*8+104(%%rax)\n\t"
		SK(1) SK(2) SK(3) SK(4) SK(5) SK(6) SK(7)
#define SZ(i) "vmovdqu64 %%zmm" #i ", " #i "*64+192(%%rax)\n\t"
			SZ(0) SZ(1) SZ(2) SZ(3) SZ(4) SZ(5) SZ(6) SZ(7) SZ(8) SZ(9) SZ(10) SZ(11)
				SZ(12) SZ(13) SZ(14) SZ(15) SZ(16) SZ(17) SZ(18) SZ(19) SZ(20)
					SZ(21) SZ(22) SZ(23) SZ(24) SZ(25) SZ(26) SZ(27) SZ(28)
						SZ(29) SZ(30) SZ(31) "vzeroupper\n\t"
		:
		: [n] "i"(ITERS)
		: "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
		  "r14", "r15", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "xmm0", "xmm1", "xmm2",
		  "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
		  "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21",
		  "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30",
		  "xmm31", "memory", "cc");
	st.g[0] = out_rax;
}

/* Without AVX-512: the general registers only. */
__attribute__((noinline)) static void block_gpr(void)
{
	__asm__ volatile("mov st_ptr(%%rip), %%rax\n\t"
			 "mov 8(%%rax), %%rbx\n\t"
			 "mov 72(%%rax), %%r12\n\t"
			 "mov 96(%%rax), %%r15\n\t"
			 "mov 0(%%rax), %%rax\n\t"
			 "mov %[n], %%rcx\n\t"
			 "1:\n\t"
			 "add $1, %%rax\n\t"
			 "add $3, %%rbx\n\t"
			 "add $19, %%r12\n\t"
			 "add $25, %%r15\n\t"
			 "dec %%rcx\n\t"
			 "jnz 1b\n\t"
			 "mov %%rax, out_rax(%%rip)\n\t"
			 "mov st_ptr(%%rip), %%rax\n\t"
			 "mov %%rbx, 8(%%rax)\n\t"
			 "mov %%r12, 72(%%rax)\n\t"
			 "mov %%r15, 96(%%rax)\n\t"
			 :
			 : [n] "i"(ITERS)
			 : "rax", "rbx", "rcx", "r12", "r15", "memory", "cc");
	st.g[0] = out_rax;
}

static int check_regs(uint64_t blocks)
{
	uint64_t t = blocks * ITERS;
	for (int i = 0; i < NG; i++) {
		if (!have_avx512 && i != 0 && i != 1 && i != 9 && i != 12)
			continue;
		if (st.g[i] != st0.g[i] + t * (uint64_t)(2 * i + 1))
			return 0;
	}
	if (!have_avx512)
		return 1;
	for (int i = 1; i <= 6; i++)
		if (st.k[i] != st0.k[i] + t * st0.k[7])
			return 0;
	if (st.k[7] != st0.k[7])
		return 0;
	for (int i = 0; i < 32; i++)
		for (int j = 0; j < 8; j++)
			if (st.z[i][j] != st0.z[i][j] + (i < 31 ? t * st0.z[31][j] : 0))
				return 0;
	return 1;
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
		if (!check_regs(n)) {
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
