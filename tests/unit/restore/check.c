/* restore_image_check() on synthetic images: what a machine that cannot run the image looks
 * like (xsave features this CPU lacks, another vDSO size), and the identity of the files the
 * process had open or mapped (changed, replaced, gone, --allow-changed, unknown allow path, the
 * job's vfs compared without mtime). No ptrace. */
#include "../check-main.h"
#include "fixture.h"
#include "restore/restore-internal.h"

#include <cpuid.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>

static char file[PATH_MAX + 8]; /* a "library" the synthetic images map */

static void setup(void)
{
	fx_dir_setup();
	snprintf(file, sizeof(file), "%s/lib", fx_dir);
	ck_assert_int_eq(ck_write_file_atomic(AT_FDCWD, file, "library", 7, 0644), 0);
}

static struct restore_ident ident_of(const char *path)
{
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	return (struct restore_ident){.dev = st.st_dev,
				      .ino = st.st_ino,
				      .size = (uint64_t)st.st_size,
				      .mtime_sec = st.st_mtim.tv_sec,
				      .mtime_nsec = (uint32_t)st.st_mtim.tv_nsec,
				      .mode = st.st_mode};
}

/* Our own [vvar]/[vvar_vclock]/[vdso] (so a same-kernel image matches), plus @file mapped
 * private, as the image's mappings. Returns the count. */
static size_t our_vmas(struct restore_vma *vm, size_t max)
{
	FILE *f = fopen("/proc/self/maps", "re");
	ck_assert_ptr_nonnull(f);
	char line[512];
	size_t n = 0;
	while (fgets(line, sizeof(line), f) && n + 1 < max) {
		unsigned long long lo, hi;
		char name[64] = "";
		if (sscanf(line, "%llx-%llx %*s %*s %*s %*s %63s", &lo, &hi, name) < 2)
			continue;
		uint32_t kind = !strcmp(name, "[vvar]")		 ? RESTORE_VMA_VVAR
				: !strcmp(name, "[vvar_vclock]") ? RESTORE_VMA_VVAR_VCLOCK
				: !strcmp(name, "[vdso]")	 ? RESTORE_VMA_VDSO
								 : 0;
		if (!kind)
			continue;
		vm[n++] = (struct restore_vma){
			.start = lo, .end = hi, .kind = kind, .path = strdup(name), .vmflags = ""};
	}
	fclose(f);
	vm[n++] = (struct restore_vma){.start = 0x10000000,
				       .end = 0x10000000 + 4096,
				       .prot = PROT_READ,
				       .kind = RESTORE_VMA_FILE_PRIVATE,
				       .flags = RESTORE_VMA_F_HAS_IDENT,
				       .ident = ident_of(file),
				       .path = file,
				       .vmflags = "rd"};
	/* the image's mappings are sorted */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && vm[j].start < vm[j - 1].start; j--) {
			struct restore_vma t = vm[j];
			vm[j] = vm[j - 1];
			vm[j - 1] = t;
		}
	return n;
}

/* Write image @id: @xcr0_extra bits added to this CPU's, vDSO size off by @vdso_delta pages,
 * @vfs: the file is marked as one of the job's vfs. */
static void write_image(const char *id, uint64_t xcr0_extra, uint64_t vdso_delta, bool vfs)
{
	static struct restore_thread th;
	static struct restore_vma vm[8];
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	unsigned a, b, c, d;
	__cpuid_count(0xd, 0, a, b, c, d);
	struct restore_image m = {.pages_fd = -1};
	m.proc.pid = 42;
	m.proc.exe = file;
	m.proc.exe_ident = ident_of(file);
	m.proc.cwd = "/";
	m.proc.timers = "";
	m.proc.xcr0 = (((uint64_t)hi << 32) | lo) | xcr0_extra;
	m.proc.xsave_size = b;
	th = (struct restore_thread){.tid = 42, .xcr0 = m.proc.xcr0};
	size_t n = our_vmas(vm, CK_ARRAY_SIZE(vm));
	for (size_t i = 0; i < n; i++) {
		if (vm[i].kind == RESTORE_VMA_VDSO)
			vm[i].end += vdso_delta;
		if (vfs && vm[i].kind == RESTORE_VMA_FILE_PRIVATE)
			vm[i].ident.flags |= RESTORE_IDENT_F_JOB_VFS;
	}
	if (vfs)
		m.proc.exe_ident.flags |= RESTORE_IDENT_F_JOB_VFS;
	m.threads = &th;
	m.nthreads = 1;
	m.vmas = vm;
	m.nvmas = n;
	struct restore_image_writer *w = NULL;
	ck_assert_int_eq(restore_image_writer_new(fx_dirfd, id, &w), 0);
	ck_assert_int_eq(restore_image_writer_commit(w, &m), 0);
	restore_image_writer_free(w);
	for (size_t i = 0; i < n; i++)
		if (vm[i].path != file)
			free(vm[i].path);
}

