/* restore_process() end to end, zdtm style: the zdtm-counter helper (dynamic and static) counts
 * in a register-heavy loop and reports its progress on an inherited pipe; it is frozen, dumped
 * and killed, then rebuilt in a fresh child of ours with a new pipe handed over at the old fd
 * number. The restored helper must continue with exactly the next block (its registers, xmm..zmm
 * and k registers are checked after every block), keep its vDSO at the old address, and on
 * SIGUSR1 verify its own memory, signal state, rseq, brk, cwd, umask, rlimit and MXCSR and exit 0.
 * Also: the same image restored twice, a helper frozen inside read() (syscall restart), and the
 * refusal of a changed file. Several threads: threads.c. */
#include "../check-main.h"
#include "fixture.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define PFD 10 /* progress pipe in the helper */
#define CFD 11 /* command pipe in the helper ("block" mode) */


struct ctr {
	pid_t pid;
	int prog;		 /* read end of the progress pipe */
	int cmd;		 /* write end of the command pipe, or -1 */
	unsigned long long last; /* last block reported */
};

/* One line from @fd (byte by byte), 10 s deadline per byte; "" at end of file. */
static void read_line(int fd, char *buf, size_t len)
{
	struct zdtm z = {.report = fd};
	fx_line(&z, buf, len);
}

static void start_counter(struct ctr *h, const char *name, bool block)
{
	int pp[2], cp[2] = {-1, -1};
	ck_assert_int_eq(pipe2(pp, O_CLOEXEC), 0);
	if (block)
		ck_assert_int_eq(pipe2(cp, O_CLOEXEC), 0);
	char exe[PATH_MAX];
	snprintf(exe, sizeof(exe), "%s/%s", fx_helpers(), name);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Only stdio and the pipes at fixed numbers: the image must hold nothing else. */
		dup2(pp[1], PFD);
		if (block)
			dup2(cp[0], CFD);
		close_range(3, PFD - 1, 0);
		close_range(block ? CFD + 1 : PFD + 1, ~0u, 0);
		execl(exe, name, "10", fx_dir, block ? "block" : NULL, "11", (char *)NULL);
		_exit(127);
	}
	close(pp[1]);
	if (block)
		close(cp[0]);
	*h = (struct ctr){.pid = pid, .prog = pp[0], .cmd = cp[1]};
}

/* Read progress until block @n (or "blocked" when @n is 0); returns the last block seen. */
static unsigned long long wait_block(struct ctr *h, unsigned long long n)
{
	char line[128];
	unsigned long long last = 0;
	for (;;) {
		read_line(h->prog, line, sizeof(line));
		ck_assert_msg(line[0], "helper ended early");
		ck_assert_msg(strncmp(line, "fail", 4) != 0, "helper: %s", line);
		if (n == 0 && strcmp(line, "blocked\n") == 0)
			return last;
		ck_assert_int_eq(sscanf(line, "n %llu", &last), 1);
		h->last = last;
		if (n && last >= n)
			return last;
	}
}

static void wait_syscall(pid_t pid, const char *nr)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/syscall", (int)pid);
	for (int tries = 0;; tries++) {
		char buf[64] = "";
		FILE *f = fopen(p, "r");
		if (f) {
			if (!fgets(buf, sizeof(buf), f))
				buf[0] = 0;
			fclose(f);
		}
		if (strncmp(buf, nr, strlen(nr)) == 0)
			return;
		ck_assert_msg(tries < 5000, "helper never reached syscall %s", nr);
		usleep(1000);
	}
}

/* Freeze, dump as @id, kill while frozen; returns the last block the helper reported. */
static unsigned long long dump_and_kill(struct ctr *h, const char *id)
{
	struct restore_freeze *f = NULL;
	struct restore_err err = {0};
	ck_assert_msg(restore_freeze(h->pid, &f, &err) == 0, "freeze: %s", err.msg);
	int r = restore_dump(f, fx_dirfd, id, NULL, NULL, &err);
	kill(h->pid, SIGKILL);
	restore_freeze_resume(f);
	ck_assert_int_eq(waitpid(h->pid, NULL, 0), h->pid);
	ck_assert_msg(r == 0, "dump: %d %s", r, err.msg);
	unsigned long long last = h->last;
	char line[128];
	for (;;) {
		read_line(h->prog, line, sizeof(line));
		if (!line[0])
			break;
		sscanf(line, "n %llu", &last);
	}
	close(h->prog);
	if (h->cmd >= 0)
		close(h->cmd);
	return last;
}

/* restore_process() in a fresh child, handing over new pipes at PFD (and CFD). A failure before
 * the jump comes back on @res as "ERRNO MESSAGE", one in the blob as its line. @check: the
 * pages are checked by our restore_pages_check() on *check (else before the jump). */
