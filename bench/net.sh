#!/usr/bin/env bash
# bench/net.sh: a job's TCP through netproxy against a direct loopback connection and socat.
#  - bulk throughput: one connection, SIZE_MB sent to a sink, 256 KiB writes (job -> upstream),
#    and SIZE_MB read from a source (upstream -> job);
#  - connection set-up rate: CONNS sequential connect + close (the sink accepts and closes),
#    and the CPU time (user + system, all processes of the run: client, proxy) per connect.
# Columns: "netproxy" is the library driven the way the supervisor drives it (a driver holds a
# struct netproxy and runs the client as a child under the filter ckptenv installs); "ckptenv"
# is the client run as a real job (`ckptenv run`). Medians of REPS runs, side by side.
#   BUILD=path/to/build (default: build-net, then /work/scratch-net/build)
#   CKPTENV_B=path/to/another/ckptenv: one more column, "ckptenv-B", that binary as the job's
#     supervisor in the same rounds (a before/after of a change, side by side)
#   SIZE_MB=2048 CONNS=2000 REPS=5 bash bench/net.sh
# Needs: socat (apt-get install socat), cc, libseccomp-dev, libxxhash-dev; root not needed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-}
if [ -z "$BUILD" ]; then
	for b in "$HERE/build-net" "$HERE/build" /work/scratch-net/build; do
		if [ -f "$b/netproxy/libcknetproxy.a" ]; then BUILD=$b; break; fi
	done
fi
[ -f "$BUILD/netproxy/libcknetproxy.a" ] || { echo "net.sh: build cknetproxy first (BUILD=...)" >&2; exit 1; }
command -v socat >/dev/null || { echo "net.sh: socat missing (apt-get install socat)" >&2; exit 1; }
SIZE_MB=${SIZE_MB:-2048}
CONNS=${CONNS:-2000}
REPS=${REPS:-5}
CKPTENV=${CKPTENV:-$BUILD/ckptenv/ckptenv}
[ -x "$CKPTENV" ] || { echo "net.sh: no ckptenv binary in $BUILD (CKPTENV=...)" >&2; exit 1; }
# Not under /tmp: a job's /tmp is its own, the client binary must be visible in the job.
W=$(mktemp -d /var/tmp/netbench.XXXXXX)
export CKPTENV_HOME=$W/home
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"' EXIT
JOBN=0

cat > "$W/npbench.c" <<'EOF'
/* npbench sink: listen on 127.0.0.1, print the port, then per connection read to EOF, close.
 * npbench acceptor: the same, but close each connection at once (for the set-up rate).
 * npbench source: the same, but per connection write MB MiB (first 4 bytes read: MB), close.
 * npbench send PORT MB: one connection, MB MiB in 256 KiB writes, shutdown, wait for the
 *   sink's close; print MB/s. npbench recv PORT MB: ask the source for MB MiB, read to EOF. npbench conns PORT N: N x (connect, close); print connects/s.
 * npbench proxy CMD...: hold a struct netproxy, run CMD under the filter, serve until it ends. */