static int check(const char *id, const char *const *allow, size_t nallow, struct restore_err *e)
{
	memset(e, 0, sizeof(*e));
	struct restore_process_opts o = {.allow_paths = allow, .nallow_paths = nallow};
	return restore_image_check(fx_dirfd, id, &o, e);
}

START_TEST(test_same_machine)
{
	struct restore_err e;
	write_image("1", 0, 0, false);
	ck_assert_msg(check("1", NULL, 0, &e) == 0, "%s", e.msg);
}
END_TEST

START_TEST(test_cpu_lacks_features)
{
	struct restore_err e;
	write_image("1", 1ull << 62, 0, false); /* no CPU has this xsave component */
	ck_assert_int_eq(check("1", NULL, 0, &e), -ENOEXEC);
	ck_assert_msg(strstr(e.msg, "xsave features") && strstr(e.msg, "this CPU lacks"), "%s",
		      e.msg);
}
END_TEST

START_TEST(test_other_kernel_vdso)
{
	struct restore_err e;
	write_image("1", 0, 4096, false);
	ck_assert_int_eq(check("1", NULL, 0, &e), -ENOEXEC);
	ck_assert_msg(strstr(e.msg, "[vdso] of the image") && strstr(e.msg, "another kernel"), "%s",
		      e.msg);
}
END_TEST

START_TEST(test_file_changed)
{
	struct restore_err e;
	write_image("1", 0, 0, false);
	struct stat st;
	ck_assert_int_eq(stat(file, &st), 0);
	struct timespec ts[2] = {st.st_atim, {st.st_mtim.tv_sec + 1, st.st_mtim.tv_nsec}};
	ck_assert_int_eq(utimensat(AT_FDCWD, file, ts, 0), 0);
	ck_assert_int_eq(check("1", NULL, 0, &e), -ESTALE);
	ck_assert_msg(strstr(e.msg, file) && strstr(e.msg, "changed since the checkpoint") &&
			      strstr(e.msg, "--allow-changed"),
		      "%s", e.msg);
	ck_assert_ptr_null(strchr(e.msg, '\n'));
	const char *allow[] = {file};
	ck_assert_msg(check("1", allow, 1, &e) == 0, "%s", e.msg);
	const char *unknown[] = {file, "/nonexistent/x"};
	ck_assert_int_eq(check("1", unknown, 2, &e), -ENOENT);
	ck_assert_msg(strstr(e.msg, "/nonexistent/x: not a file"), "%s", e.msg);
}
END_TEST

START_TEST(test_file_replaced_or_gone)
{
	struct restore_err e;
	write_image("1", 0, 0, false);
	char other[PATH_MAX + 16];
	snprintf(other, sizeof(other), "%s.new", file);
	ck_assert_int_eq(ck_write_file_atomic(AT_FDCWD, other, "library", 7, 0644), 0);
	ck_assert_int_eq(rename(other, file), 0); /* as a package upgrade does */
	ck_assert_int_eq(check("1", NULL, 0, &e), -ESTALE);
	ck_assert_msg(strstr(e.msg, "was replaced"), "%s", e.msg);
	ck_assert_int_eq(unlink(file), 0);
	ck_assert_int_eq(check("1", NULL, 0, &e), -ESTALE);
	ck_assert_msg(strstr(e.msg, "is gone"), "%s", e.msg);
	/* The same inode number on another device: the message says which devices (it said
	 * "inode 332383, was 332383"). */
	struct stat now = {.st_dev = makedev(8, 1), .st_ino = 42};
	struct restore_ident was = {.dev = makedev(8, 2), .ino = 42};
	char msg[256];
	ck_assert_int_eq(rst_ident_cmp(&now, &was), RST_IDENT_OTHER);
	rst_ident_describe(msg, sizeof(msg), "/lib/x.so", RST_IDENT_OTHER, &now, &was);
	ck_assert_msg(strstr(msg, "(device 8:1, was 8:2)"), "%s", msg);
}
END_TEST

START_TEST(test_job_vfs_not_checked)
{
	/* The job's /tmp comes back from the checkpoint's epoch: not the CLI's business. */
	struct restore_err e;
	write_image("1", 0, 0, true);
	ck_assert_int_eq(unlink(file), 0);
	ck_assert_msg(check("1", NULL, 0, &e) == 0, "%s", e.msg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("restore-check");
	TCase *tc = tcase_create("check");
	tcase_add_checked_fixture(tc, setup, fx_dir_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_same_machine);
	tcase_add_test(tc, test_cpu_lacks_features);
	tcase_add_test(tc, test_other_kernel_vdso);
	tcase_add_test(tc, test_file_changed);
	tcase_add_test(tc, test_file_replaced_or_gone);
	tcase_add_test(tc, test_job_vfs_not_checked);
	suite_add_tcase(s, tc);
	return ck_run_suite(s);
}
