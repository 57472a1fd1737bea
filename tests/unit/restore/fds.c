/* Every fd kind of the checkpoint core, zdtm style: the zdtm-fds helper sets up an epoll loop
 * over a timerfd, an eventfd, a pipe to itself with 100 kB in flight, a signalfd, inotify
 * watches (with a gap in their numbers), unix listeners (path and abstract), a TCP listener on
 * loopback, socketpairs with queued bytes, a FIFO, devices and dup'ed fds. It is frozen, dumped
 * and killed; the image's fd records are checked; then it is rebuilt (twice, from the same
 * image) in a fresh child of ours with a new report pipe handed over, and verifies everything
 * from inside on SIGUSR1. Also the refusals: an accepted TCP connection, connections waiting
 * in a TCP or unix listener's queue, a UDP socket, an fd in flight in a unix socket, an epoll
 * registration on a closed fd number. */
#include "../check-main.h"
#include "fixture.h"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>

#define RFD 10 /* report pipe in the helper */

static char work[PATH_MAX + 8];

static void setup(void)
{
	fx_dir_setup();
	snprintf(work, sizeof(work), "%s/work", fx_dir);
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

static int dump_opts(pid_t pid, const char *id, const struct restore_dump_opts *o,
		     struct restore_err *err)
{
	struct restore_freeze *f = NULL;
	ck_assert_msg(restore_freeze(pid, &f, err) == 0, "freeze: %s", err->msg);
	int r = restore_dump(f, fx_dirfd, id, o, NULL, err);
	kill(pid, SIGKILL);
	restore_freeze_resume(f);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	return r;
}

static int dump(pid_t pid, const char *id, struct restore_err *err)
{
	return dump_opts(pid, id, NULL, err);
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
	ck_assert_msg(restore_image_load(fx_dirfd, "1", &img, &err) == 0, "%s", err.msg);
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
	const struct restore_fd *rt = kind_of(img, RESTORE_FD_TIMERFD, 1);
	ck_assert_int_eq(rt->st.clockid, CLOCK_REALTIME);
	ck_assert_uint_eq(rt->st.tflags, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t left = rt->st.abs_ns - ((int64_t)now.tv_sec * 1000000000 + now.tv_nsec);
	ck_assert_msg(left > 3000ll * 1000000000 && left <= 3600ll * 1000000000,
		      "realtime deadline %lld ns away", (long long)left);
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
	int listeners = 0, pairs = 0, widowed = 0, shut = 0, reconnect = 0, tcp = 0, tcp6 = 0;
	for (size_t i = 0; i < img->nfds; i++) {
		const struct restore_fd_state *s = &img->fds[i].st;
		if (img->fds[i].kind != RESTORE_FD_SOCKET)
			continue;
		if (s->family == AF_UNIX && s->sock_state == RESTORE_SOCK_LISTEN) {
			listeners++;
			ck_assert(s->value == 7 || s->value == 3); /* their backlogs */
		}
		if (s->flags & RESTORE_FDS_F_RECONNECT) { /* the log socket */
			reconnect++;
			ck_assert_uint_eq(s->type, SOCK_DGRAM);
			ck_assert(!(s->flags & RESTORE_FDS_F_PEER_OUT));
		} else if (s->family == AF_UNIX && s->sock_state == RESTORE_SOCK_CONNECTED &&
			   !s->peer_ino) { /* the socketpair whose peer closed */
			widowed++;
			ck_assert_uint_eq(s->data_len, 3);
		} else if (s->family == AF_UNIX && s->sock_state == RESTORE_SOCK_CONNECTED) {
			pairs++;
			ck_assert(s->data_len == 11 || s->data_len == 6 || s->data_len == 4 ||
				  s->data_len == 0);
			if (s->flags & RESTORE_FDS_F_SHUT_WR)
				shut++;
			if (s->type == SOCK_DGRAM && s->data_len)
				ck_assert_uint_eq(s->nmsgs, 3);
		}
		if (s->family == AF_INET6) {
			tcp6++;
			ck_assert_uint_eq(s->sock_state, RESTORE_SOCK_LISTEN);
			ck_assert_uint_eq(s->value, 4);
			bool v6only = false;
			for (uint32_t k = 0; k < s->nopts; k++)
				v6only |= s->opts[k].name == IPV6_V6ONLY && s->opts[k].value;
			ck_assert(v6only);
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
	ck_assert_int_eq(pairs, 6);
	ck_assert_int_eq(shut, 1); /* the half-closed pair's end that shut down writing */
	ck_assert_int_eq(widowed, 1);
	ck_assert_int_eq(reconnect, 1);
	ck_assert_int_eq(tcp, 1);
	ck_assert_int_eq(tcp6, 1);
	/* the pipe to itself: its 100000 bytes ride on one of its fds */
	/* and the widowed pipe its 4 */
	uint64_t piped = 0;
	for (size_t i = 0; i < img->nfds; i++)
		if (img->fds[i].kind == RESTORE_FD_PIPE && img->fds[i].target[0] != '/')
			piped += img->fds[i].st.data_len;
	ck_assert_uint_eq(piped, 100000 + 4);
	/* the report pipe's reader is the test: the other end is outside the job */
	ck_assert(fd_of(img, RFD)->st.flags & RESTORE_FDS_F_PEER_OUT);
	restore_image_free(img);
}

/* The restored helper is back in its loop: in epoll_wait (232) or epoll_pwait (281), which
 * the restorer never calls. Before that, SIGUSR1 would kill the restorer. False if it never
 * gets there (the restorer exited: its reason is on the result pipe). */
static bool wait_in_loop(pid_t pid)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/syscall", (int)pid);
	for (int tries = 0; tries < 10000; tries++) {
		char buf[64] = "";
		FILE *f = fopen(p, "r");
		if (f) {
			if (!fgets(buf, sizeof(buf), f))
				buf[0] = 0;
			fclose(f);
		}
		if (!strncmp(buf, "232 ", 4) || !strncmp(buf, "281 ", 4))
			return true;
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			return false;
		usleep(1000);
	}
	return false;
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
		int r = restore_process(fx_dirfd, "1", &o, &err);
		dprintf(res[1], "%d %s\n", r, err.msg);
		_exit(100);
	}
	close(rp[1]);
	close(res[1]);
	/* The restored helper says nothing until asked (a failed restore closes the pipe). */
	if (!wait_in_loop(pid)) {
		char why[512] = "";
		kill(pid, SIGKILL);
		line(res[0], why, sizeof(why));
		ck_abort_msg("restore failed: %s",
			     why[0] ? why : "(no message; still not running)");
	}
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

/* A datagram socket bound at work/log, outside the job: the helper's "syslog" connection. */
static int log_server(void)
{
	ck_assert_int_eq(mkdir(work, 0700), 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int n = snprintf(a.sun_path, sizeof(a.sun_path), "%s/log", work);
	ck_assert(n > 0 && (size_t)n < sizeof(a.sun_path));
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	return s;
}

static void expect_log(int s, const char *want)
{
	struct pollfd p = {.fd = s, .events = POLLIN};
	ck_assert_msg(poll(&p, 1, 10000) == 1, "nothing on the log socket");
	char b[64] = "";
	ssize_t n = recv(s, b, sizeof(b) - 1, 0);
	ck_assert_msg(n == (ssize_t)strlen(want) && !memcmp(b, want, (size_t)n),
		      "log socket got '%s', want '%s'", b, want);
}

START_TEST(test_fds_restore)
{
	int rep, logs = log_server();
	char first[128];
	pid_t pid = start(NULL, &rep, first, sizeof(first));
	unsigned port = 0;
	ck_assert_int_eq(sscanf(first, "ready %u", &port), 1);
	ck_assert_msg(strstr(first, " log"), "the helper did not connect to the log socket");
	expect_log(logs, "log-before");
	struct restore_err err = {0};
	int r = dump(pid, "1", &err);
	ck_assert_msg(r == 0, "dump: %d %s", r, err.msg);
	close(rep);
	check_image(port);
	for (int round = 0; round < 2; round++) {
		restore_and_verify();
		expect_log(logs, "log-after"); /* connected again to it by name */
	}
	close(logs);
}
END_TEST

/* Not handing over the report pipe (its reader was the test, outside the job) is refused
 * before anything changes, naming the fd. */
START_TEST(test_fds_unhanded_pipe)
{
	int rep;
	char first[128];
	pid_t pid = start(NULL, &rep, first, sizeof(first));
	struct restore_err err = {0};
	int r = dump(pid, "1", &err);
	ck_assert_msg(r == 0, "dump: %d %s", r, err.msg);
	close(rep);
	int res[2];
	ck_assert_int_eq(pipe2(res, O_CLOEXEC), 0);
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		struct restore_err e = {0};
		int rr = restore_process(fx_dirfd, "1", NULL, &e);
		dprintf(res[1], "%d %s\n", rr, e.msg);
		_exit(100);
	}
	close(res[1]);
	char why[512] = "";
	line(res[0], why, sizeof(why));
	int st = 0;
	ck_assert_int_eq(waitpid(child, &st, 0), child);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 100, "restorer status 0x%x", st);
	char want[128];
	snprintf(want, sizeof(want), "%d fd %d is a pipe whose other end was held outside the job",
		 -EOPNOTSUPP, RFD);
	ck_assert_msg(!strncmp(why, want, strlen(want)), "got: %s", why);
	close(res[0]);
}
END_TEST

/* A caller that hands over no pipes (ckptenv) gets a pipe held outside the job refused at
 * dump time, unless it is one the caller gives as stdio: then it is marked with which one (a
 * job that moved its stdout pipe above 2, as ssh does, had a checkpoint no restore took). */
START_TEST(test_fds_given_pipe)
{
	int rep;
	char first[128];
	pid_t pid = start(NULL, &rep, first, sizeof(first));
	struct restore_err err = {0};
	struct restore_dump_opts o = {.strict = true};
	ck_assert_int_eq(dump_opts(pid, "1", &o, &err), -EOPNOTSUPP);
	char want[128];
	snprintf(want, sizeof(want), "fd %d is a pipe whose other end is held outside the job", RFD);
	ck_assert_msg(strstr(err.msg, want), "message: %s", err.msg);
	ck_assert_int_eq(faccessat(fx_dirfd, "1", F_OK, 0), -1);
	close(rep);

	pid = start(NULL, &rep, first, sizeof(first));
	struct stat st;
	ck_assert_int_eq(fstat(rep, &st), 0);
	o.given[1].dev = st.st_dev;
	o.given[1].ino = st.st_ino;
	err = (struct restore_err){0};
	ck_assert_msg(dump_opts(pid, "1", &o, &err) == 0, "dump: %s", err.msg);
	close(rep);
	struct restore_image *img = NULL;
	ck_assert_msg(restore_image_load(fx_dirfd, "1", &img, &err) == 0, "%s", err.msg);
	const struct restore_fd *f = fd_of(img, RFD);
	ck_assert_uint_eq(f->st.flags & RESTORE_FDS_F_GIVEN_ANY, RESTORE_FDS_F_GIVEN(1));
	ck_assert(f->st.flags & RESTORE_FDS_F_PEER_OUT); /* an older restorer refuses it */
	restore_image_free(img);
}
END_TEST

/* Each refusal names the fd the helper reports and what is wrong, on one line, and leaves
 * no checkpoint behind. */
static const struct {
	const char *mode, *want;
} refusals[] = {
	{"accept", "is a connected TCP socket the job accepted"},
	{"pending", "is a listening TCP socket with 1 connection(s) not accepted yet"},
	{"pending-unix", "is a listening unix socket with 1 connection(s) not accepted yet"},
	{"udp", "is a UDP IPv4 socket"},
	{"scm", "is a unix socket with file descriptors in flight"},
	{"epoll-stale", "(epoll) watches a file that is no longer open at fd"},
};

START_TEST(test_fds_refusals)
{
	int rep;
	char first[128];
	pid_t pid = start(refusals[_i].mode, &rep, first, sizeof(first));
	int bad = -1;
	unsigned port;
	ck_assert_int_eq(sscanf(first, "ready %u %d", &port, &bad), 2);
	struct restore_err err = {0};
	int r = dump(pid, "1", &err);
	ck_assert_int_eq(r, -EOPNOTSUPP);
	char want[160];
	snprintf(want, sizeof(want), "fd %d %s", bad, refusals[_i].want);
	ck_assert_msg(strstr(err.msg, want), "%s: message: %s", refusals[_i].mode, err.msg);
	ck_assert(!strchr(err.msg, '\n'));
	ck_assert_int_eq(faccessat(fx_dirfd, "1", F_OK, 0), -1);
	close(rep);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("restore-fds");
	TCase *tc = tcase_create("fds");
	tcase_add_checked_fixture(tc, setup, fx_dir_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_fds_restore);
	tcase_add_test(tc, test_fds_unhanded_pipe);
	tcase_add_test(tc, test_fds_given_pipe);
	tcase_add_loop_test(tc, test_fds_refusals, 0, (int)CK_ARRAY_SIZE(refusals));
	suite_add_tcase(s, tc);
	return ck_run_suite(s);
}
