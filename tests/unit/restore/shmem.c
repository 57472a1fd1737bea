/* Shared memory mapped more than once in one process, zdtm style: zdtm-shmalias maps a memfd
 * three times (whole, at another offset, read-only), a shared anonymous region and its
 * mremap'd alias, and a /dev/shm file twice; it is dumped, killed and restored twice from the
 * image (at the old pid when root, then at another). Each copy checks from inside that the
 * contents are there through every view and that a write through one view is seen through the
 * others. The image is checked too: written as format version 2, and each object's bytes
 * stored once (nothing through the second view of an object). */
#include "fixture.h"

#define dirfd_ (fx_dir()->fd)

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

static uint32_t core_version(void)
{
	uint8_t h[12];
	int fd = openat(dirfd_, "1/core.img", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, h, sizeof(h)), (ssize_t)sizeof(h));
	close(fd);
	return ck_get_le32(h + 8);
}

START_TEST(test_shmem_aliases)
{
	char shm[96], line[256];
	snprintf(shm, sizeof(shm), "/dev/shm/ckptenv-test-shmalias-%d", (int)getpid());
	pid_t pid = fx_self_start("zdtm-shmalias", shm, line, sizeof(line), NULL);
	unsigned long long a, b, c, s, s2;
	ck_assert_msg(sscanf(line, "ready %llx %llx %llx %llx %llx", &a, &b, &c, &s, &s2) == 5,
		      "helper said: %s", line);
	fx_self_dump(pid, dirfd_, "1");

	struct restore_image *img = NULL;
	struct restore_err err = {0};
	ck_assert_int_eq(restore_image_load(dirfd_, "1", &img, &err), 0);
	ck_assert_uint_eq(core_version(), 2);
	const uint64_t pg = RESTORE_PAGE_SIZE;
	/* Each page of an object is stored once, through whichever view covers it first. */
	ck_assert_uint_eq(stored_in(img, a, a + 4 * pg) + stored_in(img, b, b + 2 * pg) +
				  stored_in(img, c, c + 2 * pg),
			  4 * pg);
	ck_assert_uint_eq(stored_in(img, s, s + 3 * pg) + stored_in(img, s2, s2 + 3 * pg),
			  2 * pg); /* page 1 is zero: not stored */
	restore_image_free(img);

	fx_self_restore(dirfd_, "1", geteuid() == 0 ? pid : 0, "zdtm-shmalias\n");
	fx_self_restore(dirfd_, "1", 0, "zdtm-shmalias\n");
	unlink(shm);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("restore-shmem");
	TCase *tc = tcase_create("shmem");
	tcase_add_checked_fixture(tc, fx_dir_setup, fx_dir_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_shmem_aliases);
	suite_add_tcase(s, tc);
	return fx_run(s);
}
