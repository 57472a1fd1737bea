/* A job that installs a seccomp filter of its own (allow everything), says "filtered" and
 * sleeps: a checkpoint must refuse it, since the restore would come back without the filter. */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(void)
{
	struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog prog = {.len = 1, .filter = &allow};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
		perror("zdtm-seccomp: install a filter");
		return 1;
	}
	printf("filtered\n");
	fflush(stdout);
	for (;;)
		pause();
}
