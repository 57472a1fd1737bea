/* Image writer and reader on a synthetic model: round trip, zero pages dropped, run coalescing,
 * atomic visibility, version and truncation refusals, and the corruption fuzz. No ptrace. */
#include "../check-main.h"
#include "fuzz.h"

#include <sys/mman.h>

#define PG RESTORE_PAGE_SIZE


static void fill_model(struct restore_image *m)
{
	static struct restore_thread th;
	static struct restore_vma vm[2];
	static struct restore_fd fd;
	static uint8_t xsave[1024];
	memset(m, 0, sizeof(*m));
	m->pages_fd = -1;
	m->proc.pid = 42;
	strcpy(m->proc.comm, "synthetic");
	m->proc.exe = "/bin/true";
	m->proc.cwd = "/";
	m->proc.timers = "";
	m->proc.sigact[9].handler = 0x401000;
	th = (struct restore_thread){.tid = 42, .xsave = xsave, .xsave_len = sizeof(xsave)};
	th.regs.rip = 0x401234;
	th.regs.r12 = 0xabcdef;
	memset(xsave, 0x5a, sizeof(xsave));
	vm[0] = (struct restore_vma){.start = 0x10000000,
				     .end = 0x10000000 + 64 * PG,
				     .prot = PROT_READ | PROT_WRITE,
				     .kind = RESTORE_VMA_ANON_PRIVATE,
				     .path = "",
				     .vmflags = "rd wr"};
	vm[1] = (struct restore_vma){.start = 0x10000000 + 64 * PG,
				     .end = 0x10000000 + 96 * PG,
				     .prot = PROT_READ,
				     .kind = RESTORE_VMA_FILE_PRIVATE,
				     .path = "/lib/x",
				     .vmflags = "rd"};
	static uint8_t data[] = "abcdef";
	static uint32_t msgs[] = {2, 4};
	static struct restore_epoll_tfd tfds[] = {{3, 0x80000001u, 0x1234}, {4, 1, 7}};
	static struct restore_inotify_watch ws[] = {{1, 0x100, 10, 20, 1, "/tmp/a"},
						    {3, 0x200, 11, 20, 0, "/b"}};
	fd = (struct restore_fd){.fd = 3,
				 .kind = RESTORE_FD_PIPE,
				 .target = "pipe:[1]",
				 .fdinfo = "pos:\t0\nflags:\t02000000\n"};
	/* every field of the FDSTATE record set, so the fuzz below damages all of them */
	fd.st = (struct restore_fd_state){.present = true,
					  .flags = RESTORE_FDS_F_FDFLAGS | RESTORE_FDS_F_DATA,
					  .dup_of = -1,
					  .value = 65536,
					  .peer_ino = 99,
					  .clockid = 1,
					  .tflags = 1,
					  .it_value_ns = 5,
					  .it_interval_ns = 6,
					  .ticks = 7,
					  .abs_ns = 8,
					  .family = 1,
					  .type = 2,
					  .sock_state = RESTORE_SOCK_LISTEN,
					  .addr_len = 9,
					  .addr = "\1\0/tmp/s",
					  .peer_len = 10,
					  .peer = "\1\0/dev/log",
					  .nopts = 1,
					  .opts = {{1, 2, 3}},
					  .data = data,
					  .data_len = 6,
					  .nmsgs = 2,
					  .msg_len = msgs,
					  .ntfds = 2,
					  .tfds = tfds,
					  .nwatches = 2,
					  .watches = ws};
	m->threads = &th;
	m->nthreads = 1;
	m->vmas = vm;
	m->nvmas = 2;
	m->fds = &fd;
	m->nfds = 1;
}

static uint8_t page_byte(unsigned p)
{
	return (uint8_t)(p % 250 + 1);
}

/* 96 pages: every third one zero; written in two calls so runs meet at the seam. @mut, if
 * given, changes the model before it is committed. */
