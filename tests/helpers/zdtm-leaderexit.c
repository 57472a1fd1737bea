/* A process whose main thread ended with pthread_exit() while another thread runs on (the
 * leader stays a zombie): a freeze must refuse it with a message, and leave it running.
 * The thread writes "count N" to OUT_FD every 10 ms.
 *
 *   zdtm-leaderexit OUT_FD
 *
 * NOT TO BE BUILT WITH SANITIZERS: it is frozen by the tests. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int out_fd;

static void *run(void *arg)
{
	(void)arg;
	for (unsigned long long n = 0;; n++) {
		dprintf(out_fd, "count %llu\n", n);
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: zdtm-leaderexit OUT_FD\n");
		return 2;
	}
	out_fd = atoi(argv[1]);
	pthread_t t;
	if (pthread_create(&t, NULL, run, NULL) != 0)
		return 3;
	pthread_exit(NULL);
}
