/* Unit tests of ckptenv's own formats: the job/status/run files and control framing. */
#include "../check-main.h"
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "ckptenv/control.h"
#include "ckptenv/state.h"
#include "common/ck.h"

static char *argv_[] = {"sh", "-c", "echo hi", NULL};
static char *envp_[] = {"A=1", "PATH=/bin", NULL};

static struct job_spec sample(void)
{
	return (struct job_spec){.argv = argv_,
				 .argc = 3,
				 .envp = envp_,
				 .envc = 2,
				 .cwd = "/home/u",
				 .flags = JOB_F_DETACH,
				 .from_epoch = 42,
				 .created = 1700000000};
}

START_TEST(spec_roundtrip)
{
	struct job_spec s = sample(), t;
	uint8_t *p;
	size_t len;
	ck_assert_int_eq(job_spec_pack(&s, &p, &len), 0);
	ck_assert_int_eq(job_spec_unpack(p, len, &t), 0);
	ck_assert_uint_eq(t.argc, 3);
	ck_assert_str_eq(t.argv[2], "echo hi");
	ck_assert_ptr_null(t.argv[3]);
	ck_assert_uint_eq(t.envc, 2);
	ck_assert_str_eq(t.envp[1], "PATH=/bin");
	ck_assert_str_eq(t.cwd, "/home/u");
	ck_assert_uint_eq(t.flags, JOB_F_DETACH);
	ck_assert_uint_eq(t.from_epoch, 42);
	ck_assert_int_eq(t.created, 1700000000);
	char *cmd = job_spec_command(&t);
	ck_assert_str_eq(cmd, "sh -c echo hi");
	free(cmd);
	job_spec_free(&t);
	job_spec_free(&t); /* NULL-safe twice */
	free(p);
}
END_TEST

START_TEST(spec_rejects_damage)
{
	struct job_spec s = sample(), t;
	uint8_t *p;
	size_t len;
	ck_assert_int_eq(job_spec_pack(&s, &p, &len), 0);
	for (size_t n = 0; n < len; n++) /* every truncation */
		ck_assert_int_lt(job_spec_unpack(p, n, &t), 0);
	for (size_t i = 0; i < len; i++) { /* every flipped byte */
		p[i] ^= 0x40;
		ck_assert_int_lt(job_spec_unpack(p, len, &t), 0);
		p[i] ^= 0x40;
	}
	/* A newer version with a valid checksum: not understood, and said so. */
	ck_put_le16(p + 4, 99);
	ck_put_le64(p + len - 8, ck_checksum(p, len - 8));
	ck_assert_int_eq(job_spec_unpack(p, len, &t), -EPROTONOSUPPORT);
	free(p);
}
END_TEST

START_TEST(files_in_dir)
{
	char tmpl[] = "/tmp/ck-unit-XXXXXX";
	const char *base = getenv("CK_TEST_TMPDIR");
	char dir[512];
	if (base) {
		ck_mkdir_p(base, 0700);
		snprintf(dir, sizeof(dir), "%s/ck-unit-XXXXXX", base);
	} else {
		snprintf(dir, sizeof(dir), "%s", tmpl);
	}
	ck_assert_ptr_nonnull(mkdtemp(dir));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	struct job_spec s = sample(), t;
	ck_assert_int_eq(job_spec_read(fd, &t), -ENOENT);
	ck_assert_int_eq(job_spec_write(fd, &s), 0);
	ck_assert_int_eq(job_spec_read(fd, &t), 0);
	job_spec_free(&t);
	struct stat st;
	ck_assert_int_eq(fstatat(fd, "job", &st, 0), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);

	struct job_status js = {.exit_code = 137, .run_id = 7, .started = 1, .ended = 2}, jt;
	ck_assert_int_eq(job_status_write(fd, &js), 0);
	ck_assert_int_eq(job_status_read(fd, &jt), 0);
	ck_assert_int_eq(jt.exit_code, 137);
	ck_assert_uint_eq(jt.run_id, 7);
	struct job_run jr = {.supervisor_pid = 10, .init_pid = 11, .run_id = 7, .started = 3}, ju;
	ck_assert_int_eq(job_run_write(fd, &jr), 0);
	ck_assert_int_eq(job_run_read(fd, &ju), 0);
	ck_assert_int_eq(ju.init_pid, 11);
	/* A status file is not a run file. */
	ck_assert_int_eq(renameat(fd, "status", fd, "run"), 0);
	ck_assert_int_eq(job_run_read(fd, &ju), -EBADMSG);

	/* Lock: taken once; a probe sees it; released on close. */
	ck_assert_int_eq(state_job_running(fd), 0);
	int l1, l2;
	ck_assert_int_eq(state_lock_take(fd, &l1), 0);
	ck_assert_int_eq(state_job_running(fd), 1);
	ck_assert_int_eq(state_lock_take(fd, &l2), -EBUSY);
	close(l1);
	ck_assert_int_eq(state_job_running(fd), 0);
	close(fd);
	ck_assert_int_eq(ck_rm_rf_at(AT_FDCWD, dir), 0);
}
END_TEST

