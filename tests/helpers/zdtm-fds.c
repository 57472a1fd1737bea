/* zdtm-style helper for the fd kinds of the checkpoint core: an epoll loop over a timerfd, an
 * eventfd, a pipe to itself with bytes in flight, a signalfd, an inotify instance, a listening
 * unix socket (by path and abstract) and a listening TCP socket on loopback, plus socketpairs
 * with queued bytes, a FIFO, /dev/null and friends and dup'ed fds.
 *
 *   zdtm-fds REPORT_FD DIR [accept|pending|pending-unix|udp|scm|epoll-stale|many N]
 *
 * Sets everything up below DIR (created), prints "ready PORT" on REPORT_FD, then loops in
 * epoll_wait. SIGUSR1 (through the signalfd) makes it verify its own fds and print "ok" or
 * "fail: WHAT"; SIGUSR2 prints "ticks N". With a refusal mode it only holds one fd the
 * checkpoint must refuse (a TCP connection it accepted, a UDP socket, a unix socket with an
 * fd in flight, an epoll registration on a closed fd number) and prints "ready PORT FD".
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
#include <poll.h>
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
#include <sys/random.h>
#include <sys/resource.h>
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
static int ep, tfd, efd, sem, semdup, pr, pw, pwdup, sfd, ino, wd1, wd3, ul, al, tl, sp0, sp1, dg0,
	dg1, ud, wpr, wsk, fr, fw, dnull, dzero, dzdup, drand;
static uint16_t port, port6;
static int tl6, trt, tbt, sh0, sh1, lg = -1;
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
/* A name no other process picks: pids repeat across pid namespaces and restores. */
static unsigned long long unique(void)
{
	unsigned long long v;
	if (getrandom(&v, sizeof(v), 0) != sizeof(v))
		die("getrandom");
	return v;
}

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
	socklen_t len =
		(socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (abstract ? 1 : 0));
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

static int listen_tcp6(void)
{
	int s = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	socklen_t al_ = sizeof(a);
	if (s < 0 || setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0 ||
	    bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 4) < 0 ||
	    getsockname(s, (struct sockaddr *)&a, &al_) < 0)
		die("tcp6 listener");
	port6 = ntohs(a.sin6_port);
	return s;
}

static int connect_tcp6(void)
{
	int c = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in6 a = {.sin6_family = AF_INET6,
				 .sin6_port = htons(port6),
				 .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (c >= 0)
			close(c);
		return -1;
	}
	return c;
}

