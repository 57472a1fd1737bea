/* Data of regular files: reads, writes, truncates, fallocate and lseek against an in-memory
 * model, across commits (so copy-up from older layers is exercised) and reopens. */
#include "store-test.h"

#include <dirent.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/time.h>

#define ROOT  VFS_ROOT_INO
#define CHUNK VFS_CHUNK_SIZE
#define MAXSZ (CHUNK * 12)

struct model {
	uint8_t *buf;
	size_t size;
};

static void m_write(struct model *m, const uint8_t *p, size_t len, size_t off)
{
	memcpy(m->buf + off, p, len);
	if (off + len > m->size)
		m->size = off + len;
}

static void m_truncate(struct model *m, size_t size)
{
	if (size < m->size)
		memset(m->buf + size, 0, MAXSZ - size);
	m->size = size;
}

static void check_model(struct vfs_store *s, uint64_t ino, const struct model *m)
{
	t_expect(s, ino, m->buf, m->size);
	/* a few unaligned partial reads too */
	for (int i = 0; i < 4 && m->size; i++) {
		size_t off = t_rand() % m->size;
		size_t len = t_rand() % (CHUNK * 3) + 1;
		uint8_t *b = malloc(len);
		ssize_t n = vfs_store_read(s, ino, b, len, (off_t)off);
		size_t want = CK_MIN(len, m->size - off);
		ck_assert_int_eq(n, (ssize_t)want);
		ck_assert(memcmp(b, m->buf + off, want) == 0);
		free(b);
	}
}

/* One random step; returns a short name of what it did, for failure messages. */
static const char *random_step(struct vfs_store *s, uint64_t ino, struct model *m, uint8_t *scratch)
{
	size_t off, len;
	switch (t_rand() % 8) {
	case 0: /* truncate anywhere (often mid-chunk) */
		len = t_rand() % MAXSZ;
		ck_assert_int_eq(vfs_store_setattr(s, ino, &(struct vfs_attr){.size = len},
						   VFS_SET_SIZE, NULL),
				 0);
		m_truncate(m, len);
		return "truncate";
	case 1: /* punch a hole */
		if (!m->size)
			return "noop";
		off = t_rand() % m->size;
		len = t_rand() % (CHUNK * 3) + 1;
		ck_assert_int_eq(vfs_store_fallocate(s, ino,
						     FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
						     (off_t)off, (off_t)len),
				 0);
		memset(m->buf + off, 0, CK_MIN(len, m->size - off));
		return "punch";
	case 2: /* zero range, may extend */
		off = t_rand() % MAXSZ;
		len = t_rand() % (MAXSZ - off) + 1;
		ck_assert_int_eq(
			vfs_store_fallocate(s, ino, FALLOC_FL_ZERO_RANGE, (off_t)off, (off_t)len),
			0);
		memset(m->buf + off, 0, len);
		if (off + len > m->size)
			m->size = off + len;
		return "zero";
	case 3: /* whole aligned chunks */
		off = (t_rand() % 10) * CHUNK;
		len = (t_rand() % 2 + 1) * CHUNK;
		break;
	default: /* small unaligned writes */
		off = t_rand() % (MAXSZ - 1);
		len = (size_t)(t_rand() % 9000 + 1);
		len = CK_MIN(len, MAXSZ - off);
		break;
	}
	for (size_t i = 0; i < len; i++)
		scratch[i] = (uint8_t)t_rand();
	t_write(s, ino, scratch, len, (off_t)off);
	m_write(m, scratch, len, off);
	return "write";
}