#include "common/ck.h"
#include "netproxy/netproxy.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static struct sockaddr_in addr(int port) { struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)}; return a; }
static void *serve(void *arg) { int c = (int)(intptr_t)arg; static __thread char b[1 << 20]; while (read(c, b, sizeof(b)) > 0) ; close(c); return NULL; }
static void *source(void *arg)
{
	int c = (int)(intptr_t)arg; static __thread char b[256 << 10]; uint32_t mb = 0;
	if (read(c, &mb, 4) == 4) { size_t left = (size_t)mb << 20; memset(b, 'x', sizeof(b));
		while (left) { ssize_t n = write(c, b, CK_MIN(sizeof(b), left)); if (n <= 0) break; left -= n; } }
	close(c); return NULL;
}
int main(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "sink") || !strcmp(argv[1], "acceptor") || !strcmp(argv[1], "source"))) {
		bool acceptor = !strcmp(argv[1], "acceptor");
		void *(*fn)(void *) = !strcmp(argv[1], "source") ? source : serve;
		int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
		setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		struct sockaddr_in a = addr(0); socklen_t len = sizeof(a);
		if (bind(l, (void *)&a, sizeof(a)) || listen(l, 1024) || getsockname(l, (void *)&a, &len)) return 1;
		printf("%d\n", ntohs(a.sin_port)); fflush(stdout);
		for (;;) { int c = accept(l, NULL, NULL); if (c < 0) continue; if (acceptor) { close(c); continue; } pthread_t t; pthread_create(&t, NULL, fn, (void *)(intptr_t)c); pthread_detach(t); }
	}
	if (argc == 4 && !strcmp(argv[1], "send")) {
		struct sockaddr_in a = addr(atoi(argv[2]));
		size_t total = strtoull(argv[3], NULL, 0) << 20, chunk = 256 << 10, done = 0;
		char *b = malloc(chunk); for (size_t i = 0; i < chunk; i++) b[i] = (char)(i * 131 + 7);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(fd, (void *)&a, sizeof(a))) { perror("connect"); return 1; }
		double t0 = now();
		while (done < total) { ssize_t n = write(fd, b, CK_MIN(chunk, total - done)); if (n <= 0) return 1; done += n; }
		shutdown(fd, SHUT_WR); char c; (void)!read(fd, &c, 1);
		printf("%.1f\n", total / 1048576.0 / (now() - t0));
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "recv")) {
		struct sockaddr_in a = addr(atoi(argv[2]));
		uint32_t mb = (uint32_t)atoi(argv[3]); size_t got = 0; static char b[256 << 10];
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(fd, (void *)&a, sizeof(a))) { perror("connect"); return 1; }
		double t0 = now();
		if (write(fd, &mb, 4) != 4) return 1;
		for (;;) { ssize_t n = read(fd, b, sizeof(b)); if (n <= 0) break; got += n; }
		if (got != (size_t)mb << 20) { fprintf(stderr, "recv: %zu of %u MiB\n", got, mb); return 1; }
		printf("%.1f\n", got / 1048576.0 / (now() - t0));
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "conns")) {
		struct sockaddr_in a = addr(atoi(argv[2]));
		int n = atoi(argv[3]);
		double t0 = now();
		for (int i = 0; i < n; i++) {
			int fd = socket(AF_INET, SOCK_STREAM, 0);
			if (connect(fd, (void *)&a, sizeof(a))) { perror("connect"); return 1; }
			close(fd);
		}
		printf("%.0f\n", n / (now() - t0));
		return 0;
	}
	if (argc >= 3 && !strcmp(argv[1], "proxy")) {
		struct netproxy *np; int sv[2];
		/* Sessions last until the acceptor has closed its end too: a lagging acceptor on a
		 * loaded machine must not make the session limit the thing measured. */
		struct netproxy_config cfg = {.max_sessions = 65536};
		if (netproxy_new(&cfg, &np) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) return 1;
		pid_t pid = fork();
		if (pid == 0) {
			int nfd = netproxy_filter_install(NETPROXY_FILTER_NAMES | NETPROXY_FILTER_SOCKOPTS);
			if (nfd < 0 || ck_send_fds(sv[1], "n", 1, &nfd, 1) < 0) _exit(127);
			close(nfd); char c; if (read(sv[1], &c, 1) != 1) _exit(127);
			execvp(argv[2], argv + 2); _exit(127);
		}
		int nfd = -1; size_t k = 0; char c;
		if (ck_recv_fds(sv[0], &c, 1, &nfd, 1, &k) != 1 || k != 1 || netproxy_add_listener(np, nfd)) return 1;
		(void)!write(sv[0], "k", 1);
		for (;;) {
			struct pollfd p = {.fd = netproxy_fd(np), .events = POLLIN};
			poll(&p, 1, 50);
			if (netproxy_dispatch(np) < 0) return 1;
			int st; if (waitpid(pid, &st, WNOHANG) == pid) { netproxy_free(np); return WIFEXITED(st) ? WEXITSTATUS(st) : 1; }
		}
	}
	fprintf(stderr, "usage: npbench sink | acceptor | source | send PORT MB | recv PORT MB | conns PORT N | proxy CMD...\n");
	return 2;
}
EOF
cc -O2 -D_GNU_SOURCE -I"$HERE" -o "$W/npbench" "$W/npbench.c" "$BUILD/netproxy/libcknetproxy.a" \
	"$BUILD/common/libck_common.a" -lseccomp -lxxhash -lpthread
B=$W/npbench