static int connect_tcp(void)
{
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(port),
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
	/* Abstract names are per network namespace, which jobs share: in a job's pid namespace
	 * getpid() is 2 in every job, so pid and time collided between two jobs started in the
	 * same second (e2e fds and fds-nonroot under ctest -j), and a restore found its name
	 * taken by the other job. */
	snprintf(abstract_name, sizeof(abstract_name), "zdtm-fds-%016llx", unique());
	al = listen_unix(abstract_name, true, 3);
	tl = listen_tcp();
	reg(tl, EPOLLIN, 7);
	tl6 = listen_tcp6();
	/* an absolute wall-clock deadline in an hour, and a boot-time timer in 1000 s */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct itimerspec at = {{0, 0}, {now.tv_sec + 3600, now.tv_nsec}}, in = {{0, 0}, {1000, 0}};
	trt = timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC);
	tbt = timerfd_create(CLOCK_BOOTTIME, TFD_CLOEXEC | TFD_NONBLOCK);
	if (trt < 0 || tbt < 0 ||
	    timerfd_settime(trt, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &at, NULL) < 0 ||
	    timerfd_settime(tbt, 0, &in, NULL) < 0)
		die("realtime/boottime timerfds");
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
	/* widowed: a pipe whose writer and a socketpair whose peer closed, bytes left in them */
	int wp[2], ws[2];
	if (pipe2(wp, O_CLOEXEC) < 0 || write(wp[1], "tail", 4) != 4 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ws) < 0 ||
	    write(ws[1], "bye", 3) != 3)
		die("widowed pipe and socketpair");
	close(wp[1]);
	close(ws[1]);
	/* half closed: end 0 sent its last bytes and shut down writing */
	int sh[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sh) < 0 ||
	    write(sh[0], "last", 4) != 4 || shutdown(sh[0], SHUT_WR) < 0)
		die("half-closed socketpair");
	sh0 = sh[0];
	sh1 = sh[1];
	wpr = wp[0];
	wsk = ws[0];
	/* a "syslog" socket: datagrams to DIR/log, a socket outside the job, if there is one */
	struct sockaddr_un la = {.sun_family = AF_UNIX};
	if (strlen(dir) + 5 > sizeof(la.sun_path))
		die("directory name too long for a socket");
	memcpy(la.sun_path, dir, strlen(dir));
	memcpy(la.sun_path + strlen(dir), "/log", 5);
	struct stat lst;
	if (stat(la.sun_path, &lst) == 0 && S_ISSOCK(lst.st_mode)) {
		lg = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (lg < 0 || connect(lg, (struct sockaddr *)&la, sizeof(la)) < 0 ||
		    send(lg, "log-before", 10, 0) != 10)
			die("log socket");
	}
	/* a bound datagram socket with two datagrams queued from an unnamed sender */
	struct sockaddr_un ua = {.sun_family = AF_UNIX};
	if (strlen(dir) + 7 > sizeof(ua.sun_path))
		die("directory name too long for a socket");
	memcpy(ua.sun_path, dir, strlen(dir));
	memcpy(ua.sun_path + strlen(dir), "/dgram", 7);
	unlink(ua.sun_path);
	ud = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int snd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (ud < 0 || snd < 0 || bind(ud, (struct sockaddr *)&ua, sizeof(ua)) < 0 ||
	    sendto(snd, "dg-one", 6, 0, (struct sockaddr *)&ua, sizeof(ua)) != 6 ||
	    sendto(snd, "dg-2", 4, 0, (struct sockaddr *)&ua, sizeof(ua)) != 4)
		die("bound datagram socket");
	close(snd);
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

