/* ckptenv log NAME [-f]: print the job's output log (jobs/NAME/output.1 then output, together
 * at most --log-size bytes, the oldest dropped); -f keeps printing what the job writes until it
 * ends. The supervisor writes the log once output has been quiet for 10 ms, at most 250 ms late
 * during a flood, so -f lags by that. Rotation renames output to output.1: a follower finishes
 * the file it holds, then output.1 if that is a newer one, then output. */
#include "ckptenv.h"

#include "common/ck.h"
#include "ptyproxy/ptyproxy.h"

#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <sys/stat.h>

static const char log_usage[] = "Usage: ckptenv log NAME [-f]\n"
				"\n"
				"Print the output kept of job NAME (the newest --log-size bytes).\n"
				"  -f, --follow   then print what it writes until it ends\n"
				"  -h, --help     this text\n";

/* Copy what @fd has from its offset on to stdout. */
static int copy_rest(int fd)
{
	char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : 0;
		int r = ck_write_full(1, buf, (size_t)n);
		if (r < 0)
			return r;
	}
}

static bool same_file(int dirfd, const char *name, int fd)
{
	struct stat a, b;
	if (fstatat(dirfd, name, &a, 0) < 0 || fstat(fd, &b) < 0)
		return false;
	return a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

/* Follow the log from its end. A rotation renames output to output.1; one flush of a flood may
 * rotate twice, so the file we hold may be gone and output.1 be the one after it. Either way:
 * finish the file held, then output.1 if it is not that file, then output. (Bytes of a flood
 * larger than the log between two looks are not in the files at all: see ptyproxy/outlog.c.) */
static int follow(int job_fd)
{
	_cleanup_close_ int fd = openat(job_fd, OUTPUT_LOG, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && lseek(fd, 0, SEEK_END) < 0)
		return -errno;
	bool next_is_current = false; /* after output.1, the next file is output */
	for (;;) {
		/* Looked at before reading: what the job wrote before it ended is printed. */
		bool running = state_job_running(job_fd) > 0;
		int r = fd >= 0 ? copy_rest(fd) : 0;
		if (r < 0)
			return r;
		if (fd < 0 || !same_file(job_fd, OUTPUT_LOG, fd)) {
			int nfd = -1;
			if (fd >= 0 && !next_is_current) {
				nfd = openat(job_fd, OUTPUT_LOG ".1", O_RDONLY | O_CLOEXEC);
				if (nfd >= 0 && same_file(job_fd, OUTPUT_LOG ".1", fd)) {
					close(nfd); /* ours became output.1, read to its end above */
					nfd = -1;
				}
			}
			next_is_current = nfd >= 0;
			if (nfd < 0)
				nfd = openat(job_fd, OUTPUT_LOG, O_RDONLY | O_CLOEXEC);
			if (nfd >= 0) { /* the file after the one held: from its start */
				if (fd >= 0)
					close(fd);
				fd = nfd;
				continue;
			}
		}
		next_is_current = false;
		if (!running)
			return 0;
		poll(NULL, 0, 100);
	}
}

int cmd_log(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"follow", no_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {0}};
	bool f = false;
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "fh", longopts, NULL)) != -1) {
		if (c == 'f') {
			f = true;
		} else if (c == 'h') {
			fputs(log_usage, stdout);
			return 0;
		} else {
			char what[300];
			cli_bad_option(argv, what, sizeof(what));
			return cli_usage("log", what);
		}
	}
	if (optind + 1 != argc)
		return cli_usage("log", optind >= argc ? "missing job name" : "unexpected argument");
	const char *name = argv[optind];
	struct cli_job j;
	int r = cli_job_open("log", name, false, &j);
	if (r)
		return r;
	r = ptyproxy_log_dump(j.job_fd, OUTPUT_LOG, 1);
	if (r == -ENOENT)
		r = 0; /* nothing written yet */
	if (r == 0 && f)
		r = follow(j.job_fd);
	if (r < 0 && r != -EPIPE)
		cli_error("log", name, "cannot print %s/%s: %s", j.dir, OUTPUT_LOG, strerror(-r));
	cli_job_close(&j);
	return r < 0 && r != -EPIPE ? 1 : 0;
}
