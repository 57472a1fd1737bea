/* Shared memory mapped more than once in one process, zdtm style: zdtm-shmalias maps a memfd
 * three times (whole, at another offset, read-only), a shared anonymous region and its
 * mremap'd alias, and a /dev/shm file twice; it is dumped, killed and restored twice from the
 * image (at the old pid when root, then at another). Each copy checks from inside that the
 * contents are there through every view and that a write through one view is seen through the
 * others. The image is checked too: written as format version 2, and each object's bytes
 * stored once (nothing through the second view of an object); version 2 is written only for
 * images that have such mappings. */
#include "fixture.h"
#include "../check-main.h"

#include <sys/mman.h>


static char shm[96]; /* the helper's /dev/shm file, removed however the test ends */

static void teardown(void)
{
	if (shm[0])
		unlink(shm);
	fx_dir_teardown();
}

/* Bytes of the image's page runs that land in [lo, hi). */
static uint64_t stored_in(const struct restore_image *img, uint64_t lo, uint64_t hi)
{
	uint64_t n = 0;
	for (size_t i = 0; i < img->nruns; i++) {
		uint64_t a = img->runs[i].addr,
			 b = a + (uint64_t)img->runs[i].npages * RESTORE_PAGE_SIZE;
		if (b > lo && a < hi)
			n += CK_MIN(b, hi) - CK_MAX(a, lo);
	}
	return n;
}

/* The format version in checkpoint @id's core.img and pages.img headers (they must agree). */
static uint32_t core_version(const char *id)
{
	uint8_t h[12], ph[12];
	char path[64];
	snprintf(path, sizeof(path), "%s/pages.img", id);
	int fd = openat(fx_dirfd, path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, ph, sizeof(ph)), (ssize_t)sizeof(ph));
	close(fd);
	snprintf(path, sizeof(path), "%s/core.img", id);
	fd = openat(fx_dirfd, path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, h, sizeof(h)), (ssize_t)sizeof(h));
	close(fd);
	ck_assert_uint_eq(ck_get_le32(h + 8), ck_get_le32(ph + 8));
	return ck_get_le32(h + 8);
}

START_TEST(test_shmem_aliases)
{
	char line[256];
	snprintf(shm, sizeof(shm), "/dev/shm/ckptenv-test-shmalias-%d", (int)getpid());
	pid_t pid = fx_self_start("zdtm-shmalias", shm, line, sizeof(line), NULL);
	unsigned long long a, b, c, s, s2;
	ck_assert_msg(sscanf(line, "ready %llx %llx %llx %llx %llx", &a, &b, &c, &s, &s2) == 5,
		      "helper said: %s", line);
	fx_self_dump(pid, fx_dirfd, "1");

	struct restore_image *img = NULL;
	struct restore_err err = {0};
	ck_assert_int_eq(restore_image_load(fx_dirfd, "1", &img, &err), 0);
	ck_assert_uint_ge(core_version("1"), 2); /* 3: the dump also read nice and affinity */
	const uint64_t pg = RESTORE_PAGE_SIZE;
	/* Each page of an object is stored once, through whichever view covers it first. */
	ck_assert_uint_eq(stored_in(img, a, a + 4 * pg) + stored_in(img, b, b + 2 * pg) +
				  stored_in(img, c, c + 2 * pg),
			  4 * pg);
	ck_assert_uint_eq(stored_in(img, s, s + 3 * pg) + stored_in(img, s2, s2 + 3 * pg),
			  2 * pg); /* page 1 is zero: not stored */
	restore_image_free(img);

	fx_self_restore(fx_dirfd, "1", geteuid() == 0 ? pid : 0, "zdtm-shmalias\n");
	fx_self_restore(fx_dirfd, "1", 0, "zdtm-shmalias\n");
}
END_TEST

/* Version 2 only for an image with two shared mappings of one shmem object; others stay 1
 * (readable by older builds). Both load here. */
START_TEST(test_version)
{
	struct restore_thread th = {.tid = 42};
	struct restore_vma v[2];
	for (int i = 0; i < 2; i++)
		v[i] = (struct restore_vma){.start = 0x10000 + 0x10000 * (uint64_t)i,
					    .end = 0x11000 + 0x10000 * (uint64_t)i,
					    .prot = PROT_READ,
					    .flags = RESTORE_VMA_F_SHARED,
					    .kind = RESTORE_VMA_ANON_SHARED,
					    .min = 1,
					    .inode = 7,
					    .path = "/dev/zero (deleted)",
					    .vmflags = ""};
	struct restore_image m = {
		.pages_fd = -1, .threads = &th, .nthreads = 1, .vmas = v, .nvmas = 2};
	m.proc.pid = 42;
	strcpy(m.proc.comm, "synthetic");
	m.proc.exe = "/bin/true";
	m.proc.cwd = "/";
	m.proc.timers = "";
	const struct {
		const char *id;
		uint64_t inode;
		uint32_t flags;
		uint32_t want;
	} cases[] = {
		{"1", 7, RESTORE_VMA_F_SHARED, 2}, /* one object, two views */
		{"2", 8, RESTORE_VMA_F_SHARED, 1}, /* two objects */
		{"3", 7, 0, 1},			   /* a private view of it */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		v[1].inode = cases[i].inode;
		v[1].flags = cases[i].flags;
		struct restore_image_writer *w = NULL;
		ck_assert_int_eq(restore_image_writer_new(fx_dirfd, cases[i].id, &w), 0);
		ck_assert_int_eq(restore_image_writer_commit(w, &m), 0);
		restore_image_writer_free(w);
		ck_assert_uint_eq(core_version(cases[i].id), cases[i].want);
		struct restore_image *img = NULL;
		struct restore_err err = {0};
		ck_assert_msg(restore_image_load(fx_dirfd, cases[i].id, &img, &err) == 0, "%s",
			      err.msg);
		restore_image_free(img);
	}
	/* Version 3: the scheduling and prctl attributes, read back as written. */
	m.proc.flags = RESTORE_PROC_F_SCHED | RESTORE_PROC_F_PDEATH;
	m.proc.nice = -3;
	m.proc.pdeathsig = 10;
	m.proc.cpus_len = 2;
	m.proc.cpus[0] = 0x5;
	m.proc.cpus[1] = 0x80;
	struct restore_image_writer *w = NULL;
	ck_assert_int_eq(restore_image_writer_new(fx_dirfd, "4", &w), 0);
	ck_assert_int_eq(restore_image_writer_commit(w, &m), 0);
	restore_image_writer_free(w);
	ck_assert_uint_eq(core_version("4"), 3);
	struct restore_image *img = NULL;
	struct restore_err err = {0};
	ck_assert_msg(restore_image_load(fx_dirfd, "4", &img, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(img->proc.flags & (RESTORE_PROC_F_SCHED | RESTORE_PROC_F_PDEATH),
			  RESTORE_PROC_F_SCHED | RESTORE_PROC_F_PDEATH);
	ck_assert_int_eq(img->proc.nice, -3);
	ck_assert_uint_eq(img->proc.pdeathsig, 10);
	ck_assert_uint_eq(img->proc.cpus_len, 2);
	ck_assert(img->proc.cpus[0] == 0x5 && img->proc.cpus[1] == 0x80);
	restore_image_free(img);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("restore-shmem");
	TCase *tc = tcase_create("shmem");
	tcase_add_checked_fixture(tc, fx_dir_setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_version);
	tcase_add_test(tc, test_shmem_aliases);
	suite_add_tcase(s, tc);
	return ck_run_suite(s);
}