"$B" sink > "$W/sink.port" & PIDS+=($!)
"$B" acceptor > "$W/acc.port" & PIDS+=($!)
"$B" source > "$W/src.port" & PIDS+=($!)
for _ in $(seq 50); do [ -s "$W/sink.port" ] && [ -s "$W/acc.port" ] && [ -s "$W/src.port" ] && break; sleep 0.1; done
SINK=$(cat "$W/sink.port"); ACC=$(cat "$W/acc.port"); SRC=$(cat "$W/src.port")
# socat cannot tell the port it got: try ports below the ephemeral range until one listens.
socat_to() {
	local port pid i
	for i in $(seq 20); do
		port=$(( 20000 + RANDOM % 12000 ))
		socat TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork TCP:127.0.0.1:$1 2>/dev/null &
		pid=$!
		for _ in $(seq 20); do
			ss -ltnH "( sport = :$port )" | grep -q . && { PIDS+=($pid); SOCAT_PORT=$port; return 0; }
			kill -0 $pid 2>/dev/null || break
			sleep 0.05
		done
		kill $pid 2>/dev/null || true
	done
	echo "net.sh: cannot start socat" >&2; exit 1
}
socat_to "$SINK"; SOCATP=$SOCAT_PORT
socat_to "$ACC"; SOCATA=$SOCAT_PORT
socat_to "$SRC"; SOCATS=$SOCAT_PORT

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# A job of its own per run (a fresh supervisor, as `ckptenv run` gives).
job() { JOBN=$((JOBN + 1)); CKPTENV_NET_MAX_SESSIONS=65536 "$CKPTENV" run --name "b$JOBN" -- "$@" </dev/null; }
jobb() { JOBN=$((JOBN + 1)); CKPTENV_NET_MAX_SESSIONS=65536 "$CKPTENV_B" run --name "b$JOBN" -- "$@" </dev/null; }
CKPTENV_B=${CKPTENV_B:-}
[ -z "$CKPTENV_B" ] || [ -x "$CKPTENV_B" ] || { echo "net.sh: CKPTENV_B=$CKPTENV_B is not executable" >&2; exit 1; }
# One round = one run of each variant, so the variants see the same machine load; REPS rounds.
# cpu: user + system seconds of the whole run (every process), for the connects.
cpu() {
	local TIMEFORMAT='%3U %3S'
	{ time "$@" >/dev/null; } 2> "$W/t"
	awk '{printf "%.1f\n", ($1 + $2) * 1e6 / '"$CONNS"'}' "$W/t"
}
# The same per MiB sent (client, and proxy when there is one; the sink is not counted).
# The same for the connects of a ckptenv job (supervisor binary $1): the client's time, taken in
# the job, plus the supervisor daemon's (/proc/PID/stat around the connects; the job waits for
# a go file, then for a bye file, so both samples fall while the supervisor runs).
cpuc() {
	local n=cpu$RANDOM sp='' t0 t1 rp
	rm -f "$W/go" "$W/done" "$W/bye" "$W/cli"
	CKPTENV_NET_MAX_SESSIONS=65536 "$1" run --name "$n" -- bash -c "
		until [ -e $W/go ]; do sleep 0.01; done
		TIMEFORMAT='%3U %3S'; { time $B conns $ACC $CONNS >/dev/null; } 2> $W/cli.tmp
		mv $W/cli.tmp $W/cli; until [ -e $W/bye ]; do sleep 0.01; done" </dev/null >/dev/null &
	rp=$!
	for _ in $(seq 600); do
		sp=$(sed -n "s/.*supervisor $n\[\([0-9]*\)\].*/\1/p" "$CKPTENV_HOME/jobs/$n/log" \
			2>/dev/null | head -1)
		[ -n "$sp" ] && break
		sleep 0.05
	done
	[ -n "$sp" ] || { echo "net.sh: no supervisor pid in $CKPTENV_HOME/jobs/$n/log" >&2; exit 1; }
	t0=$(awk '{print $14 + $15}' "/proc/$sp/stat")
	touch "$W/go"
	until [ -e "$W/cli" ]; do sleep 0.01; done
	t1=$(awk '{print $14 + $15}' "/proc/$sp/stat")
	touch "$W/bye"
	wait "$rp"
	awk -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" -v n="$CONNS" \
		'{printf "%.1f\n", ($1 + $2 + (b - a) / hz) * 1e6 / n}' "$W/cli"
}
cpumb() {
	local TIMEFORMAT='%3U %3S'
	{ time "$@" >/dev/null; } 2> "$W/t"
	awk '{printf "%.1f\n", ($1 + $2) * 1e6 / '"$SIZE_MB"'}' "$W/t"
}
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
: > "$W/r"
for i in $(seq "$REPS"); do
	echo "send d $("$B" send "$SINK" "$SIZE_MB")" >> "$W/r"
	echo "send p $("$B" proxy "$B" send "$SINK" "$SIZE_MB")" >> "$W/r"
	echo "send c $(job "$B" send "$SINK" "$SIZE_MB")" >> "$W/r"
	[ -z "$CKPTENV_B" ] || echo "send b $(jobb "$B" send "$SINK" "$SIZE_MB")" >> "$W/r"
	echo "send s $("$B" send "$SOCATP" "$SIZE_MB")" >> "$W/r"
	echo "recv d $("$B" recv "$SRC" "$SIZE_MB")" >> "$W/r"
	echo "recv p $("$B" proxy "$B" recv "$SRC" "$SIZE_MB")" >> "$W/r"
	echo "recv c $(job "$B" recv "$SRC" "$SIZE_MB")" >> "$W/r"
	[ -z "$CKPTENV_B" ] || echo "recv b $(jobb "$B" recv "$SRC" "$SIZE_MB")" >> "$W/r"
	echo "recv s $("$B" recv "$SOCATS" "$SIZE_MB")" >> "$W/r"
	echo "conn d $("$B" conns "$ACC" "$CONNS")" >> "$W/r"
	echo "conn p $("$B" proxy "$B" conns "$ACC" "$CONNS")" >> "$W/r"
	echo "conn c $(job "$B" conns "$ACC" "$CONNS")" >> "$W/r"
	[ -z "$CKPTENV_B" ] || echo "conn b $(jobb "$B" conns "$ACC" "$CONNS")" >> "$W/r"
	# socat forks per connection and manages only a few per second: fewer connects for it.
	echo "conn s $("$B" conns "$SOCATA" "$(( CONNS / 20 + 1 ))")" >> "$W/r"
	echo "cpu d $(cpu "$B" conns "$ACC" "$CONNS")" >> "$W/r"
	echo "cpu p $(cpu "$B" proxy "$B" conns "$ACC" "$CONNS")" >> "$W/r"
	echo "cpu c $(cpuc "$CKPTENV")" >> "$W/r"
	[ -z "$CKPTENV_B" ] || echo "cpu b $(cpuc "$CKPTENV_B")" >> "$W/r"
	echo "cpumb d $(cpumb "$B" send "$SINK" "$SIZE_MB")" >> "$W/r"
	echo "cpumb p $(cpumb "$B" proxy "$B" send "$SINK" "$SIZE_MB")" >> "$W/r"
