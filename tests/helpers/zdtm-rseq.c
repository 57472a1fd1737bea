/* zdtm-style helper: a thread looping in an rseq critical section across checkpoints.
 *
 *   zdtm-rseq
 *
 * A worker thread runs zdtm_rseq_section() over and over, with glibc's own rseq registration
 * (__rseq_offset; glibc.pthread.rseq=0 makes it fail). The section (hand-written below) loads a
 * counter, adds 1 to it 400 times in a register and stores it back as its last instruction (the
 * commit), so a freeze almost always lands inside it; the abort handler (after the RSEQ_SIG
 * word) only returns 1. The worker keeps the invariant itself: after each commit the counter is
 * 400 times the commits (a section resumed after a half-done commit, or committed twice, breaks
 * it), and it counts the aborts. Prints "ready TID START POST_COMMIT_OFFSET ABORT" (the
 * descriptor, hex) once 1000 sections committed. On SIGUSR2 it verifies: the invariant held, the
 * worker keeps committing (1000 more within 20 s), and prints "ok" (exit 0) or "fail: WHY".
 *
 * NOT TO BE BUILT WITH SANITIZERS: it is checkpointed. */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/rseq.h>
#include <unistd.h>

#define STEPS 400

/* rdi = the thread's struct rseq, rsi = the counter; returns 0 committed, 1 aborted. */
int zdtm_rseq_section(struct rseq *rs, uint64_t *val);
extern const uint64_t zdtm_rseq_desc[4];

__asm__(".pushsection .data.rel.ro,\"aw\"\n"
	".balign 32\n"
	".globl zdtm_rseq_desc\n"
	"zdtm_rseq_desc:\n"
	"	.long 0, 0\n" /* version, flags */
	"	.quad 1f, 2f - 1f, 3f\n"
	".popsection\n"
	".text\n"
	".globl zdtm_rseq_section\n"
	".type zdtm_rseq_section, @function\n"
	"zdtm_rseq_section:\n"
	"	leaq zdtm_rseq_desc(%rip), %rax\n"
	"	movq %rax, 8(%rdi)\n" /* rseq->rseq_cs */
	"1:	movq (%rsi), %rcx\n"
	"	.rept 400\n"
	"	addq $1, %rcx\n"
	"	.endr\n"
	"	movq %rcx, (%rsi)\n" /* commit */
	"2:	xorl %eax, %eax\n"
	"	ret\n"
	"	.long 0x53053053\n" /* RSEQ_SIG on x86 */
	"3:	movl $1, %eax\n"
	"	ret\n"
	".size zdtm_rseq_section, . - zdtm_rseq_section\n");

static uint64_t counter;
static volatile uint64_t commits, aborts;
static volatile int bad, verify_asked;
static volatile pid_t worker_tid;

static void on_usr2(int sig)
{
	(void)sig;
	verify_asked = 1;
}

static void *work(void *arg)
{
	(void)arg;
	struct rseq *rs = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
	worker_tid = gettid();
	for (;;) {
		if (zdtm_rseq_section(rs, &counter)) {
			aborts = aborts + 1;
			continue;
		}
		commits = commits + 1;
		if (__atomic_load_n(&counter, __ATOMIC_RELAXED) != commits * STEPS)
			bad = 1;
	}
	return NULL;
}

static int wait_commits(uint64_t goal)
{
	for (int i = 0; i < 10000 && commits < goal; i++)
		usleep(2000);
	return commits >= goal;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (__rseq_size == 0) {
		printf("fail: glibc did not register rseq (glibc.pthread.rseq=0?)\n");
		return 2;
	}
	struct sigaction sa = {.sa_handler = on_usr2, .sa_flags = SA_RESTART};
	sigaction(SIGUSR2, &sa, NULL);
	sigset_t usr2;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	pthread_t th;
	pthread_sigmask(SIG_BLOCK, &usr2, NULL); /* the worker never takes it */
	if (pthread_create(&th, NULL, work, NULL) != 0)
		return printf("fail: pthread_create\n"), 2;
	pthread_sigmask(SIG_UNBLOCK, &usr2, NULL);
	if (!wait_commits(1000))
		return printf("fail: the section never commits\n"), 1;
	printf("ready %d %llx %llx %llx\n", (int)worker_tid, (unsigned long long)zdtm_rseq_desc[1],
	       (unsigned long long)zdtm_rseq_desc[2], (unsigned long long)zdtm_rseq_desc[3]);
	while (!verify_asked)
		usleep(2000);
	if (!wait_commits(commits + 1000))
		return printf("fail: the section stopped committing (%llu aborts)\n",
			      (unsigned long long)aborts),
		       1;
	if (bad)
		return printf("fail: counter %llu after %llu commits of %d\n",
			      (unsigned long long)counter, (unsigned long long)commits, STEPS),
		       1;
	printf("ok\n");
	return 0;
}
