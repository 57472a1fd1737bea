/* zdtm-style helper for the fd kinds of the checkpoint core: an epoll loop over a timerfd, an
 * eventfd, a pipe to itself with bytes in flight, a signalfd, an inotify instance, a listening
 * unix socket (by path and abstract) and a listening TCP socket on loopback, plus socketpairs
 * with queued bytes, a FIFO, /dev/null and friends and dup'ed fds.
 *
 *   zdtm-fds REPORT_FD DIR [accept]
 *
 * Sets everything up below DIR (created), prints "ready PORT" on REPORT_FD, then loops in
 * epoll_wait. SIGUSR1 (through the signalfd) makes it verify its own fds and print "ok" or
 * "fail: WHAT"; SIGUSR2 prints "ticks N". With "accept" it only holds a TCP connection it
 * accepted (the checkpoint must refuse it) and prints "ready PORT".
 *
 * After a restore the helper checks what it sees itself: the same fd numbers with the same
 * flags and close-on-exec bits, fds that shared an open file description still share it
 * (kcmp), the same epoll registrations, the timer still firing, the counters, the bytes that
 * were in the pipe, the socketpairs and the FIFO, the inotify watches with their old watch
 * descriptors, and the listeners accepting connections.
 * NOT TO BE BUILT WITH SANITIZERS: it is checkpointed. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAXFD	   64
#define PIPE_BYTES 100000
#define PIPE_SIZE  (256 << 10)

static int rep;
static char dir[200];
static int ep, tfd, efd, sem, semdup, pr, pw, pwdup, sfd, ino, wd1, wd3, ul, al, tl, sp0, sp1,
	dg0, dg1, fr, fw, dnull, dzero, dzdup, drand;
static uint16_t port;
static char abstract_name[64];
static int snap_fd[MAXFD], snap_fl[MAXFD];
static char snap_epoll[4096];
static unsigned long long ticks;

static void say(const char *fmt, ...)
{
	char b[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b, sizeof(b), fmt, ap);
	va_end(ap);
	if (n > 0 && write(rep, b, (size_t)n) < 0)
		_exit(3);
}

static __attribute__((noreturn)) void die(const char *what)
{
	say("fail: setup %s: %s\n", what, strerror(errno));
	_exit(2);
}

static void pattern(uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 7 + i / 251);
}

static void reg(int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = {.events = events, .data.u64 = data};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll_ctl");
}

struct reg {
	int fd;
	unsigned events;
	unsigned long long data;
};

static int reg_cmp(const void *a, const void *b)
{
	const struct reg *x = a, *y = b;
	return (x->fd > y->fd) - (x->fd < y->fd);
}

/* The "tfd: N events: X data: Y" part of each registration, sorted by fd (the kernel lists
 * them in the order of its tree, keyed by file address). */
static void epoll_lines(char *out, size_t len)
{
	char p[64], buf[8192];
	snprintf(p, sizeof(p), "/proc/self/fdinfo/%d", ep);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	struct reg regs[32];
	size_t nr = 0, o = 0;
	for (char *l = strstr(buf, "tfd:"); l && nr < 32; l = strstr(l + 4, "tfd:"))
		if (sscanf(l, "tfd: %d events: %x data: %llx", &regs[nr].fd, &regs[nr].events,
			   &regs[nr].data) == 3)
			nr++;
	qsort(regs, nr, sizeof(regs[0]), reg_cmp);
	out[0] = 0;
	for (size_t i = 0; i < nr && o < len; i++)
		o += (size_t)snprintf(out + o, len - o, "%d:%x:%llx ", regs[i].fd, regs[i].events,
				      regs[i].data);
}

static int listen_unix(const char *name, bool abstract, int backlog)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	memcpy(a.sun_path + (abstract ? 1 : 0), name, n);
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (abstract ? 1 : 0));
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&a, len) < 0 || listen(s, backlog) < 0)
		die(name);
	return s;
}

static int listen_tcp(void)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al_ = sizeof(a);
	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 5) < 0 ||
	    getsockname(s, (struct sockaddr *)&a, &al_) < 0)
		die("tcp listener");
	port = ntohs(a.sin_port);
	return s;
}

static int connect_tcp(void)
{
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (c >= 0)
			close(c);
		return -1;
	}
	return c;
}