done
m() { awk -v k="$1" -v v="$2" '$1 == k && $2 == v {print $3}' "$W/r" | median; }

echo "net.sh: $SIZE_MB MiB bulk, $CONNS connects, median of $REPS rounds ($(nproc) cpus, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-22s %10s %10s %10s %10s   %s\n' "" direct netproxy ckptenv socat "netproxy/direct ckptenv/direct netproxy/socat"
for k in send recv conn; do
	case $k in send) l="job->up MB/s" ;; recv) l="up->job MB/s" ;; conn) l="connects/s" ;; esac
	D=$(m $k d); P=$(m $k p); C=$(m $k c); S=$(m $k s)
	printf '%-22s %10s %10s %10s %10s   %s %s %s\n' "$l" "$D" "$P" "$C" "$S" \
		"$(ratio "$P" "$D")" "$(ratio "$C" "$D")" "$(ratio "$P" "$S")"
	[ -z "$CKPTENV_B" ] || printf '%-22s %10s %10s %10s %10s   %s %s\n' "  $l" "" "" "$(m $k b)" \
		"(B)" "ckptenv-B/direct $(ratio "$(m $k b)" "$D")" "ckptenv/ckptenv-B $(ratio "$C" "$(m $k b)")"
done
printf '%-22s %10s %10s %10s %10s   %s\n' "CPU us per connect" "$(m cpu d)" "$(m cpu p)" "$(m cpu c)" - \
	"$(ratio "$(m cpu d)" "$(m cpu p)") (direct/netproxy) $(ratio "$(m cpu d)" "$(m cpu c)") (direct/ckptenv)"
[ -z "$CKPTENV_B" ] || printf '%-22s %10s %10s %10s %10s   %s\n' "  CPU us per connect" "" "" \
	"$(m cpu b)" "(B)" "$(ratio "$(m cpu c)" "$(m cpu b)") (ckptenv/ckptenv-B)"
printf '%-22s %10s %10s %10s %10s   %s\n' "CPU us per MiB sent" "$(m cpumb d)" "$(m cpumb p)" - - \
	"$(ratio "$(m cpumb d)" "$(m cpumb p)") (direct/netproxy)"
echo "(CPU: user + system time of the client, and of the proxy driver or the job's supervisor"
echo " with it; the sink's and acceptor's are not counted. The throughput and rate ratios depend"
echo " on the machine's load: the proxied path needs one more runnable process per byte and per"
echo " connect.)"
