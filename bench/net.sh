#!/usr/bin/env bash
# bench/net.sh: a job's TCP through netproxy against a direct loopback connection and socat.
#  - bulk throughput: one connection, SIZE_MB sent to a sink, 256 KiB writes;
#  - connection set-up rate: CONNS sequential connect + close (the sink accepts and closes).
# The proxied runs use the library the way the supervisor will: a driver process holds a
# struct netproxy and runs the client as a child under the filter. Medians of REPS runs.
#   BUILD=path/to/build (default: build-net, then /work/scratch-net/build)
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
W=$(mktemp -d /tmp/netbench.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"' EXIT

cat > "$W/npbench.c" <<'EOF'
/* npbench sink: listen on 127.0.0.1, print the port, then per connection read to EOF, close.
 * npbench acceptor: the same, but close each connection at once (for the set-up rate).
 * npbench send PORT MB: one connection, MB MiB in 256 KiB writes, shutdown, wait for the
 *   sink's close; print MB/s. npbench conns PORT N: N x (connect, close); print connects/s.
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
int main(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "sink") || !strcmp(argv[1], "acceptor"))) {
		bool acceptor = !strcmp(argv[1], "acceptor");
		int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
		setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		struct sockaddr_in a = addr(0); socklen_t len = sizeof(a);
		if (bind(l, (void *)&a, sizeof(a)) || listen(l, 1024) || getsockname(l, (void *)&a, &len)) return 1;
		printf("%d\n", ntohs(a.sin_port)); fflush(stdout);
		for (;;) { int c = accept(l, NULL, NULL); if (c < 0) continue; if (acceptor) { close(c); continue; } pthread_t t; pthread_create(&t, NULL, serve, (void *)(intptr_t)c); pthread_detach(t); }
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
		if (netproxy_new(NULL, &np) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) return 1;
		pid_t pid = fork();
		if (pid == 0) {
			int nfd = netproxy_filter_install(0);
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
	fprintf(stderr, "usage: npbench sink | send PORT MB | conns PORT N | proxy CMD...\n");
	return 2;
}
EOF
cc -O2 -D_GNU_SOURCE -I"$HERE" -o "$W/npbench" "$W/npbench.c" "$BUILD/netproxy/libcknetproxy.a" \
	"$BUILD/common/libck_common.a" -lseccomp -lxxhash -lpthread
B=$W/npbench

"$B" sink > "$W/sink.port" & PIDS+=($!)
for _ in $(seq 50); do [ -s "$W/sink.port" ] && break; sleep 0.1; done
SINK=$(cat "$W/sink.port")
"$B" acceptor > "$W/acc.port" & PIDS+=($!)
for _ in $(seq 50); do [ -s "$W/acc.port" ] && break; sleep 0.1; done
ACC=$(cat "$W/acc.port")
SOCATP=$(( (SINK % 20000) + 30000 ))
SOCATA=$(( SOCATP + 1 ))
socat TCP-LISTEN:$SOCATP,bind=127.0.0.1,reuseaddr,fork TCP:127.0.0.1:$SINK & PIDS+=($!)
socat TCP-LISTEN:$SOCATA,bind=127.0.0.1,reuseaddr,fork TCP:127.0.0.1:$ACC & PIDS+=($!)
sleep 0.5

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() { local i; for i in $(seq "$REPS"); do "$@"; done | median; }

echo "net.sh: $SIZE_MB MiB bulk, $CONNS connects, median of $REPS ($(nproc) cpus, $(uname -r))"
D=$(run "$B" send "$SINK" "$SIZE_MB")
P=$(run "$B" proxy "$B" send "$SINK" "$SIZE_MB")
S=$(run "$B" send "$SOCATP" "$SIZE_MB")
printf '%-22s %10s %10s %10s   %s\n' "" direct netproxy socat "netproxy/direct netproxy/socat"
printf '%-22s %10s %10s %10s   %.2f %.2f\n' "throughput MB/s" "$D" "$P" "$S" \
	"$(echo "$P / $D" | bc -l)" "$(echo "$P / $S" | bc -l)"
CD=$(run "$B" conns "$ACC" "$CONNS")
CP=$(run "$B" proxy "$B" conns "$ACC" "$CONNS")
# socat forks per connection and manages only a few per second here: fewer connects for it.
CS=$(run "$B" conns "$SOCATA" "$(( CONNS / 20 + 1 ))")
printf '%-22s %10s %10s %10s   %.2f %.2f\n' "connects/s" "$CD" "$CP" "$CS" \
	"$(echo "$CP / $CD" | bc -l)" "$(echo "$CP / $CS" | bc -l)"
