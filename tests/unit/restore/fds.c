/* Every fd kind of the checkpoint core, zdtm style: the zdtm-fds helper sets up an epoll loop
 * over a timerfd, an eventfd, a pipe to itself with 100 kB in flight, a signalfd, inotify
 * watches (with a gap in their numbers), unix listeners (path and abstract), a TCP listener on
 * loopback, socketpairs with queued bytes, a FIFO, devices and dup'ed fds. It is frozen, dumped
 * and killed; the image's fd records are checked; then it is rebuilt (twice, from the same
 * image) in a fresh child of ours with a new report pipe handed over, and verifies everything
 * from inside on SIGUSR1. Also: an accepted TCP connection refuses the dump, naming the fd. */
#include "fixture.h"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#define RFD 10 /* report pipe in the helper */

static char tmp[PATH_MAX], work[PATH_MAX + 8];
static int dirfd_ = -1;

static void setup(void)
{
	fx_tmpdir(tmp, sizeof(tmp));
	dirfd_ = fx_open_dir(tmp);
	snprintf(work, sizeof(work), "%s/work", tmp);
}

static void teardown(void)
{
	close(dirfd_);
	ck_rm_rf_at(AT_FDCWD, tmp);
}

static void line(int fd, char *buf, size_t len)
{
	struct zdtm z = {.report = fd};
	fx_line(&z, buf, len);
}

/* Start zdtm-fds with only stdio and its report pipe at RFD; returns its first line. */
static pid_t start(const char *mode, int *ret_rep, char *first, size_t len)
{
	int rp[2];
	ck_assert_int_eq(pipe2(rp, O_CLOEXEC), 0);
	char exe[PATH_MAX];
	snprintf(exe, sizeof(exe), "%s/zdtm-fds", fx_helpers());
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(rp[1], RFD);
		close_range(3, RFD - 1, 0);
		close_range(RFD + 1, ~0u, 0);
		execl(exe, "zdtm-fds", "10", work, mode, (char *)NULL);
		_exit(127);
	}
	close(rp[1]);
	*ret_rep = rp[0];
	line(rp[0], first, len);
	ck_assert_msg(!strncmp(first, "ready", 5), "helper: %s", first);
	return pid;
}

static int dump(pid_t pid, const char *id, struct restore_err *err)
{
	struct restore_freeze *f = NULL;
	ck_assert_msg(restore_freeze(pid, &f, err) == 0, "freeze: %s", err->msg);
	int r = restore_dump(f, dirfd_, id, NULL, NULL, err);
	kill(pid, SIGKILL);
	restore_freeze_resume(f);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	return r;
}

static const struct restore_fd *fd_of(const struct restore_image *img, int fd)
{
	for (size_t i = 0; i < img->nfds; i++)
		if (img->fds[i].fd == fd)
			return &img->fds[i];
	ck_abort_msg("fd %d is not in the image", fd);
	return NULL;
}

static const struct restore_fd *kind_of(const struct restore_image *img, uint32_t kind, int nth)
{
	for (size_t i = 0; i < img->nfds; i++)
		if (img->fds[i].kind == kind && img->fds[i].st.dup_of < 0 && nth-- == 0)
			return &img->fds[i];
	ck_abort_msg("no %s fd #%d in the image", restore_fd_kind_name(kind), nth);
	return NULL;
}