static void setup(void)
{
	char p[300];
	mkdir(dir, 0700);
	ep = epoll_create1(EPOLL_CLOEXEC);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	struct itimerspec its = {{0, 20000000}, {0, 20000000}};
	if (ep < 0 || tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) < 0)
		die("epoll/timerfd");
	reg(tfd, EPOLLIN, 1);
	efd = eventfd(42, EFD_NONBLOCK);
	sem = eventfd(3, EFD_SEMAPHORE | EFD_CLOEXEC);
	semdup = dup(sem);
	if (efd < 0 || sem < 0 || semdup < 0)
		die("eventfd");
	reg(efd, EPOLLIN | EPOLLET, 2);
	int pp[2];
	if (pipe2(pp, O_CLOEXEC) < 0 || fcntl(pp[1], F_SETPIPE_SZ, PIPE_SIZE) < 0)
		die("pipe");
	pr = pp[0];
	pw = pp[1];
	static uint8_t b[PIPE_BYTES];
	pattern(b, sizeof(b));
	if (write(pw, b, sizeof(b)) != (ssize_t)sizeof(b))
		die("pipe write");
	pwdup = fcntl(pw, F_DUPFD, 40);
	if (pwdup < 0 || fcntl(pr, F_SETFL, O_NONBLOCK) < 0)
		die("pipe dup");
	reg(pr, EPOLLIN | EPOLLET, 3);
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	sigaddset(&m, SIGUSR2);
	sigprocmask(SIG_BLOCK, &m, NULL);
	sfd = signalfd(-1, &m, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		die("signalfd");
	reg(sfd, EPOLLIN, 4);
	ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	snprintf(p, sizeof(p), "%s/watched", dir);
	mkdir(p, 0700);
	wd1 = inotify_add_watch(ino, p, IN_CREATE);
	int gap = inotify_add_watch(ino, dir, IN_DELETE); /* removed: wd 2 is a gap */
	inotify_rm_watch(ino, gap);
	snprintf(p, sizeof(p), "%s/w2", dir);
	mkdir(p, 0700);
	wd3 = inotify_add_watch(ino, p, IN_CREATE | IN_DELETE | IN_ONESHOT);
	if (ino < 0 || wd1 != 1 || wd3 != 3)
		die("inotify");
	char evb[4096];
	while (read(ino, evb, sizeof(evb)) > 0) /* the IN_IGNORED of the gap */
		;
	reg(ino, EPOLLIN, 5);
	snprintf(p, sizeof(p), "%s/sock", dir);
	unlink(p);
	ul = listen_unix(p, false, 7);
	reg(ul, EPOLLIN, 6);
	snprintf(abstract_name, sizeof(abstract_name), "zdtm-fds-%d-%ld", (int)getpid(),
		 (long)time(NULL));
	al = listen_unix(abstract_name, true, 3);
	tl = listen_tcp();
	reg(tl, EPOLLIN, 7);
	int sp[2], dg[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0 ||
	    socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) < 0)
		die("socketpair");
	sp0 = sp[0];
	sp1 = sp[1];
	dg0 = dg[0];
	dg1 = dg[1];
	if (write(sp0, "ping-from-0", 11) != 11 || write(sp1, "pong-from-1", 11) != 11 ||
	    send(dg0, "a", 1, 0) != 1 || send(dg0, "bb", 2, 0) != 2 || send(dg0, "ccc", 3, 0) != 3)
		die("socketpair bytes");
	snprintf(p, sizeof(p), "%s/fifo", dir);
	unlink(p);
	if (mkfifo(p, 0600) < 0)
		die("mkfifo");
	fr = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	fw = open(p, O_WRONLY | O_CLOEXEC);
	if (fr < 0 || fw < 0 || write(fw, "fifo bytes", 10) != 10)
		die("fifo");
	dnull = open("/dev/null", O_WRONLY | O_APPEND);
	dzero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	drand = open("/dev/urandom", O_RDONLY | O_NONBLOCK);
	dzdup = dup(dzero); /* not close-on-exec, though its file was opened with O_CLOEXEC */
	if (dnull < 0 || dzero < 0 || drand < 0 || dzdup < 0)
		die("devices");
	for (int fd = 0; fd < MAXFD; fd++) {
		snap_fd[fd] = fcntl(fd, F_GETFD);
		snap_fl[fd] = fcntl(fd, F_GETFL);
	}
	epoll_lines(snap_epoll, sizeof(snap_epoll));
}

static void on_timer(void)
{
	uint64_t v;
	if (read(tfd, &v, sizeof(v)) == sizeof(v))
		ticks += v;
}