static void write_image_m(const char *id, void (*mut)(struct restore_image *))
{
	struct restore_image_writer *w = NULL;
	ck_assert_int_eq(restore_image_writer_new(fx_dirfd, id, &w), 0);
	uint8_t *buf = calloc(96, PG);
	for (unsigned p = 0; p < 96; p++)
		if (p % 3)
			memset(buf + p * PG, page_byte(p), PG);
	ck_assert_int_eq(restore_image_writer_add_pages(w, 0x10000000, buf, 50 * PG), 0);
	ck_assert_int_eq(
		restore_image_writer_add_pages(w, 0x10000000 + 50 * PG, buf + 50 * PG, 46 * PG), 0);
	ck_assert_int_eq(restore_image_writer_add_pages(w, 0x10000000, buf, PG), -EINVAL);
	ck_assert_uint_eq(restore_image_writer_bytes(w), 64 * PG);
	struct restore_image m;
	fill_model(&m);
	if (mut)
		mut(&m);
	ck_assert_int_eq(restore_image_writer_commit(w, &m), 0);
	restore_image_writer_free(w);
	free(buf);
}

static void write_image(const char *id)
{
	write_image_m(id, NULL);
}

START_TEST(test_roundtrip)
{
	write_image("1");
	char latest[64];
	ck_assert_int_eq(restore_image_latest(fx_dirfd, latest, sizeof(latest)), 0);
	ck_assert_str_eq(latest, "1");
	struct restore_err err = {0};
	ck_assert_msg(restore_image_verify(fx_dirfd, "1", &err) == 0, "%s", err.msg);
	struct restore_image *img = NULL;
	ck_assert_int_eq(restore_image_load(fx_dirfd, "1", &img, &err), 0);
	ck_assert_int_eq(img->proc.pid, 42);
	ck_assert_str_eq(img->proc.comm, "synthetic");
	ck_assert_str_eq(img->proc.exe, "/bin/true");
	ck_assert_uint_eq(img->proc.sigact[9].handler, 0x401000);
	ck_assert_uint_eq(img->nthreads, 1);
	ck_assert_uint_eq(img->threads[0].regs.rip, 0x401234);
	ck_assert_uint_eq(img->threads[0].regs.r12, 0xabcdef);
	ck_assert_uint_eq(img->threads[0].xsave_len, 1024);
	ck_assert_uint_eq(img->threads[0].xsave[1023], 0x5a);
	ck_assert_uint_eq(img->nvmas, 2);
	ck_assert_str_eq(img->vmas[1].path, "/lib/x");
	ck_assert_uint_eq(img->nfds, 1);
	ck_assert_str_eq(img->fds[0].target, "pipe:[1]");
	const struct restore_fd_state *st = &img->fds[0].st;
	ck_assert(st->present);
	ck_assert_int_eq(st->dup_of, -1);
	ck_assert_uint_eq(st->value, 65536);
	ck_assert_uint_eq(st->ticks, 7);
	ck_assert_int_eq(st->abs_ns, 8);
	ck_assert_uint_eq(st->addr_len, 9);
	ck_assert_mem_eq(st->addr, "\1\0/tmp/s", 9);
	ck_assert_uint_eq(st->peer_len, 10);
	ck_assert_mem_eq(st->peer, "\1\0/dev/log", 10);
	ck_assert_uint_eq(st->nopts, 1);
	ck_assert_int_eq(st->opts[0].value, 3);
	ck_assert_uint_eq(st->data_len, 6);
	ck_assert_mem_eq(st->data, "abcdef", 6);
	ck_assert_uint_eq(st->nmsgs, 2);
	ck_assert_uint_eq(st->msg_len[1], 4);
	ck_assert_uint_eq(st->ntfds, 2);
	ck_assert_uint_eq(st->tfds[0].events, 0x80000001u);
	ck_assert_uint_eq(st->tfds[0].data, 0x1234);
	ck_assert_uint_eq(st->nwatches, 2);
	ck_assert_int_eq(st->watches[1].wd, 3);
	ck_assert_str_eq(st->watches[0].path, "/tmp/a");
	ck_assert_uint_eq(st->watches[0].flags, 1);
	/* 64 non-zero pages in runs of 2 (zero every third page): 32 runs, plus one because
	 * runs never span two add_pages calls (the seam at page 50 splits 49-50). */
	ck_assert_uint_eq(img->nruns, 33);
	ck_assert_uint_eq(img->pages_size, PG + 64 * PG);
	uint8_t page[PG];
	for (unsigned p = 0; p < 96; p++) {
		int r = restore_image_read_page(img, 0x10000000 + p * PG, page);
		if (p % 3 == 0) {
			ck_assert_int_eq(r, 0);
			continue;
		}
		ck_assert_int_eq(r, 1);
		ck_assert_uint_eq(page[0], page_byte(p));
		ck_assert_uint_eq(page[PG - 1], page_byte(p));
	}
	restore_image_free(img);
}
END_TEST