#define CHECK(cond, ...)                           \
	do {                                       \
		if (!(cond)) {                     \
			say("fail: " __VA_ARGS__); \
			say("\n");                 \
			return;                    \
		}                                  \
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

/* A connection to @listener from @client carries bytes. The client closes first, so the
 * TIME_WAIT is on its side, not on the listener's port (a restore from the same checkpoint
 * binds that port again, as the job did, without SO_REUSEADDR on the IPv6 one). */
static bool echo_through(int listener, int client)
{
	int a = -1;
	for (int t = 0; t < 5000 && a < 0 && client >= 0; t++) {
		a = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
		if (a < 0)
			usleep(1000);
	}
	char b[8] = "";
	bool ok = a >= 0 && write(client, "hello", 5) == 5 && read_exact(a, b, 5, 5000) == 5 &&
		  !memcmp(b, "hello", 5);
	if (client >= 0)
		close(client);
	if (a >= 0) {
		read_exact(a, b, 1, 5000); /* end of file: the client is gone */
		close(a);
	}
	return ok;
}

static int connect_unix(const char *name, bool abstract)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	memcpy(a.sun_path + (abstract ? 1 : 0), name, n);
	socklen_t len =
		(socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (abstract ? 1 : 0));
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
	CHECK(recv(ud, b, sizeof(b), MSG_DONTWAIT) == 6 && !memcmp(b, "dg-one", 6) &&
		      recv(ud, b, sizeof(b), MSG_DONTWAIT) == 4 && !memcmp(b, "dg-2", 4),
	      "datagrams queued on the bound socket are lost");
	CHECK(read(wpr, b, sizeof(b)) == 4 && !memcmp(b, "tail", 4) && read(wpr, b, 1) == 0,
	      "widowed pipe: not its bytes then end of file");
	CHECK(read(wsk, b, sizeof(b)) == 3 && !memcmp(b, "bye", 3) && read(wsk, b, 1) == 0,
	      "socketpair whose peer closed: not its bytes then end of file");
	CHECK(read(sh1, b, sizeof(b)) == 4 && !memcmp(b, "last", 4) && read(sh1, b, 1) == 0,
	      "half-closed socketpair: not its bytes then end of file");
	CHECK(send(sh0, "x", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE,
	      "half-closed socketpair: the shut down end can still send");
	CHECK(write(sh1, "back", 4) == 4 && read(sh0, b, 4) == 4 && !memcmp(b, "back", 4),
	      "half-closed socketpair: the other direction is closed too");
	CHECK(lg < 0 || send(lg, "log-after", 9, 0) == 9, "log socket: %s", strerror(errno));
	CHECK(read(fr, b, sizeof(b)) == 10 && !memcmp(b, "fifo bytes", 10), "FIFO bytes lost");
	CHECK(write(fw, "f", 1) == 1 && read(fr, b, 1) == 1, "the FIFO does not carry bytes");
	CHECK(write(dnull, "x", 1) == 1, "/dev/null");
	CHECK(read(dzero, b, 8) == 8 && !b[0] && !b[7], "/dev/zero");
	CHECK(read(drand, b, 8) == 8, "/dev/urandom");
	/* inotify: old watch descriptors, old masks */
	/* new names each time: the same checkpoint is verified after every restore */
	char name[32];
	snprintf(name, sizeof(name), "n%016llx", unique());
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
	struct itimerspec g;
	CHECK(timerfd_gettime(trt, &g) == 0 && g.it_value.tv_sec > 3000 && g.it_value.tv_sec < 3600,
	      "absolute CLOCK_REALTIME timerfd: %ld s left", (long)g.it_value.tv_sec);
	CHECK(timerfd_gettime(tbt, &g) == 0 && g.it_value.tv_sec > 900 && g.it_value.tv_sec < 1000,
	      "CLOCK_BOOTTIME timerfd: %ld s left", (long)g.it_value.tv_sec);
	int v6 = 0;
	socklen_t vl = sizeof(v6);
	CHECK(getsockopt(tl6, IPPROTO_IPV6, IPV6_V6ONLY, &v6, &vl) == 0 && v6, "IPV6_V6ONLY lost");
	int cl6 = connect_tcp6();
	CHECK(cl6 >= 0, "connect to our own TCP listener on [::1]:%u: %s", port6, strerror(errno));
	CHECK(echo_through(tl6, cl6), "TCP listener on [::1]:%u", port6);
	int one = 0;
	socklen_t ol = sizeof(one);
	CHECK(getsockopt(tl, SOL_SOCKET, SO_REUSEADDR, &one, &ol) == 0 && one, "SO_REUSEADDR lost");
	int cl = connect_tcp();
	CHECK(cl >= 0, "connect to our own TCP listener on port %u: %s", port, strerror(errno));
	CHECK(echo_through(tl, cl), "TCP listener on port %u", port);
	say("ok\n");
}

/* For bench/fds.sh: N fds, cycling eventfd, pipe (both ends, a byte in it), timerfd and
 * socketpair (both ends), each registered in one epoll set; "ready 0 N" when set up. */
static __attribute__((noreturn)) void many_mode(int n)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 64) {
		rl.rlim_cur = rl.rlim_max < (rlim_t)n + 64 ? rl.rlim_max : (rlim_t)n + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	int made = 0;
	struct itimerspec its = {{1000, 0}, {1000, 0}};
	for (int k = 0; made < n; k++) {
		int a = -1, b = -1, two[2];
		switch (k % 4) {
		case 0:
			a = eventfd(k, EFD_CLOEXEC);
			break;
		case 1:
			if (pipe2(two, O_CLOEXEC) == 0 && write(two[1], "p", 1) == 1)
				a = two[0], b = two[1];
			break;
		case 2:
			a = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
			if (a >= 0)
				timerfd_settime(a, 0, &its, NULL);
			break;
		case 3:
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, two) == 0)
				a = two[0], b = two[1];
			break;
		}
		if (a < 0)
			die("many fds");
		reg(a, EPOLLIN, (uint64_t)a);
		made += b >= 0 ? 2 : 1;
	}
	say("ready 0 %d\n", made);
	for (;;)
		pause();
}