START_TEST(test_random_model)
{
	struct vfs_store *s = t_open();
	uint64_t ino = t_mkfile(s, ROOT, "f");
	struct model m = {.buf = calloc(1, MAXSZ)};
	uint8_t *scratch = malloc(MAXSZ);
	t_rand_state ^= (uint64_t)_i * 7919 + 1;
	for (int step = 0; step < 400; step++) {
		random_step(s, ino, &m, scratch);
		if (step % 7 == 0)
			check_model(s, ino, &m);
		if (step % 50 == 49)
			t_commit(s, NULL); /* later writes copy up from sealed layers */
	}
	check_model(s, ino, &m);
	t_commit(s, NULL);
	vfs_store_close(s);
	s = t_open();
	check_model(s, ino, &m);
	vfs_store_close(s);
	free(m.buf);
	free(scratch);
}
END_TEST

/* Small files live in memory until a commit or a large write: a random model over the first
 * chunks, with truncates, holes, writes that cross the in-memory limit, commits and a reopen. */
START_TEST(test_inline_model)
{
	struct vfs_store *s = t_open();
	struct model m = {.buf = calloc(1, MAXSZ)};
	uint8_t *scratch = malloc(MAXSZ);
	t_rand_state ^= (uint64_t)_i * 104729 + 3;
	char name[16];
	uint64_t ino = 0;
	for (int step = 0; step < 300; step++) {
		if (step % 60 == 0) { /* a fresh small file now and then */
			snprintf(name, sizeof(name), "f%d", step);
			ino = t_mkfile(s, ROOT, name);
			memset(m.buf, 0, MAXSZ);
			m.size = 0;
		}
		size_t off, len;
		unsigned op = (unsigned)(t_rand() % 10);
		if (op == 0) {
			len = t_rand() % (CHUNK + CHUNK / 4);
			ck_assert_int_eq(vfs_store_setattr(s, ino, &(struct vfs_attr){.size = len},
							   VFS_SET_SIZE, NULL),
					 0);
			m_truncate(&m, len);
		} else if (op == 1 && m.size) {
			off = t_rand() % m.size;
			len = t_rand() % 9000 + 1;
			ck_assert_int_eq(vfs_store_fallocate(s, ino,
							     FALLOC_FL_PUNCH_HOLE |
								     FALLOC_FL_KEEP_SIZE,
							     (off_t)off, (off_t)len),
					 0);
			memset(m.buf + off, 0, CK_MIN(len, m.size - off));
		} else if (op == 2) {
			t_commit(s, NULL);
		} else {
			/* mostly below the limit, sometimes across it */
			off = t_rand() % (op == 3 ? CHUNK + 100 : CHUNK / 2);
			len = t_rand() % 3000 + 1;
			for (size_t i = 0; i < len; i++)
				scratch[i] = (uint8_t)t_rand();
			t_write(s, ino, scratch, len, (off_t)off);
			m_write(&m, scratch, len, off);
		}
		check_model(s, ino, &m);
	}
	t_commit(s, NULL);
	vfs_store_close(s);
	s = t_open();
	check_model(s, ino, &m);
	vfs_store_close(s);
	free(m.buf);
	free(scratch);
}
END_TEST