#define CHECK(cond, ...)                                                                       \
	do {                                                                                   \
		if (!(cond)) {                                                                 \
			say("fail: " __VA_ARGS__);                                             \
			say("\n");                                                             \
			return;                                                                \
		}                                                                              \
	} while (0)

static bool same_file(int a, int b)
{
	pid_t me = getpid();
	return syscall(SYS_kcmp, me, me, KCMP_FILE, a, b) == 0;
}

static int read_exact(int fd, void *buf, size_t n, int ms)
{
	size_t got = 0;
	for (int t = 0; got < n && t < ms; t++) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (r == 0)
			break;
		usleep(1000);
	}
	return (int)got;
}

static bool echo_through(int listener, int client)
{
	int a = -1;
	for (int t = 0; t < 5000 && a < 0; t++) {
		a = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
		if (a < 0)
			usleep(1000);
	}
	char b[8] = "";
	bool ok = a >= 0 && write(client, "hello", 5) == 5 && read_exact(a, b, 5, 5000) == 5 &&
		  !memcmp(b, "hello", 5);
	if (a >= 0)
		close(a);
	close(client);
	return ok;
}

static int connect_unix(const char *name, bool abstract)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	memcpy(a.sun_path + (abstract ? 1 : 0), name, n);
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (abstract ? 1 : 0));
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s >= 0 && connect(s, (struct sockaddr *)&a, len) < 0) {
		close(s);
		return -1;
	}
	return s;
}