START_TEST(test_coalesce)
{
	struct restore_image_writer *w = NULL;
	ck_assert_int_eq(restore_image_writer_new(fx_dirfd, "big", &w), 0);
	size_t n = 3000; /* several chunks */
	uint8_t *buf = malloc(n * PG);
	memset(buf, 0xee, n * PG);
	ck_assert_int_eq(restore_image_writer_add_pages(w, 0x20000000, buf, n * PG), 0);
	struct restore_image m;
	fill_model(&m);
	struct restore_vma v = {.start = 0x20000000,
				.end = 0x20000000 + n * PG,
				.prot = PROT_READ | PROT_WRITE,
				.kind = RESTORE_VMA_ANON_PRIVATE,
				.path = "",
				.vmflags = ""};
	m.vmas = &v;
	m.nvmas = 1;
	ck_assert_int_eq(restore_image_writer_commit(w, &m), 0);
	restore_image_writer_free(w);
	free(buf);
	struct restore_image *img = NULL;
	ck_assert_int_eq(restore_image_load(fx_dirfd, "big", &img, NULL), 0);
	/* Runs are cut at the writer's 1 MiB chunks: 11 of 256 pages and one of 184. */
	ck_assert_uint_eq(img->nruns, 12);
	ck_assert_uint_eq(img->runs[0].npages, 256);
	ck_assert_uint_eq(img->runs[11].npages, 3000 - 11 * 256);
	ck_assert_uint_eq(img->runs[1].file_off, PG + 256ull * PG);
	restore_image_free(img);
}
END_TEST

START_TEST(test_atomic_visibility)
{
	write_image("1");
	struct restore_image_writer *w = NULL;
	ck_assert_int_eq(restore_image_writer_new(fx_dirfd, "1", &w), -EEXIST);
	/* An aborted checkpoint leaves nothing visible and LATEST untouched. */
	ck_assert_int_eq(restore_image_writer_new(fx_dirfd, "2", &w), 0);
	uint8_t page[PG];
	memset(page, 1, PG);
	ck_assert_int_eq(restore_image_writer_add_pages(w, 0x10000000, page, PG), 0);
	struct stat st;
	ck_assert_int_eq(fstatat(fx_dirfd, ".2.tmp", &st, 0), 0);
	ck_assert_int_ne(fstatat(fx_dirfd, "2", &st, 0), 0);
	restore_image_writer_free(w);
	ck_assert_int_ne(fstatat(fx_dirfd, ".2.tmp", &st, 0), 0);
	char latest[64];
	ck_assert_int_eq(restore_image_latest(fx_dirfd, latest, sizeof(latest)), 0);
	ck_assert_str_eq(latest, "1");
	/* A stale temporary directory of a crashed writer is replaced. */
	ck_assert_int_eq(mkdirat(fx_dirfd, ".3.tmp", 0700), 0);
	write_image("3");
	ck_assert_int_eq(restore_image_latest(fx_dirfd, latest, sizeof(latest)), 0);
	ck_assert_str_eq(latest, "3");
	struct restore_err err = {0};
	ck_assert_int_eq(restore_image_load(fx_dirfd, "nope", NULL, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.msg, "nope/core.img"));
}
END_TEST

static void set_undumpable(struct restore_image *m)
{
	m->proc.flags |= RESTORE_PROC_F_UNDUMPABLE;
}

/* An undumpable process's image is version 4, which builds that would restore it dumpable
 * refuse; any other stays at the version older builds read. */