/* The records the dumper wrote, against what the helper set up. */
static void check_image(unsigned port)
{
	struct restore_image *img = NULL;
	struct restore_err err = {0};
	ck_assert_msg(restore_image_load(dirfd_, "1", &img, &err) == 0, "%s", err.msg);
	const struct restore_fd *ev = kind_of(img, RESTORE_FD_EVENTFD, 0);
	ck_assert_uint_eq(ev->st.value, 42);
	const struct restore_fd *sem = kind_of(img, RESTORE_FD_EVENTFD, 1);
	ck_assert(sem->st.flags & RESTORE_FDS_F_SEMAPHORE);
	ck_assert_uint_eq(sem->st.value, 3);
	const struct restore_fd *semdup = NULL, *zero = NULL, *zdup = NULL;
	for (size_t i = 0; i < img->nfds; i++)
		if (img->fds[i].st.dup_of == sem->fd)
			semdup = &img->fds[i];
	ck_assert_ptr_nonnull(semdup);
	for (size_t i = 0; i < img->nfds; i++)
		if (!strcmp(img->fds[i].target, "/dev/zero"))
			*(zero ? &zdup : &zero) = &img->fds[i];
	/* the dup of /dev/zero opened with O_CLOEXEC: the fd flag (injected F_GETFD) is not */
	ck_assert_ptr_nonnull(zdup);
	ck_assert_int_eq(zdup->st.dup_of, zero->fd);
	ck_assert(zdup->st.flags & RESTORE_FDS_F_FDFLAGS);
	ck_assert(!(zdup->st.flags & RESTORE_FDS_F_CLOEXEC));
	ck_assert(zero->st.flags & RESTORE_FDS_F_CLOEXEC);
	const struct restore_fd *t = kind_of(img, RESTORE_FD_TIMERFD, 0);
	ck_assert_int_eq(t->st.clockid, CLOCK_MONOTONIC);
	ck_assert_uint_eq(t->st.it_interval_ns, 20000000);
	ck_assert_uint_le(t->st.it_value_ns, 20000000);
	const struct restore_fd *ep = kind_of(img, RESTORE_FD_EPOLL, 0);
	ck_assert_uint_eq(ep->st.ntfds, 7);
	const struct restore_fd *in = kind_of(img, RESTORE_FD_INOTIFY, 0);
	ck_assert_uint_eq(in->st.nwatches, 2);
	ck_assert_int_eq(in->st.watches[0].wd, 1);
	ck_assert_int_eq(in->st.watches[1].wd, 3);
	char want[PATH_MAX + 16];
	snprintf(want, sizeof(want), "%s/watched", work);
	ck_assert_str_eq(in->st.watches[0].path, want);
	ck_assert_uint_eq(in->st.watches[1].mask & IN_ONESHOT, IN_ONESHOT);
	const struct restore_fd *sig = kind_of(img, RESTORE_FD_SIGNALFD, 0);
	ck_assert_uint_eq(sig->st.value, (1ull << (SIGUSR1 - 1)) | (1ull << (SIGUSR2 - 1)));
	int listeners = 0, pairs = 0, tcp = 0;
	for (size_t i = 0; i < img->nfds; i++) {
		const struct restore_fd_state *s = &img->fds[i].st;
		if (img->fds[i].kind != RESTORE_FD_SOCKET)
			continue;
		if (s->family == AF_UNIX && s->sock_state == RESTORE_SOCK_LISTEN) {
			listeners++;
			ck_assert(s->value == 7 || s->value == 3); /* their backlogs */
		}
		if (s->family == AF_UNIX && s->sock_state == RESTORE_SOCK_CONNECTED) {
			pairs++;
			ck_assert_uint_ne(s->peer_ino, 0);
			ck_assert(s->data_len == 11 || s->data_len == 6 || s->data_len == 0);
			if (s->type == SOCK_DGRAM && s->data_len)
				ck_assert_uint_eq(s->nmsgs, 3);
		}
		if (s->family == AF_INET) {
			tcp++;
			ck_assert_uint_eq(s->sock_state, RESTORE_SOCK_LISTEN);
			ck_assert_uint_eq(s->value, 5);
			ck_assert_uint_eq(ntohs(((const struct sockaddr_in *)(const void *)s->addr)
						       ->sin_port),
					  port);
			bool reuse = false;
			for (uint32_t k = 0; k < s->nopts; k++)
				reuse |= s->opts[k].name == SO_REUSEADDR && s->opts[k].value;
			ck_assert(reuse);
		}
	}
	ck_assert_int_eq(listeners, 2);
	ck_assert_int_eq(pairs, 4);
	ck_assert_int_eq(tcp, 1);
	/* the pipe to itself: its 100000 bytes ride on one of its fds */
	uint64_t piped = 0;
	for (size_t i = 0; i < img->nfds; i++)
		if (img->fds[i].kind == RESTORE_FD_PIPE && img->fds[i].target[0] != '/')
			piped += img->fds[i].st.data_len;
	ck_assert_uint_eq(piped, 100000);
	/* the report pipe's reader is the test: the other end is outside the job */
	ck_assert(fd_of(img, RFD)->st.flags & RESTORE_FDS_F_PEER_OUT);
	restore_image_free(img);
}

