/* The filter cannot be bypassed: other ABIs (i386 int 0x80 incl. socketcall, x32) and io_uring
 * are refused, and the filter and NO_NEW_PRIVS survive fork and exec. */
#include "../check-main.h"
#include "np-test.h"

#include <grp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/syscall.h>

#define X32_BIT 0x40000000L

static long int80(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
	return ret;
}

static int job_abi(void *arg)
{
	const struct sockaddr_storage *a = arg;
	uint32_t *low = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	J_CHECK(low != MAP_FAILED, 1);
	memcpy(low + 16, a, sizeof(struct sockaddr_in));
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	J_CHECK(fd >= 0, 2);
	/* i386 socketcall(SYS_CONNECT, {fd, addr, len}) */
	low[0] = (uint32_t)fd;
	low[1] = (uint32_t)(uintptr_t)(low + 16);
	low[2] = sizeof(struct sockaddr_in);
	J_CHECK(int80(102, 3, (long)(uintptr_t)low, 0) == -ENOSYS, 3);
	/* i386 connect(2) */
	J_CHECK(int80(362, fd, (long)(uintptr_t)(low + 16), sizeof(struct sockaddr_in)) == -ENOSYS,
		4);
	/* x32 connect */
	J_CHECK(syscall(X32_BIT | SYS_connect, fd, low + 16, sizeof(struct sockaddr_in)) < 0 &&
			errno == ENOSYS,
		5);
	/* io_uring */
	char params[120] = {0};
	J_CHECK(syscall(SYS_io_uring_setup, 4, params) < 0 && errno == ENOSYS, 6);
	J_CHECK(syscall(SYS_io_uring_enter, 0, 0, 0, 0, NULL, 0) < 0 && errno == ENOSYS, 7);
	J_CHECK(syscall(SYS_io_uring_register, 0, 0, NULL, 0) < 0 && errno == ENOSYS, 8);
	return 0;
}

START_TEST(test_other_abis_refused)
{
	struct fx f;
	struct sockaddr_storage a;
	fx_start(&f, NULL);
	int l = t_listen(AF_INET, SOCK_STREAM, true, &a);
	pid_t pid = fx_job(&f, job_abi, &a, 0);
	ck_assert_int_eq(fx_wait(pid), 0);
	/* nothing reached the listener */
	ck_assert_int_eq(fcntl(l, F_SETFL, O_NONBLOCK), 0);
	ck_assert_int_lt(accept(l, NULL, NULL), 0);
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_uint_eq(fx_nsessions(&f), 0);
	close(l);
	fx_stop(&f);
}
END_TEST

static int job_fork_exec(void *arg)
{
	const struct sockaddr_storage *a = arg;
	pid_t c = fork();
	if (c == 0) {
		int fd = j_connect(a, 0);
		if (fd < 0 || write(fd, "x", 1) != 1)
			_exit(1);
		char b;
		_exit(read(fd, &b, 1) == 1 ? 0 : 2);
	}
	int st;
	J_CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0, 1);
	/* after exec: still filtered (mode 2); no_new_privs only where the kernel demanded it
	 * (not for root, so setuid programs keep working in a job) */
	execl("/bin/sh", "sh", "-c",
	      geteuid() == 0 ? "grep -q '^Seccomp:[[:space:]]*2' /proc/self/status && "
			       "grep -q '^NoNewPrivs:[[:space:]]*0' /proc/self/status"
			     : "grep -q '^Seccomp:[[:space:]]*2' /proc/self/status && "
			       "grep -q '^NoNewPrivs:[[:space:]]*1' /proc/self/status",
	      (char *)NULL);
	return 3;
}

/* Without CAP_SYS_ADMIN the kernel wants NO_NEW_PRIVS: the filter still loads, with it set. */
START_TEST(test_unprivileged_sets_nnp)
{
	pid_t c = fork();
	ck_assert_int_ge(c, 0);
	if (c == 0) {
		if (geteuid() == 0 && (setgroups(0, NULL) < 0 || setgid(65534) < 0 ||
				       setuid(65534) < 0))
			_exit(1);
		int fd = netproxy_filter_install(0);
		if (fd < 0)
			_exit(2);
		_exit(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 ? 0 : 3);
	}
	int st;
	ck_assert_int_eq(waitpid(c, &st, 0), c);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 0);
}
END_TEST

START_TEST(test_fork_exec_inherit)
{
	struct fx f;
	struct sockaddr_storage a;
	fx_start(&f, NULL);
	int l = t_listen(AF_INET, SOCK_STREAM, true, &a);
	pid_t pid = fx_job(&f, job_fork_exec, &a, 0);
	int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(c, 0);
	char b;
	ck_assert_int_eq(read(c, &b, 1), 1);
	ck_assert_uint_eq(fx_nsessions(&f), 1); /* the grandchild's connect was proxied */
	ck_assert_int_eq(write(c, "k", 1), 1);
	ck_assert_int_eq(fx_wait(pid), 0);
	close(c);
	close(l);
	fx_stop(&f);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("netproxy-filter");
	TCase *tc = tcase_create("filter");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_other_abis_refused);
	tcase_add_test(tc, test_fork_exec_inherit);
	tcase_add_test(tc, test_unprivileged_sets_nnp);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ck_run_suite(suite());
}