/* Until @listener's accept queue holds the connection made to it. connect() returning says
 * the client got the SYN-ACK; the listener takes the final ACK in softirq context, which a busy
 * machine can run later (ksoftirqd): "ready" must not come before. */
static void wait_queued(int listener)
{
	struct pollfd p = {.fd = listener, .events = POLLIN};
	if (poll(&p, 1, 60000) != 1)
		die("no connection in the accept queue");
}

/* Hold one fd the checkpoint must refuse; print "ready PORT FD" with that fd. */
static __attribute__((noreturn)) void refuse_mode(const char *what)
{
	int bad = -1;
	if (!strcmp(what, "accept")) { /* a TCP connection the job accepted */
		int l = listen_tcp(), c = connect_tcp();
		for (int t = 0; t < 5000 && bad < 0 && c >= 0; t++) {
			bad = accept4(l, NULL, NULL, SOCK_CLOEXEC);
			if (bad < 0)
				usleep(1000);
		}
		if (c >= 0)
			close(c);
	} else if (!strcmp(what, "pending")) { /* a connection not accepted yet */
		bad = listen_tcp();
		if (connect_tcp() < 0)
			die("connect");
		wait_queued(bad);
	} else if (!strcmp(what, "pending-unix")) { /* the same on a unix listener */
		char p[300];
		snprintf(p, sizeof(p), "%s/sock-pending", dir);
		mkdir(dir, 0700);
		unlink(p);
		bad = listen_unix(p, false, 4);
		if (connect_unix(p, false) < 0)
			die("connect");
		wait_queued(bad);
	} else if (!strcmp(what, "udp")) {
		struct sockaddr_in a = {.sin_family = AF_INET,
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		bad = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (bad >= 0 && bind(bad, (struct sockaddr *)&a, sizeof(a)) < 0)
			die("udp bind");
	} else if (!strcmp(what, "scm")) { /* an fd in flight in a socketpair */
		int sp[2], passed = eventfd(0, EFD_CLOEXEC);
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0 || passed < 0)
			die("scm socketpair");
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(int))];
		} ctl = {0};
		struct iovec iov = {"x", 1};
		struct msghdr m = {.msg_iov = &iov,
				   .msg_iovlen = 1,
				   .msg_control = &ctl,
				   .msg_controllen = sizeof(ctl)};
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &passed, sizeof(int));
		if (sendmsg(sp[0], &m, 0) != 1)
			die("sendmsg");
		bad = sp[1];
	} else if (!strcmp(what, "epoll-stale")) { /* a registration on a closed fd number */
		int e = eventfd(0, EFD_CLOEXEC), keep = dup(e);
		bad = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = {.events = EPOLLIN};
		if (e < 0 || keep < 0 || bad < 0 || epoll_ctl(bad, EPOLL_CTL_ADD, e, &ev) < 0)
			die("epoll");
		close(e); /* the file lives on through keep: so does the registration */
	}
	if (bad < 0)
		die(what);
	say("ready %u %d\n", port, bad);
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: zdtm-fds REPORT_FD DIR "
				"[accept|pending|pending-unix|udp|scm|epoll-stale|many N]\n");
		return 2;
	}
	rep = atoi(argv[1]);
	snprintf(dir, sizeof(dir), "%s", argv[2]);
	if (argc > 4 && !strcmp(argv[3], "many"))
		many_mode(atoi(argv[4]));
	if (argc > 3)
		refuse_mode(argv[3]);
	setup();
	say("ready %u%s\n", port, lg >= 0 ? " log" : "");
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
