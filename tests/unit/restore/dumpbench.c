/* Dump benchmark driver (not a test): starts zdtm-big with MIB mebibytes touched, freezes it,
 * dumps it into a new checkpoint below DIR, resumes it, and prints one line of figures:
 *   restore-dumpbench HELPERS_DIR MIB DIR
 *   -> mib=1024 dump_s=1.234 frozen_s=1.240 stored_mib=1024 zero_pages=0 threads=1 */
#include "common/ck.h"
#include "restore/restore.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: restore-dumpbench HELPERS_DIR MIB DIR\n");
		return 2;
	}
	int p[2];
	if (pipe(p) < 0)
		return 1;
	char exe[PATH_MAX], fdarg[16];
	snprintf(exe, sizeof(exe), "%s/zdtm-big", argv[1]);
	snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		execl(exe, "zdtm-big", fdarg, argv[2], (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char line[128] = "";
	ssize_t n = read(p[0], line, sizeof(line) - 1);
	if (n <= 0 || strncmp(line, "ready", 5) != 0) {
		fprintf(stderr, "restore-dumpbench: %s did not get ready\n", exe);
		kill(pid, SIGKILL);
		return 1;
	}
	int dfd = open(argv[3], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		perror(argv[3]);
		kill(pid, SIGKILL);
		return 1;
	}
	char id[32];
	snprintf(id, sizeof(id), "%d", (int)pid);
	struct restore_err err = {0};
	struct restore_freeze *f = NULL;
	struct restore_dump_stats st = {0};
	int r = restore_freeze(pid, &f, &err);
	if (r == 0)
		r = restore_dump(f, dfd, id, NULL, &st, &err);
	uint64_t frozen = f ? restore_freeze_elapsed_ns(f) : 0;
	restore_freeze_resume(f);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	if (r < 0) {
		fprintf(stderr, "restore-dumpbench: %s (%s)\n", err.msg, strerror(-r));
		return 1;
	}
	printf("mib=%s dump_s=%.3f frozen_s=%.3f stored_mib=%.1f zero_pages=%llu threads=%u\n",
	       argv[2], st.dump_ns / 1e9, frozen / 1e9, st.bytes_written / 1048576.0,
	       (unsigned long long)st.pages_zero, st.nthreads);
	return 0;
}