START_TEST(test_undumpable_version)
{
	for (int undumpable = 0; undumpable < 2; undumpable++) {
		char id[8];
		snprintf(id, sizeof(id), "%d", undumpable + 1);
		write_image_m(id, undumpable ? set_undumpable : NULL);
		char path[32];
		snprintf(path, sizeof(path), "%s/core.img", id);
		int fd = openat(fx_dirfd, path, O_RDONLY | O_CLOEXEC);
		ck_assert_int_ge(fd, 0);
		uint8_t h[12];
		ck_assert_int_eq(pread(fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
		close(fd);
		ck_assert_uint_eq(ck_get_le32(h + 8), undumpable ? 4 : 1);
		struct restore_err err = {0};
		struct restore_image *img = NULL;
		ck_assert_msg(restore_image_load(fx_dirfd, id, &img, &err) == 0, "%s", err.msg);
		ck_assert_uint_eq(!!(img->proc.flags & RESTORE_PROC_F_UNDUMPABLE), undumpable);
		restore_image_free(img);
	}
}
END_TEST

/* Rewrite core.img's version and its header checksum, as a newer ckptenv would. */
START_TEST(test_future_version)
{
	write_image("1");
	int fd = openat(fx_dirfd, "1/core.img", O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	uint8_t h[40];
	ck_assert_int_eq(pread(fd, h, 40, 0), 40);
	ck_put_le32(h + 8, RESTORE_IMAGE_VERSION + 1);
	ck_put_le64(h + 32, ck_checksum(h, 32));
	ck_assert_int_eq(pwrite(fd, h, 40, 0), 40);
	close(fd);
	struct restore_err err = {0};
	ck_assert_int_eq(restore_image_verify(fx_dirfd, "1", &err), -EPROTONOSUPPORT);
	ck_assert_ptr_nonnull(strstr(err.msg, "1/core.img"));
	ck_assert_ptr_nonnull(strstr(err.msg, "version"));
}
END_TEST

/* FDSTATE records that parse but say something impossible are refused like any corruption
 * (the writer does not check: it writes what the dumper gives it). */
static void bad_dup(struct restore_image *m)
{
	m->fds[0].st.dup_of = m->fds[0].fd;
}
static void bad_msgs(struct restore_image *m)
{
	m->fds[0].st.msg_len[0] = 3; /* 3 + 4 != 6 bytes */
}
static void bad_wd_order(struct restore_image *m)
{
	m->fds[0].st.watches[1].wd = 1;
}
static void bad_family(struct restore_image *m)
{
	m->fds[0].st.family = 16; /* AF_NETLINK */
}
static void bad_path(struct restore_image *m)
{
	m->fds[0].st.watches[0].path = "relative";
}
static void (*const bad_fdstate[])(struct restore_image *) = {bad_dup, bad_msgs, bad_wd_order,
							      bad_family, bad_path};

START_TEST(test_fdstate_refused)
{
	/* the model lives in static storage: each Check test runs in its own process */
	write_image_m("1", bad_fdstate[_i]);
	struct restore_image *img = NULL;
	struct restore_err err = {0};
	ck_assert_int_eq(restore_image_load(fx_dirfd, "1", &img, &err), -EBADMSG);
	ck_assert_msg(strstr(err.msg, "1/core.img is corrupt (section 16"), "%s", err.msg);
	ck_assert(!strchr(err.msg, '\n'));
}
END_TEST

START_TEST(test_truncated_message)
{
	write_image("1");
	int fd = openat(fx_dirfd, "1/pages.img", O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 10 * PG), 0);
	close(fd);
	struct restore_err err = {0};
	ck_assert_int_eq(restore_image_load(fx_dirfd, "1", NULL, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.msg, "1/pages.img is truncated"));
}
END_TEST

START_TEST(test_fuzz)
{
	write_image("good");
	fz_run(fx_dirfd, "good", 200, 0x1234567);
	fz_structural(fx_dirfd, "good", 400, 0x7654321);
}
END_TEST

START_TEST(test_latest_malformed)
{
	char buf[64];
	ck_assert_int_eq(restore_image_latest(fx_dirfd, buf, sizeof(buf)), -ENOENT);
	ck_assert_int_eq(ck_write_file_atomic(fx_dirfd, "LATEST", "../x\n", 5, 0600), 0);
	ck_assert_int_eq(restore_image_latest(fx_dirfd, buf, sizeof(buf)), -EBADMSG);
	ck_assert_int_eq(ck_write_file_atomic(fx_dirfd, "LATEST", "7", 1, 0600), 0);
	ck_assert_int_eq(restore_image_latest(fx_dirfd, buf, sizeof(buf)), -EBADMSG);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("restore-image");
	TCase *tc = tcase_create("image");
	tcase_add_checked_fixture(tc, fx_dir_setup, fx_dir_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_coalesce);
	tcase_add_test(tc, test_atomic_visibility);
	tcase_add_test(tc, test_future_version);
	tcase_add_test(tc, test_undumpable_version);
	tcase_add_test(tc, test_truncated_message);
	tcase_add_loop_test(tc, test_fdstate_refused, 0, (int)CK_ARRAY_SIZE(bad_fdstate));
	tcase_add_test(tc, test_fuzz);
	tcase_add_test(tc, test_latest_malformed);
	suite_add_tcase(s, tc);
	return ck_run_suite(s);
}
