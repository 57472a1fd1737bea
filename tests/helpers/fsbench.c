/* fsbench: the file-system operations of bench/fs.sh that a shell loop would measure badly.
 *
 *   fsbench files DIR N         create N small files (128 bytes each), stat each, unlink each;
 *                               prints create_ns, stat_ns, unlink_ns, total_ns
 *   fsbench chmod DIR N         fchmod one file N times (on FUSE: one SETATTR round trip
 *                               each, nothing else); prints chmod_ns (all N)
 *   fsbench fill FILE MIB SEED  write MIB MiB of incompressible, non-repeating data, fsync;
 *                               prints fill_ns
 *   fsbench change FILE MIB SEED  overwrite MIB MiB of FILE in 1 MiB pieces spread evenly over
 *                               it (new content each SEED), fsync; prints change_ns
 *
 * Output is "key value" lines; every error is one line on stderr and exit 1. */
#include "common/ck.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>

#define MIB (1024L * 1024L)

static int die(const char *what, const char *path, int err)
{
	fprintf(stderr, "fsbench: %s %s: %s\n", what, path, strerror(err));
	return 1;
}

/* A MiB that differs for every (seed, index): xorshift stream, cheap and incompressible. */
static void fill_mib(uint64_t *buf, uint64_t seed, uint64_t index)
{
	uint64_t x = (seed * 0x9E3779B97F4A7C15ULL) ^ (index + 1) * 0xBF58476D1CE4E5B9ULL;
	for (size_t i = 0; i < MIB / sizeof(*buf); i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = x;
	}
}

static int cmd_files(const char *dir, long n)
{
	char path[4096], data[128];
	memset(data, 'f', sizeof(data));
	uint64_t t0 = ck_now_ns();
	for (long i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/f%07ld", dir, i);
		_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0)
			return die("create", path, errno);
		int r = ck_write_full(fd, data, sizeof(data));
		if (r < 0)
			return die("write", path, -r);
	}
	uint64_t t1 = ck_now_ns();
	for (long i = 0; i < n; i++) {
		struct stat st;
		snprintf(path, sizeof(path), "%s/f%07ld", dir, i);
		if (stat(path, &st) < 0)
			return die("stat", path, errno);
		if (st.st_size != (off_t)sizeof(data))
			return die("size of", path, EIO);
	}
	uint64_t t2 = ck_now_ns();
	for (long i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/f%07ld", dir, i);
		if (unlink(path) < 0)
			return die("unlink", path, errno);
	}
	uint64_t t3 = ck_now_ns();
	printf("create_ns %" PRIu64 "\nstat_ns %" PRIu64 "\nunlink_ns %" PRIu64
	       "\ntotal_ns %" PRIu64 "\n",
	       t1 - t0, t2 - t1, t3 - t2, t3 - t0);
	return 0;
}

/* The cost of one round trip to a FUSE daemon, against which the files figures can be read. */
static int cmd_chmod(const char *dir, long n)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/chmod.%d", dir, (int)getpid());
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return die("create", path, errno);
	uint64_t t0 = ck_now_ns();
	for (long i = 0; i < n; i++) {
		if (fchmod(fd, i & 1 ? 0644 : 0600) < 0)
			return die("chmod", path, errno);
	}
	uint64_t t1 = ck_now_ns();
	if (unlink(path) < 0)
		return die("unlink", path, errno);
	printf("chmod_ns %" PRIu64 "\n", t1 - t0);
	return 0;
}

static int cmd_write(const char *file, long mib, uint64_t seed, bool change)
{
	_cleanup_free_ uint64_t *buf = malloc(MIB);
	if (!buf)
		return die("malloc", "", ENOMEM);
	_cleanup_close_ int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return die("open", file, errno);
	long stride = 1, pieces = mib;
	if (change) {
		struct stat st;
		if (fstat(fd, &st) < 0)
			return die("stat", file, errno);
		long have = st.st_size / MIB;
		if (have < mib)
			return die("change: file smaller than the change:", file, EINVAL);
		stride = have / mib;
	}
	uint64_t t0 = ck_now_ns();
	for (long i = 0; i < pieces; i++) {
		fill_mib(buf, seed, (uint64_t)i);
		int r = ck_pwrite_full(fd, buf, MIB, (off_t)(i * stride) * MIB);
		if (r < 0)
			return die("write", file, -r);
	}
	if (fsync(fd) < 0)
		return die("fsync", file, errno);
	printf("%s_ns %" PRIu64 "\n", change ? "change" : "fill", ck_now_ns() - t0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "files"))
		return cmd_files(argv[2], atol(argv[3]));
	if (argc == 4 && !strcmp(argv[1], "chmod"))
		return cmd_chmod(argv[2], atol(argv[3]));
	if (argc == 5 && !strcmp(argv[1], "fill"))
		return cmd_write(argv[2], atol(argv[3]), strtoull(argv[4], NULL, 10), false);
	if (argc == 5 && !strcmp(argv[1], "change"))
		return cmd_write(argv[2], atol(argv[3]), strtoull(argv[4], NULL, 10), true);
	fprintf(stderr, "usage: fsbench files DIR N | chmod DIR N | fill FILE MIB SEED | change FILE MIB SEED\n");
	return 2;
}