static pid_t restore_child(const char *id, struct ctr *h, bool block, bool allow_changed, int *res,
			   int *check)
{
	int pp[2], cp[2] = {-1, -1}, rp[2], sv[2] = {-1, -1};
	if (check)
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(pipe2(pp, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(rp, O_CLOEXEC), 0);
	if (block)
		ck_assert_int_eq(pipe2(cp, O_CLOEXEC), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct restore_fd_map m[2] = {{PFD, pp[1]}, {CFD, cp[0]}};
		struct restore_process_opts o = {.fds = m,
						 .nfds = block ? 2 : 1,
						 .allow_changed = allow_changed,
						 .check_fd = sv[1],
						 .blob_err_fd = rp[1]};
		struct restore_err err = {0};
		int r = restore_process(fx_dirfd, id, &o, &err);
		dprintf(rp[1], "%d %s\n", r, err.msg);
		_exit(100);
	}
	close(pp[1]);
	close(rp[1]);
	if (block)
		close(cp[0]);
	if (check) {
		close(sv[1]);
		*check = sv[0];
	}
	*h = (struct ctr){.pid = pid, .prog = pp[0], .cmd = cp[1]};
	*res = rp[0];
	return pid;
}

/* The restored helper continues at block @next, keeps counting, and verifies itself. */
static void check_restored(struct ctr *h, int res, unsigned long long next)
{
	char line[512];
	read_line(h->prog, line, sizeof(line));
	if (!line[0]) { /* the restorer failed: say why */
		char why[512] = "";
		read_line(res, why, sizeof(why));
		int st = 0;
		waitpid(h->pid, &st, 0);
		ck_abort_msg("restore failed (status 0x%x): %s", st, why);
	}
	unsigned long long n = 0;
	ck_assert_msg(sscanf(line, "n %llu", &n) == 1 && n == next, "first line %s, want n %llu",
		      line, next);
	wait_block(h, next + 20);
	kill(h->pid, SIGUSR1);
	for (;;) {
		read_line(h->prog, line, sizeof(line));
		ck_assert_msg(line[0], "restored helper ended without a verdict");
		if (line[0] != 'n')
			break;
	}
	ck_assert_str_eq(line, "ok\n");
	int st = 0;
	ck_assert_int_eq(waitpid(h->pid, &st, 0), h->pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
	close(h->prog);
	close(res);
	if (h->cmd >= 0)
		close(h->cmd);
}

static uint64_t image_vdso(const char *id)
{
	struct restore_image *img = NULL;
	struct restore_err err = {0};
	ck_assert_int_eq(restore_image_load(fx_dirfd, id, &img, &err), 0);
	uint64_t a = 0;
	for (size_t i = 0; i < img->nvmas; i++)
		if (img->vmas[i].kind == RESTORE_VMA_VDSO)
			a = img->vmas[i].start;
	restore_image_free(img);
	ck_assert_uint_ne(a, 0);
	return a;
}

static bool vdso_at(pid_t pid, uint64_t addr)
{
	char p[64], line[512];
	snprintf(p, sizeof(p), "/proc/%d/maps", (int)pid);
	FILE *f = fopen(p, "r");
	ck_assert_ptr_nonnull(f);
	bool ok = false;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "[vdso]") && strtoull(line, NULL, 16) == addr)
			ok = true;
	fclose(f);
	return ok;
}

static void run_counter(const char *helper, int restores)
{
	struct ctr h;
	start_counter(&h, helper, false);
	wait_block(&h, 5);
	unsigned long long last = dump_and_kill(&h, "1");
	uint64_t vdso = image_vdso("1");
	for (int i = 0; i < restores; i++) {
		int res;
		restore_child("1", &h, false, false, &res, NULL);
		char line[128];
		read_line(h.prog, line, sizeof(line));
		ck_assert_msg(line[0], "restore %d produced no progress", i);
		unsigned long long n = 0;
		ck_assert_msg(sscanf(line, "n %llu", &n) == 1 && n == last + 1,
			      "restore %d: first line %s, want n %llu", i, line, last + 1);
		ck_assert_msg(vdso_at(h.pid, vdso), "[vdso] not at 0x%llx",
			      (unsigned long long)vdso);
		if (geteuid() == 0) { /* the exe link needs CAP_CHECKPOINT_RESTORE */
			char p[64], exe[PATH_MAX] = "";
			snprintf(p, sizeof(p), "/proc/%d/exe", (int)h.pid);
			ck_assert_int_gt(readlink(p, exe, sizeof(exe) - 1), 0);
			ck_assert_msg(strstr(exe, helper), "exe link is %s", exe);
		}
		check_restored(&h, res, n + 1);
	}
}

START_TEST(test_restore_counter)
{
	run_counter("zdtm-counter", 1);
}
END_TEST

START_TEST(test_restore_twice)
{
	run_counter("zdtm-counter", 2);
}
END_TEST

START_TEST(test_restore_static)
{
	run_counter("zdtm-counter-static", 1);
}
END_TEST

/* Frozen inside read(): -ERESTARTSYS in rax; the restored helper must re-enter the read and get
 * the byte written to the new command pipe. */
