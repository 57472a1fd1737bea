/* zdtm-style helper for the checkpoint core: maps memory of every kind with known patterns,
 * starts ZDTM_THREADS threads that wait in pause() with known register values, sets a signal
 * handler, an alternate stack, a blocked mask and pending signals, reports all of it and waits
 * for commands.
 *
 *   zdtm-mem REPORT_FD CMD_FD DIR [fork]
 *
 * Report (on REPORT_FD, text lines): "region NAME ADDR NPAGES", "thread I TID", "handler ADDR",
 * "altstack ADDR SIZE", then "ready". Commands (bytes on CMD_FD): 'v' verifies every pattern and
 * that every thread still runs with its registers intact, answering "ok" or "fail WHY";
 * 'q' or end of file exits. With "fork" a child process is kept alive too (refusal tests).
 *
 * NOT TO BE BUILT WITH SANITIZERS: it is checkpointed, and ASan's shadow mappings span
 * terabytes. The lead's tests/CMakeLists.txt keeps helpers free of -fsanitize. */
#include "zdtm-mem.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PG 4096u

static uint8_t *region[ZR_N];
static int report_fd;
static char altstack[64 << 10];
static atomic_ulong counter[ZDTM_THREADS];
static atomic_int bad[ZDTM_THREADS];
static pthread_t th[ZDTM_THREADS];
static atomic_int tids[ZDTM_THREADS];

static void die(const char *what)
{
	dprintf(report_fd, "fail %s: %s\n", what, strerror(errno));
	exit(1);
}

static void fill(uint8_t *p, unsigned r, unsigned page)
{
	uint64_t *w = (uint64_t *)(void *)p;
	for (unsigned i = 0; i < PG / 8; i++)
		w[i] = zdtm_pattern(r, page, i);
}

static bool check(const uint8_t *p, unsigned r, unsigned page, bool patterned)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;
	for (unsigned i = 0; i < PG / 8; i++)
		if (w[i] != (patterned ? zdtm_pattern(r, page, i) : 0))
			return false;
	return true;
}

static void on_usr1(int sig)
{
	(void)sig;
}

/* One wait in pause() with r12..r15 and xmm0 loaded; returns what they held afterwards. */
static void wait_once(uint64_t m, uint64_t out[5])
{
	__asm__ volatile("mov %[m], %%r12\n\t"
			 "lea 1(%[m]), %%r13\n\t"
			 "lea 2(%[m]), %%r14\n\t"
			 "lea 3(%[m]), %%r15\n\t"
			 "movq %[m], %%xmm0\n\t"
			 "mov $34, %%eax\n\t" /* pause */
			 "syscall\n\t"
			 "mov %%r12, 0(%[o])\n\t"
			 "mov %%r13, 8(%[o])\n\t"
			 "mov %%r14, 16(%[o])\n\t"
			 "mov %%r15, 24(%[o])\n\t"
			 "movq %%xmm0, 32(%[o])\n\t"
			 :
			 : [m] "r"(m), [o] "r"(out)
			 : "rax", "rcx", "r11", "r12", "r13", "r14", "r15", "xmm0", "memory");
}

static void *thread_main(void *arg)
{
	unsigned i = (unsigned)(uintptr_t)arg;
	uint64_t m = ZDTM_REG_MAGIC(i);
	tids[i] = (int)syscall(SYS_gettid);
	for (;;) {
		uint64_t out[5];
		wait_once(m, out);
		if (out[0] != m || out[1] != m + 1 || out[2] != m + 2 || out[3] != m + 3 ||
		    out[4] != m)
			bad[i] = 1;
		counter[i]++;
	}
	return NULL;
}

static uint8_t *map_file(const char *dir, const char *name, unsigned pages, int flags)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		die("open data file");
	uint8_t page[PG];
	for (unsigned p = 0; p < pages; p++) {
		fill(page, ZR_N, p);
		if (write(fd, page, PG) != PG)
			die("write data file");
	}
	uint8_t *m = mmap(NULL, pages * PG, PROT_READ | PROT_WRITE, flags, fd, 0);
	if (m == MAP_FAILED)
		die("mmap file");
	close(fd);
	return m;
}