static void verify(void)
{
	char p[300], now_epoll[4096];
	for (int fd = 0; fd < MAXFD; fd++) {
		int d = fcntl(fd, F_GETFD), fl = fcntl(fd, F_GETFL);
		CHECK(d == snap_fd[fd], "fd %d: F_GETFD %d, was %d", fd, d, snap_fd[fd]);
		int mask = O_ACCMODE | O_NONBLOCK | O_APPEND;
		CHECK(d < 0 || (fl & mask) == (snap_fl[fd] & mask), "fd %d: F_GETFL 0%o, was 0%o",
		      fd, fl, snap_fl[fd]);
	}
	CHECK(same_file(sem, semdup), "fds %d and %d no longer share their file", sem, semdup);
	CHECK(same_file(pw, pwdup), "fds %d and %d no longer share their file", pw, pwdup);
	CHECK(same_file(dzero, dzdup), "fds %d and %d no longer share their file", dzero, dzdup);
	epoll_lines(now_epoll, sizeof(now_epoll));
	CHECK(!strcmp(now_epoll, snap_epoll), "epoll set is [%s], was [%s]", now_epoll, snap_epoll);
	/* the timer goes on firing, through epoll */
	unsigned long long t0 = ticks;
	struct epoll_event evs[8];
	for (int i = 0; i < 500 && ticks < t0 + 3; i++) {
		int n = epoll_wait(ep, evs, 8, 100);
		for (int k = 0; k < n; k++)
			if (evs[k].data.u64 == 1)
				on_timer();
	}
	CHECK(ticks >= t0 + 3, "the timerfd stopped firing (%llu ticks)", ticks - t0);
	uint64_t v = 0;
	CHECK(read(efd, &v, 8) == 8 && v == 42, "eventfd counter %llu, want 42",
	      (unsigned long long)v);
	CHECK(read(sem, &v, 8) == 8 && v == 1, "semaphore eventfd read %llu, want 1",
	      (unsigned long long)v);
	CHECK(fcntl(pw, F_GETPIPE_SZ) == PIPE_SIZE, "pipe size %d", fcntl(pw, F_GETPIPE_SZ));
	static uint8_t want[PIPE_BYTES], got[PIPE_BYTES + 1];
	pattern(want, sizeof(want));
	int n = read_exact(pr, got, sizeof(got), 100);
	CHECK(n == PIPE_BYTES && !memcmp(got, want, sizeof(want)),
	      "pipe gave %d bytes back (want %d)", n, PIPE_BYTES);
	CHECK(write(pwdup, "x", 1) == 1 && read(pr, got, 1) == 1 && got[0] == 'x',
	      "the pipe does not carry new bytes");
	char b[64] = "";
	CHECK(read(sp1, b, sizeof(b)) == 11 && !memcmp(b, "ping-from-0", 11),
	      "socketpair end 1 got '%s'", b);
	CHECK(read(sp0, b, sizeof(b)) == 11 && !memcmp(b, "pong-from-1", 11),
	      "socketpair end 0 got '%.11s'", b);
	CHECK(write(sp0, "more", 4) == 4 && read(sp1, b, 4) == 4, "socketpair is not connected");
	const char *msgs[3] = {"a", "bb", "ccc"};
	for (int i = 0; i < 3; i++) {
		ssize_t r = recv(dg1, b, sizeof(b), MSG_DONTWAIT);
		CHECK(r == (ssize_t)strlen(msgs[i]) && !memcmp(b, msgs[i], (size_t)r),
		      "datagram %d is %zd bytes", i, r);
	}
	CHECK(read(fr, b, sizeof(b)) == 10 && !memcmp(b, "fifo bytes", 10), "FIFO bytes lost");
	CHECK(write(fw, "f", 1) == 1 && read(fr, b, 1) == 1, "the FIFO does not carry bytes");
	CHECK(write(dnull, "x", 1) == 1, "/dev/null");
	CHECK(read(dzero, b, 8) == 8 && !b[0] && !b[7], "/dev/zero");
	CHECK(read(drand, b, 8) == 8, "/dev/urandom");
	/* inotify: old watch descriptors, old masks */
	/* new names each time: the same checkpoint is verified after every restore */
	char name[32];
	snprintf(name, sizeof(name), "n%d-%ld", (int)getpid(), (long)time(NULL));
	snprintf(p, sizeof(p), "%s/watched/%s", dir, name);
	int c = open(p, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	close(c);
	snprintf(p, sizeof(p), "%s/w2/%s", dir, name);
	c = open(p, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	close(c);
	char evb[4096] __attribute__((aligned(8)));
	int r = 0; /* two events: each read returns whole events only */
	for (int t = 0; t < 3000; t++) {
		ssize_t k = read(ino, evb + r, sizeof(evb) - (size_t)r);
		if (k > 0)
			r += (int)k;
		const struct inotify_event *e = (const void *)evb;
		if (r >= (int)sizeof(*e) && r >= (int)(2 * sizeof(*e) + e->len))
			break;
		if (k <= 0)
			usleep(1000);
	}
	const struct inotify_event *e1 = (const void *)evb;
	CHECK(r >= (int)sizeof(*e1) && e1->wd == wd1 && (e1->mask & IN_CREATE) &&
		      !strcmp(e1->name, name),
	      "inotify: first event wd %d mask %x (%d bytes)", r > 0 ? e1->wd : -1,
	      r > 0 ? e1->mask : 0, r);
	const struct inotify_event *e2 = (const void *)(evb + sizeof(*e1) + e1->len);
	CHECK(r >= (int)(2 * sizeof(*e1) + e1->len) && e2->wd == wd3 && (e2->mask & IN_CREATE),
	      "inotify: second event (%d bytes)", r);
	/* the listeners take connections */
	snprintf(p, sizeof(p), "%s/sock", dir);
	CHECK(echo_through(ul, connect_unix(p, false)), "unix listener %s", p);
	CHECK(echo_through(al, connect_unix(abstract_name, true)), "abstract listener @%s",
	      abstract_name);
	int one = 0;
	socklen_t ol = sizeof(one);
	CHECK(getsockopt(tl, SOL_SOCKET, SO_REUSEADDR, &one, &ol) == 0 && one,
	      "SO_REUSEADDR lost");
	int cl = connect_tcp();
	CHECK(cl >= 0, "connect to our own TCP listener on port %u: %s", port, strerror(errno));
	CHECK(echo_through(tl, cl), "TCP listener on port %u", port);
	say("ok\n");
}

static __attribute__((noreturn)) void accept_mode(void)
{
	int l = listen_tcp(), c = connect_tcp(), a = -1;
	for (int t = 0; t < 5000 && a < 0; t++) {
		a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (a < 0)
			usleep(1000);
	}
	if (c < 0 || a < 0)
		die("accept");
	close(c);
	say("ready %u accepted %d\n", port, a);
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: zdtm-fds REPORT_FD DIR [accept]\n");
		return 2;
	}
	rep = atoi(argv[1]);
	snprintf(dir, sizeof(dir), "%s", argv[2]);
	if (argc > 3 && !strcmp(argv[3], "accept"))
		accept_mode();
	setup();
	say("ready %u\n", port);
	for (;;) {
		struct epoll_event evs[8];
		int n = epoll_wait(ep, evs, 8, -1);
		for (int k = 0; k < n; k++) {
			if (evs[k].data.u64 == 1)
				on_timer();
			if (evs[k].data.u64 != 4)
				continue;
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGUSR1)
					verify();
				else
					say("ticks %llu\n", ticks);
			}
		}
	}
}