START_TEST(names)
{
	ck_assert_int_eq(state_name_check("web-1.test_A"), 0);
	ck_assert_int_eq(state_name_check(""), -EINVAL);
	ck_assert_int_eq(state_name_check(".x"), -EINVAL);
	ck_assert_int_eq(state_name_check(".."), -EINVAL);
	ck_assert_int_eq(state_name_check("a/b"), -EINVAL);
	ck_assert_int_eq(state_name_check("a b"), -EINVAL);
	ck_assert_int_eq(state_name_check("é"), -EINVAL);
	char n[66];
	memset(n, 'a', 64);
	n[64] = 0;
	ck_assert_int_eq(state_name_check(n), 0);
	n[64] = 'a';
	n[65] = 0;
	ck_assert_int_eq(state_name_check(n), -EINVAL);
}
END_TEST

START_TEST(control_framing)
{
	int sp[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
	struct control_msg m;
	int fds[3] = {0, 1, 2};
	ck_assert_int_eq(control_send(sp[0], CONTROL_START, NULL, 0, fds, 3), 0);
	ck_assert_int_eq(control_recv(sp[1], &m), 0);
	ck_assert_uint_eq(m.type, CONTROL_START);
	ck_assert_uint_eq(m.nfds, 3);
	control_msg_close_fds(&m);

	ck_assert_int_eq(control_send_error(sp[0], ENOENT, "no such thing"), 0);
	ck_assert_int_eq(control_recv(sp[1], &m), 0);
	int e;
	char buf[64];
	ck_assert_int_eq(control_parse_error(&m, &e, buf, sizeof(buf)), 0);
	ck_assert_int_eq(e, ENOENT);
	ck_assert_str_eq(buf, "no such thing");

	ck_assert_int_eq(control_send_u64x2(sp[0], CONTROL_SNAPPED, 5, 6), 0);
	ck_assert_int_eq(control_recv(sp[1], &m), 0);
	uint64_t a, b;
	ck_assert_int_eq(control_parse_u64x2(&m, &a, &b), 0);
	ck_assert_uint_eq(a + b, 11);
	uint32_t u;
	ck_assert_int_eq(control_parse_u32(&m, &u), -EBADMSG);

	/* Garbage, a lying length, a bad version, an oversize datagram: all -EBADMSG. */
	uint8_t raw[CONTROL_HDR + CONTROL_PAYLOAD_MAX + 16] = {0};
	ck_assert_int_eq(send(sp[0], "junk", 4, 0), 4);
	ck_assert_int_eq(control_recv(sp[1], &m), -EBADMSG);
	ck_put_le32(raw, CONTROL_MAGIC);
	ck_put_le16(raw + 4, CONTROL_VERSION);
	ck_put_le32(raw + 8, 100);
	ck_assert_int_eq(send(sp[0], raw, CONTROL_HDR + 4, 0), CONTROL_HDR + 4);
	ck_assert_int_eq(control_recv(sp[1], &m), -EBADMSG);
	ck_put_le32(raw + 8, 0);
	ck_put_le16(raw + 4, CONTROL_VERSION + 1);
	ck_assert_int_eq(send(sp[0], raw, CONTROL_HDR, 0), CONTROL_HDR);
	ck_assert_int_eq(control_recv(sp[1], &m), -EBADMSG);
	ck_put_le16(raw + 4, CONTROL_VERSION);
	ck_put_le32(raw + 8, sizeof(raw) - CONTROL_HDR);
	ck_assert_int_eq(send(sp[0], raw, sizeof(raw), 0), (ssize_t)sizeof(raw));
	ck_assert_int_eq(control_recv(sp[1], &m), -EBADMSG);
	ck_assert_int_eq(control_send(sp[0], 1, raw, CONTROL_PAYLOAD_MAX + 1, NULL, 0), -EINVAL);

	close(sp[0]);
	ck_assert_int_eq(control_recv(sp[1], &m), -ECONNRESET);
	close(sp[1]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ckptenv-formats");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, spec_roundtrip);
	tcase_add_test(tc, spec_rejects_damage);
	tcase_add_test(tc, files_in_dir);
	tcase_add_test(tc, names);
	tcase_add_test(tc, control_framing);
	suite_add_tcase(s, tc);
	return ck_run_suite(s);
}