static void wait_blocked(pid_t pid, int sig)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
	for (int tries = 0;; tries++) {
		char l[256];
		unsigned long long blk = 0;
		FILE *f = fopen(p, "r");
		while (f && fgets(l, sizeof(l), f))
			sscanf(l, "SigBlk: %llx", &blk);
		if (f)
			fclose(f);
		if (blk & (1ull << (sig - 1)))
			return;
		ck_assert_msg(f && tries < 10000, "pid %d never blocked signal %d", (int)pid, sig);
		usleep(1000);
	}
}

static void restore_and_verify(void)
{
	int rp[2], res[2];
	ck_assert_int_eq(pipe2(rp, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(res, O_CLOEXEC), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct restore_fd_map m[1] = {{RFD, rp[1]}};
		struct restore_process_opts o = {.fds = m, .nfds = 1};
		struct restore_err err = {0};
		int r = restore_process(dirfd_, "1", &o, &err);
		dprintf(res[1], "%d %s\n", r, err.msg);
		_exit(100);
	}
	close(rp[1]);
	close(res[1]);
	/* The restored helper says nothing until asked (a failed restore closes the pipe). Ask
	 * once SIGUSR1 is blocked: by the restorer from its point of no return on, then by the
	 * helper's own mask; before that it would kill the restorer. */
	wait_blocked(pid, SIGUSR1);
	ck_assert_int_eq(kill(pid, SIGUSR1), 0);
	char got[512];
	line(rp[0], got, sizeof(got));
	if (!got[0]) {
		char why[512] = "";
		line(res[0], why, sizeof(why));
		int st = 0;
		waitpid(pid, &st, 0);
		ck_abort_msg("restore failed (status 0x%x): %s", st, why);
	}
	ck_assert_msg(!strcmp(got, "ok\n"), "restored helper: %s", got);
	ck_assert_int_eq(kill(pid, SIGUSR2), 0);
	line(rp[0], got, sizeof(got));
	ck_assert_msg(!strncmp(got, "ticks ", 6), "restored helper: %s", got);
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	close(rp[0]);
	close(res[0]);
}

START_TEST(test_fds_restore)
{
	int rep;
	char first[128];
	pid_t pid = start(NULL, &rep, first, sizeof(first));
	unsigned port = 0;
	ck_assert_int_eq(sscanf(first, "ready %u", &port), 1);
	struct restore_err err = {0};
	int r = dump(pid, "1", &err);
	ck_assert_msg(r == 0, "dump: %d %s", r, err.msg);
	close(rep);
	check_image(port);
	for (int round = 0; round < 2; round++)
		restore_and_verify();
}
END_TEST

START_TEST(test_fds_refuse_accepted)
{
	int rep;
	char first[128];
	pid_t pid = start("accept", &rep, first, sizeof(first));
	int afd = -1;
	unsigned port;
	ck_assert_int_eq(sscanf(first, "ready %u accepted %d", &port, &afd), 2);
	struct restore_err err = {0};
	int r = dump(pid, "1", &err);
	ck_assert_int_eq(r, -EOPNOTSUPP);
	char want[64];
	snprintf(want, sizeof(want), "fd %d is a connected TCP socket the job accepted", afd);
	ck_assert_msg(strstr(err.msg, want), "message: %s", err.msg);
	ck_assert(!strchr(err.msg, '\n'));
	/* and nothing is left behind */
	ck_assert_int_eq(faccessat(dirfd_, "1", F_OK, 0), -1);
	close(rep);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("restore-fds");
	TCase *tc = tcase_create("fds");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_fds_restore);
	tcase_add_test(tc, test_fds_refuse_accepted);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