static size_t count_layer_files(void)
{
	char p[PATH_MAX + 32];
	snprintf(p, sizeof(p), "%s/data", t_store);
	DIR *d = opendir(p);
	ck_assert_ptr_nonnull(d);
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* A small file written and unlinked before any commit never creates a layer file; one that is
 * committed does, with its data. */
START_TEST(test_inline_no_layer_file)
{
	struct vfs_store *s = t_open();
	uint64_t a = t_mkfile(s, ROOT, "a");
	t_write_str(s, a, "short lived");
	t_expect_str(s, a, "short lived");
	ck_assert_uint_eq(count_layer_files(), 0);
	ck_assert_int_eq(vfs_store_unlink(s, ROOT, "a"), 0);
	ck_assert_uint_eq(count_layer_files(), 0);
	uint64_t b = t_mkfile(s, ROOT, "b");
	t_write_str(s, b, "kept");
	struct vfs_attr at;
	ck_assert_int_eq(vfs_store_getattr(s, b, &at), 0);
	ck_assert_uint_eq(at.size, 4);
	ck_assert_uint_gt(at.blocks, 0);
	t_commit(s, NULL);
	ck_assert_uint_eq(count_layer_files(), 1);
	t_write_str(s, b, "KEPT"); /* copy-up path now: the chunk is in a sealed layer */
	vfs_store_close(s);
	s = t_open();
	t_expect_str(s, b, "kept");
	vfs_store_close(s);
}
END_TEST

START_TEST(test_truncate_then_extend)
{
	/* A chunk held by a committed layer, truncated mid-chunk, then extended: the tail must
	 * read as zeros, and the committed epoch must still hold the old bytes. */
	struct vfs_store *s = t_open();
	uint64_t ino = t_mkfile(s, ROOT, "f");
	uint8_t *b = malloc(CHUNK * 2), *z = calloc(1, CHUNK * 2);
	memset(b, 'A', CHUNK * 2);
	t_write(s, ino, b, CHUNK * 2, 0);
	uint64_t e1 = t_commit(s, "one");
	ck_assert_int_eq(
		vfs_store_setattr(s, ino, &(struct vfs_attr){.size = 100}, VFS_SET_SIZE, NULL), 0);
	ck_assert_int_eq(vfs_store_setattr(s, ino, &(struct vfs_attr){.size = CHUNK * 2},
					   VFS_SET_SIZE, NULL),
			 0);
	uint8_t *r = malloc(CHUNK * 2);
	ck_assert_int_eq(vfs_store_read(s, ino, r, CHUNK * 2, 0), CHUNK * 2);
	ck_assert(memcmp(r, b, 100) == 0);
	ck_assert(memcmp(r + 100, z, CHUNK * 2 - 100) == 0);
	/* same inside the live layer */
	t_write(s, ino, b, CHUNK, 0);
	ck_assert_int_eq(
		vfs_store_setattr(s, ino, &(struct vfs_attr){.size = 10}, VFS_SET_SIZE, NULL), 0);
	t_write(s, ino, "x", 1, CHUNK - 1);
	ck_assert_int_eq(vfs_store_read(s, ino, r, CHUNK, 0), CHUNK);
	ck_assert(memcmp(r, b, 10) == 0);
	ck_assert(memcmp(r + 10, z, CHUNK - 11) == 0);
	ck_assert_int_eq(r[CHUNK - 1], 'x');
	vfs_store_close(s);
	s = t_open_at(e1, 0);
	t_expect(s, ino, b, CHUNK * 2);
	vfs_store_close(s);
	free(b);
	free(z);
	free(r);
}
END_TEST

START_TEST(test_sparse_lseek)
{
	struct vfs_store *s = t_open();
	uint64_t ino = t_mkfile(s, ROOT, "f");
	t_write(s, ino, "data", 4, CHUNK * 3 + 5);
	t_write(s, ino, "more", 4, CHUNK * 7);
	off_t o;
	ck_assert_int_eq(vfs_store_lseek(s, ino, 0, SEEK_DATA, &o), 0);
	ck_assert_int_eq(o, CHUNK * 3);
	ck_assert_int_eq(vfs_store_lseek(s, ino, CHUNK * 3 + 10, SEEK_DATA, &o), 0);
	ck_assert_int_eq(o, CHUNK * 3 + 10);
	ck_assert_int_eq(vfs_store_lseek(s, ino, CHUNK * 3, SEEK_HOLE, &o), 0);
	ck_assert_int_eq(o, CHUNK * 4);
	ck_assert_int_eq(vfs_store_lseek(s, ino, CHUNK * 4, SEEK_DATA, &o), 0);
	ck_assert_int_eq(o, CHUNK * 7);
	ck_assert_int_eq(vfs_store_lseek(s, ino, CHUNK * 7, SEEK_HOLE, &o), 0);
	ck_assert_int_eq(o, CHUNK * 7 + 4); /* end of file */
	ck_assert_int_eq(vfs_store_lseek(s, ino, CHUNK * 8, SEEK_DATA, &o), -ENXIO);
	ck_assert_int_eq(vfs_store_lseek(s, ino, CHUNK * 7 + 4, SEEK_HOLE, &o), -ENXIO);
	struct vfs_attr a;
	ck_assert_int_eq(vfs_store_getattr(s, ino, &a), 0);
	ck_assert_uint_eq(a.blocks, 2 * CHUNK / 512);
	/* KEEP_SIZE allocate: no size change; mode 0 extends; others unsupported */
	ck_assert_int_eq(vfs_store_fallocate(s, ino, FALLOC_FL_KEEP_SIZE, 0, CHUNK * 20), 0);
	ck_assert_int_eq(vfs_store_getattr(s, ino, &a), 0);
	ck_assert_uint_eq(a.size, CHUNK * 7 + 4);
	ck_assert_int_eq(vfs_store_fallocate(s, ino, 0, 0, CHUNK * 20), 0);
	ck_assert_int_eq(vfs_store_getattr(s, ino, &a), 0);
	ck_assert_uint_eq(a.size, CHUNK * 20);
	ck_assert_int_eq(vfs_store_fallocate(s, ino, FALLOC_FL_COLLAPSE_RANGE, 0, CHUNK),
			 -EOPNOTSUPP);
	ck_assert_int_eq(vfs_store_write(s, ROOT, "x", 1, 0, 0), -EISDIR);
	vfs_store_close(s);
}
END_TEST

/* Parallel writers on different files (per-inode locks). */
struct par {
	struct vfs_store *s;
	uint64_t ino;
	int fails;
};

static void *par_fn(void *arg)
{
	struct par *p = arg;
	uint8_t buf[10000];
	for (int i = 0; i < 200; i++) {
		memset(buf, (int)(p->ino + (uint64_t)i), sizeof(buf));
		if (vfs_store_write(p->s, p->ino, buf, sizeof(buf), (off_t)i * 10000, 0) != 10000)
			p->fails++;
	}
	return NULL;
}

START_TEST(test_parallel_files)
{
	struct vfs_store *s = t_open();
	struct par p[4];
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		char n[8];
		snprintf(n, sizeof(n), "f%d", i);
		p[i] = (struct par){.s = s, .ino = t_mkfile(s, ROOT, n)};
		pthread_create(&th[i], NULL, par_fn, &p[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(p[i].fails, 0);
		uint8_t buf[10000], want[10000];
		for (int k = 0; k < 200; k += 37) {
			memset(want, (int)(p[i].ino + (uint64_t)k), sizeof(want));
			ck_assert_int_eq(
				vfs_store_read(s, p[i].ino, buf, sizeof(buf), (off_t)k * 10000),
				10000);
			ck_assert(memcmp(buf, want, sizeof(buf)) == 0);
		}
	}
	vfs_store_close(s);
}
END_TEST

static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n - 3; /* ., .. and the directory's own fd */
}

/* Many files in use at once (a tar of 20k files the kernel keeps cached) under a low open-file
 * limit: the layer fds stay within the store's cap, and writes, a commit and reads of every file
 * work. Before, each inode held its fds until the kernel forgot it: EMFILE in the job, and a
 * commit failing with "Too many open files" lost all of the run's /tmp. */
START_TEST(test_fd_cap)
{
	struct rlimit rl = {256, 256}; /* a forked test: the limit goes with it */
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	int base = open_fds();
	struct vfs_store *s = t_open();
	unsigned cap = 32; /* store_fd_cap(256): its floor */
	enum { N = 1000 };
	static uint64_t ino[N];
	uint8_t big[VFS_CHUNK_SIZE + 100], buf[sizeof(big)];
	for (unsigned i = 0; i < N; i++) {
		char n[16];
		snprintf(n, sizeof(n), "f%u", i);
		ino[i] = t_mkfile(s, ROOT, n);
		vfs_store_ref(s, ino[i], 1); /* as the kernel's lookup count */
		memset(big, (int)(i % 251), sizeof(big));
		/* larger than the in-memory size: every file gets a layer file and an fd */
		ck_assert_int_eq(vfs_store_write(s, ino[i], big, sizeof(big), 0, 0), (ssize_t)sizeof(big));
	}
	ck_assert_int_le(open_fds() - base, (int)cap + 8);
	t_commit(s, NULL);
	for (unsigned i = 0; i < N; i++) {
		memset(big, (int)(i % 251), sizeof(big));
		ck_assert_int_eq(vfs_store_read(s, ino[i], buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
		ck_assert(memcmp(buf, big, sizeof(big)) == 0);
	}
	ck_assert_int_le(open_fds() - base, (int)cap + 8);
	vfs_store_close(s);
	ck_assert_int_eq(open_fds(), base);
}
END_TEST

/* fallocate allocates only within the size it leaves (KEEP_SIZE past the end allocates
 * nothing there), and every case commits and opens again: chunks mapped past the size made
 * the epoch unreadable ("bad chunk map run"), the job's /tmp lost (found by a reviewer). */
START_TEST(test_fallocate_commit_reopen)
{
	struct vfs_store *s = t_open();
	uint64_t f = t_mkfile(s, ROOT, "f"), e = t_mkfile(s, ROOT, "e"), m = t_mkfile(s, ROOT, "m");
	t_write(s, f, "hello", 5, 0);
	ck_assert_int_eq(vfs_store_fallocate(s, f, FALLOC_FL_KEEP_SIZE, 0, VFS_CHUNK_SIZE * 4), 0);
	ck_assert_int_eq(vfs_store_fallocate(s, e, FALLOC_FL_KEEP_SIZE, 0, 100), 0);
	ck_assert_int_eq(vfs_store_fallocate(s, m, 0, VFS_CHUNK_SIZE, VFS_CHUNK_SIZE * 3), 0);
	struct vfs_attr a;
	ck_assert_int_eq(vfs_store_getattr(s, m, &a), 0);
	ck_assert_uint_eq(a.size, VFS_CHUNK_SIZE * 4);
	ck_assert_uint_ge(a.blocks, VFS_CHUNK_SIZE * 3 / 512);
	t_commit(s, NULL);
	vfs_store_close(s);
	s = t_open();
	t_expect_str(s, f, "hello");
	t_expect_str(s, e, "");
	uint8_t buf[VFS_CHUNK_SIZE * 4], zero[sizeof(buf)] = {0};
	ck_assert_int_eq(vfs_store_read(s, m, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	ck_assert(memcmp(buf, zero, sizeof(buf)) == 0);
	vfs_store_close(s);
}
END_TEST

/* Commits while writers run: no deadlock, and the last commit holds the final content. */
START_TEST(test_commit_during_writes)
{
	struct vfs_store *s = t_open();
	struct par p[2];
	pthread_t th[2];
	for (int i = 0; i < 2; i++) {
		char n[8];
		snprintf(n, sizeof(n), "w%d", i);
		p[i] = (struct par){.s = s, .ino = t_mkfile(s, ROOT, n)};
		pthread_create(&th[i], NULL, par_fn, &p[i]);
	}
	for (int k = 0; k < 10; k++)
		t_commit(s, NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	t_commit(s, NULL);
	vfs_store_close(s);
	s = t_open();
	for (int i = 0; i < 2; i++) {
		uint8_t buf[10000], want[10000];
		for (int k = 0; k < 200; k += 13) {
			memset(want, (int)(p[i].ino + (uint64_t)k), sizeof(want));
			ck_assert_int_eq(
				vfs_store_read(s, p[i].ino, buf, sizeof(buf), (off_t)k * 10000),
				10000);
			ck_assert(memcmp(buf, want, sizeof(buf)) == 0);
		}
	}
	vfs_store_close(s);
}
END_TEST

static double now_s(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* Sequential 1 MiB writes vs the same through plain pwrite in the same directory. Prints the
 * ratio; asserts only a loose bound (shared CI disks are noisy). */
/* Writes past the early-writeback threshold (several kicks, spread and overlapping ranges,
 * across a commit) keep their content, live and after reopening. */
START_TEST(test_writeback_kick)
{
	const size_t mib = 1 << 20, n = 12;
	struct vfs_store *s = t_open();
	uint64_t f = t_mkfile(s, ROOT, "f");
	uint8_t *buf = malloc(mib), *want = calloc(n * 2, mib);
	for (size_t round = 0; round < 3; round++) {
		for (size_t i = 0; i < n; i++) {
			size_t at = ((i * 7 + round) % (n * 2)) * mib; /* spread, then overlapping */
			memset(buf, (int)(round * 31 + i + 1), mib);
			buf[round] = (uint8_t)i;
			t_write(s, f, buf, mib, (off_t)at);
			memcpy(want + at, buf, mib);
		}
		if (round == 1)
			t_commit(s, NULL);
	}
	struct vfs_attr a;
	ck_assert_int_eq(vfs_store_getattr(s, f, &a), 0);
	t_expect(s, f, want, a.size);
	t_commit(s, NULL);
	vfs_store_close(s);
	s = t_open();
	t_expect(s, f, want, a.size);
	vfs_store_close(s);
	free(buf);
	free(want);
}
END_TEST

START_TEST(test_seq_write_speed)
{
	const size_t mib = 1 << 20, total = 256;
	uint8_t *buf = malloc(mib);
	memset(buf, 0x5a, mib);
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/native", t_dir);
	double best_native = 1e9, best_store = 1e9;
	for (int round = 0; round < 4; round++) {
		if (round % 2 == 0) {
			int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
			double t0 = now_s();
			for (size_t i = 0; i < total; i++)
				ck_assert_int_eq(ck_pwrite_full(fd, buf, mib, (off_t)(i * mib)), 0);
			fdatasync(fd);
			best_native = CK_MIN(best_native, now_s() - t0);
			close(fd);
			unlink(path);
			continue;
		}
		struct vfs_store *s = t_open();
		char n[8];
		snprintf(n, sizeof(n), "f%d", round);
		uint64_t ino = t_mkfile(s, ROOT, n);
		double t0 = now_s();
		for (size_t i = 0; i < total; i++)
			t_write(s, ino, buf, mib, (off_t)(i * mib));
		t_commit(s, NULL); /* includes the fdatasync */
		best_store = CK_MIN(best_store, now_s() - t0);
		vfs_store_unlink(s, ROOT, n);
		t_commit(s, NULL);
		vfs_store_close(s);
		vfs_store_close(t_open()); /* GC: the layer goes */
	}
	printf("seq write 256 MiB: native %.3f s, store %.3f s, ratio %.2f\n", best_native,
	       best_store, best_native / best_store);
	ck_assert(best_store < best_native * 3 + 0.5);
	free(buf);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("vfs-store-data");
	TCase *tc = t_tcase("data");
	tcase_add_loop_test(tc, test_random_model, 0, 12);
	tcase_add_test(tc, test_truncate_then_extend);
	tcase_add_loop_test(tc, test_inline_model, 0, 8);
	tcase_add_test(tc, test_inline_no_layer_file);
	tcase_add_test(tc, test_sparse_lseek);
	tcase_add_test(tc, test_parallel_files);
	tcase_add_test(tc, test_commit_during_writes);
	tcase_add_test(tc, test_fd_cap);
	tcase_add_test(tc, test_fallocate_commit_reopen);
	tcase_add_test(tc, test_writeback_kick);
	tcase_add_test(tc, test_seq_write_speed);
	suite_add_tcase(su, tc);
	return ck_run_suite(su);
}