START_TEST(test_restore_in_syscall)
{
	struct ctr h;
	start_counter(&h, "zdtm-counter", true);
	unsigned long long blk = wait_block(&h, 0);
	ck_assert_uint_eq(blk, 3);
	wait_syscall(h.pid, "0 ");
	dump_and_kill(&h, "1");
	int res;
	restore_child("1", &h, true, false, &res, NULL);
	wait_syscall(h.pid, "0 ");
	ck_assert_int_eq(write(h.cmd, "x", 1), 1);
	check_restored(&h, res, 4);
}
END_TEST

static void expect_refusal(const char *id, bool allow_changed, int want, const char *needle)
{
	struct ctr h;
	int res;
	restore_child(id, &h, false, allow_changed, &res, NULL);
	char line[512];
	read_line(res, line, sizeof(line));
	int st = 0;
	ck_assert_int_eq(waitpid(h.pid, &st, 0), h.pid);
	int r = 0;
	ck_assert_msg(sscanf(line, "%d", &r) == 1 && r == want, "got \"%s\"", line);
	ck_assert_msg(strstr(line, needle), "message \"%s\" lacks \"%s\"", line, needle);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 100);
	close(h.prog);
	close(res);
}

START_TEST(test_restore_refusals)
{
	/* Multi-threaded images restore (tests/unit/restore/threads.c). */
	/* A file mapped by the image changed: refused, naming it; allowed on request. */
	struct ctr h;
	start_counter(&h, "zdtm-counter", false);
	wait_block(&h, 3);
	unsigned long long last = dump_and_kill(&h, "1");
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/zdtm-counter.priv", fx_dir);
	struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = 12345}};
	ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
	expect_refusal("1", false, -ESTALE, "zdtm-counter.priv changed");
	int res;
	restore_child("1", &h, false, true, &res, NULL);
	check_restored(&h, res, last + 1);
}
END_TEST

static void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	unsigned char b;
	ck_assert_int_eq(pread(fd, &b, 1, off), 1);
	b ^= 0xff;
	ck_assert_int_eq(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

/* The page check as the job's init does it: restore_pages_check() on the memory the blob
 * fills. A good image goes on; a flipped byte in the page data is refused before the helper
 * runs a single instruction (no progress line), with the check's line as the blob's last words
 * and status RESTORE_BLOB_EXIT_STATUS; repaired, the image restores again. */
START_TEST(test_restore_page_check)
{
	struct ctr h;
	start_counter(&h, "zdtm-counter", false);
	wait_block(&h, 3);
	unsigned long long last = dump_and_kill(&h, "1");
	int res, chk;
	struct restore_err err = {0};
	restore_child("1", &h, false, false, &res, &chk);
	ck_assert_msg(restore_pages_check(fx_dirfd, "1", h.pid, chk, &err) == 0, "%s", err.msg);
	close(chk);
	check_restored(&h, res, last + 1);

	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/1/pages.img", fx_dir);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	flip_byte(path, st.st_size / 2);
	restore_child("1", &h, false, false, &res, &chk);
	ck_assert_int_eq(restore_pages_check(fx_dirfd, "1", h.pid, chk, &err), -EBADMSG);
	close(chk);
	ck_assert_msg(strstr(err.msg, "1/pages.img is corrupt (checksum of pages at 0x"), "%s",
		      err.msg);
	char line[512];
	read_line(h.prog, line, sizeof(line));
	ck_assert_msg(!line[0], "the helper ran: %s", line);
	read_line(res, line, sizeof(line));
	ck_assert_msg(!strncmp(line, RESTORE_CHECK_REFUSED, strlen(RESTORE_CHECK_REFUSED)) &&
			      strstr(line, err.msg),
		      "blob said: %s", line);
	int stat = 0;
	ck_assert_int_eq(waitpid(h.pid, &stat, 0), h.pid);
	ck_assert_msg(WIFEXITED(stat) && WEXITSTATUS(stat) == RESTORE_BLOB_EXIT_STATUS,
		      "status 0x%x", stat);
	close(h.prog);
	close(res);

	flip_byte(path, st.st_size / 2);
	restore_child("1", &h, false, false, &res, &chk);
	ck_assert_msg(restore_pages_check(fx_dirfd, "1", h.pid, chk, &err) == 0, "%s", err.msg);
	close(chk);
	check_restored(&h, res, last + 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("restore-process");
	TCase *tc = tcase_create("restore");
	tcase_add_checked_fixture(tc, fx_dir_setup, fx_dir_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_restore_counter);
	tcase_add_test(tc, test_restore_twice);
	tcase_add_test(tc, test_restore_static);
	tcase_add_test(tc, test_restore_in_syscall);
	tcase_add_test(tc, test_restore_refusals);
	tcase_add_test(tc, test_restore_page_check);
	suite_add_tcase(s, tc);
	return ck_run_suite(s);
}