static void setup_memory(const char *dir)
{
	const int anon = MAP_PRIVATE | MAP_ANONYMOUS;
	for (unsigned r = 0; r < ZR_N; r++) {
		unsigned n = zdtm_region_pages[r];
		switch (r) {
		case ZR_FILEPRIV:
			region[r] = map_file(dir, "zdtm-mem.priv", n, MAP_PRIVATE);
			break;
		case ZR_FILESHARED:
			region[r] = map_file(dir, "zdtm-mem.shared", n, MAP_SHARED);
			break;
		case ZR_SHARED:
			region[r] = mmap(NULL, n * PG, PROT_READ | PROT_WRITE,
					 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
			break;
		case ZR_MEMFD: {
			int fd = memfd_create("zdtm", MFD_CLOEXEC);
			if (fd < 0 || ftruncate(fd, n * PG) < 0)
				die("memfd");
			region[r] = mmap(NULL, n * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			close(fd);
			break;
		}
		default:
			/* A guard page on each side keeps the kernel from merging neighbours. */
			region[r] = mmap(NULL, (n + 2) * PG, PROT_NONE, anon, -1, 0);
			if (region[r] != MAP_FAILED) {
				region[r] += PG;
				region[r] = mmap(region[r], n * PG, PROT_READ | PROT_WRITE,
						 anon | MAP_FIXED, -1, 0);
			}
		}
		if (region[r] == MAP_FAILED)
			die("mmap");
		for (unsigned p = 0; p < n; p++) {
			uint8_t *pg = region[r] + p * PG;
			if (r == ZR_FILESHARED || !zdtm_expect_stored(r, p)) {
				if (r == ZR_ANON && p % 4 == 1)
					memset(pg, 0,
					       PG); /* touched but zero: must not be stored */
				else if (r == ZR_FILEPRIV)
					(void)*(volatile uint8_t *)pg; /* clean file page */
				continue;
			}
			fill(pg, r, p);
		}
	}
	if (mprotect(region[ZR_RO], zdtm_region_pages[ZR_RO] * PG, PROT_READ) < 0 ||
	    mprotect(region[ZR_NONE], zdtm_region_pages[ZR_NONE] * PG, PROT_NONE) < 0)
		die("mprotect");
}

static const char *verify_memory(void)
{
	if (mprotect(region[ZR_NONE], zdtm_region_pages[ZR_NONE] * PG, PROT_READ) < 0)
		return "mprotect";
	const char *why = NULL;
	for (unsigned r = 0; r < ZR_N && !why; r++)
		for (unsigned p = 0; p < zdtm_region_pages[r] && !why; p++) {
			const uint8_t *pg = region[r] + p * PG;
			bool ok;
			if (r == ZR_FILEPRIV && p % 2)
				ok = check(pg, ZR_N, p, true);
			else if (r == ZR_FILESHARED)
				ok = check(pg, ZR_N, p, true);
			else
				ok = check(pg, r, p, zdtm_expect_stored(r, p));
			if (!ok)
				why = zdtm_region_names[r];
		}
	mprotect(region[ZR_NONE], zdtm_region_pages[ZR_NONE] * PG, PROT_NONE);
	return why;
}

static const char *verify_threads(void)
{
	for (unsigned i = 0; i < ZDTM_THREADS; i++) {
		unsigned long before = counter[i];
		struct timespec t0, now;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		/* Sent again every 100 ms: a signal that arrives while a thread just resumed from a
		 * ptrace stop is on its way back into pause() (the kernel has already set the
		 * interrupted call up for a restart) runs the handler and then the restarted
		 * pause(), which sleeps on: as after SIGSTOP/SIGCONT, not a checkpoint's doing. */
		for (unsigned k = 0; counter[i] == before; k++) {
			if (k % 100 == 0)
				pthread_kill(th[i], SIGUSR1);
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec - t0.tv_sec > 5)
				return "thread did not wake";
			usleep(1000);
		}
		if (bad[i])
			return "thread registers changed";
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: zdtm-mem REPORT_FD CMD_FD DIR [fork]\n");
		return 2;
	}
	report_fd = atoi(argv[1]);
	int cmd_fd = atoi(argv[2]);
	setup_memory(argv[3]);

	struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_ONSTACK};
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		die("sigaction");
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack)};
	if (sigaltstack(&ss, NULL) < 0)
		die("sigaltstack");
	sigset_t blk;
	sigemptyset(&blk);
	sigaddset(&blk, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &blk, NULL); /* inherited by every thread */

	for (unsigned i = 0; i < ZDTM_THREADS; i++)
		if (pthread_create(&th[i], NULL, thread_main, (void *)(uintptr_t)i) != 0)
			die("pthread_create");
	for (unsigned i = 0; i < ZDTM_THREADS; i++)
		while (!tids[i])
			usleep(1000);
	kill(getpid(), SIGUSR2);      /* shared pending, blocked everywhere */
	pthread_kill(th[0], SIGUSR2); /* private pending of thread 0 */

	if (argc > 4 && strcmp(argv[4], "fork") == 0) {
		pid_t c = fork();
		if (c < 0)
			die("fork");
		if (c == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			for (;;)
				pause();
		}
	}

	for (unsigned r = 0; r < ZR_N; r++)
		dprintf(report_fd, "region %s %lx %u\n", zdtm_region_names[r],
			(unsigned long)(uintptr_t)region[r], zdtm_region_pages[r]);
	for (unsigned i = 0; i < ZDTM_THREADS; i++)
		dprintf(report_fd, "thread %u %d\n", i, tids[i]);
	dprintf(report_fd, "handler %lx\n", (unsigned long)(uintptr_t)on_usr1);
	dprintf(report_fd, "altstack %lx %zu\n", (unsigned long)(uintptr_t)altstack,
		sizeof(altstack));
	dprintf(report_fd, "ready\n");

	for (;;) {
		char c;
		ssize_t n = read(cmd_fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || c == 'q')
			return 0;
		if (c == 'v') {
			const char *why = verify_memory();
			if (!why)
				why = verify_threads();
			if (why)
				dprintf(report_fd, "fail %s\n", why);
			else
				dprintf(report_fd, "ok\n");
		}
	}
}
