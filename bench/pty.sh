#!/usr/bin/env bash
# bench/pty.sh: output throughput and keystroke echo latency of a job's terminal, through
# ptyproxy against the program run directly on the pty, inside tmux, screen and dtach.
# Every peer is driven the same way: from one outer pty, drained by a plain reader (no
# terminal emulator in the measurement). Medians of REPS runs; ratios printed side by side.
#   PTYDEMO=path/to/ptydemo  (default: build-pty/helpers/ptydemo; later: `ckptenv run`)
#   SIZE_MB=200 REPS=3 KEYS=2000 bash bench/pty.sh
# Needs: tmux, screen, dtach (apt-get install tmux screen dtach), cc.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
PTYDEMO=${PTYDEMO:-$HERE/build-pty/helpers/ptydemo}
SIZE_MB=${SIZE_MB:-200}
REPS=${REPS:-3}
KEYS=${KEYS:-2000}
W=$(mktemp -d /tmp/ptybench.XXXXXX)
trap 'tmux -L ptybench kill-server 2>/dev/null || true; screen -wipe >/dev/null 2>&1 || true; rm -rf "$W"' EXIT

cat > "$W/ptybench.c" <<'EOF'
/* Outer-pty driver. tput MARK CMD...: run CMD on a new raw 50x200 pty, read the master until
 * MARK shows up, print MB/s of bytes read. echo N CMD...: run CMD (an echoing cat), type one
 * byte at a time and time until its echo is read back; print median and p99 in microseconds. */
#define _GNU_SOURCE
#include <pty.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
int main(int argc, char **argv)
{
	struct winsize ws = {50, 200, 0, 0};
	struct termios raw;
	memset(&raw, 0, sizeof(raw));
	cfmakeraw(&raw);
	int tput = !strcmp(argv[1], "tput");
	int m;
	pid_t pid = forkpty(&m, NULL, tput ? &raw : NULL, &ws);
	if (pid == 0) {
		setenv("TERM", "xterm-256color", 1);
		execvp(argv[3], argv + 3);
		_exit(127);
	}
	static char buf[1 << 16];
	if (tput) {
		const char *mark = argv[2];
		size_t ml = strlen(mark), keep = 0;
		double t0 = now();
		unsigned long long total = 0;
		for (;;) {
			ssize_t n = read(m, buf + keep, sizeof(buf) - keep);
			if (n <= 0) { fprintf(stderr, "ptybench: eof before mark\n"); return 1; }
			total += n;
			size_t len = keep + n;
			if (memmem(buf, len, mark, ml)) break;
			keep = len < ml ? len : ml - 1;
			memmove(buf, buf + len - keep, keep);
		}
		double t = now() - t0;
		printf("%.1f\n", total / t / 1e6);
	} else {
		int n = atoi(argv[2]);
		double *lat = calloc(n, sizeof(double));
		/* Wait until the job echoes. */
		for (int tries = 0;; tries++) {
			if (tries > 100) { fprintf(stderr, "ptybench: no echo\n"); return 1; }
			if (write(m, "z", 1) != 1) return 1;
			struct pollfd p = {m, POLLIN, 0};
			if (poll(&p, 1, 100) == 1) {
				ssize_t k = read(m, buf, sizeof(buf));
				if (k > 0 && memchr(buf, 'z', k)) break;
			}
		}
		usleep(300000);
		while (1) { struct pollfd p = {m, POLLIN, 0}; if (poll(&p, 1, 50) != 1) break; if (read(m, buf, sizeof(buf)) <= 0) break; }
		for (int i = 0; i < n; i++) {
			char c = 'a' + i % 26;
			double t0 = now();
			if (write(m, &c, 1) != 1) return 1;
			for (int got = 0; !got;) {
				ssize_t k = read(m, buf, sizeof(buf));
				if (k <= 0) return 1;
				got = memchr(buf, c, k) != NULL;
			}
			lat[i] = (now() - t0) * 1e6;
			usleep(1000);
		}
		qsort(lat, n, sizeof(double), cmpd);
		printf("%.0f %.0f\n", lat[n / 2], lat[(int)(n * 0.99)]);
	}
	kill(pid, SIGHUP);
	return 0;
}
EOF
cc -O2 -o "$W/ptybench" "$W/ptybench.c" -lutil

echo "generating $SIZE_MB MB of text from /dev/urandom..." >&2
head -c $((SIZE_MB * 3 / 4))M /dev/urandom | base64 -w 100 > "$W/data"
MARK=PTYBENCH_DONE_4711
JOB="cat $W/data; echo $MARK; sleep 2"
ECHOJOB="stty raw -echo; exec cat"

peer_cmd() { # peer job -> command line (as an array in CMD)
	case $1 in
	direct) CMD=(sh -c "$2") ;;
	ptyproxy) CMD=("$PTYDEMO" run "$W/pd.$RANDOM.sock" -- sh -c "$2") ;;
	tmux) CMD=(tmux -L ptybench -f /dev/null new-session -x 200 -y 50 sh -c "$2") ;;
	screen) CMD=(screen -q -c /dev/null sh -c "$2") ;;
	dtach) CMD=(dtach -c "$W/dtach.$RANDOM.sock" -E -z sh -c "$2") ;;
	esac
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

PEERS=(direct ptyproxy tmux screen dtach)
for p in "${PEERS[@]}"; do
	case $p in tmux|screen|dtach) command -v $p >/dev/null || { echo "missing $p" >&2; continue; } ;; esac
	for i in $(seq "$REPS"); do
		peer_cmd $p "$JOB" # a fresh socket name per run
		timeout 120 "$W/ptybench" tput "$MARK" "${CMD[@]}" || echo "$p: run $i failed" >&2
		sleep 0.3
	done > "$W/t.$p"
	declare -g "TP_$p=$(median < "$W/t.$p")"
	peer_cmd $p "$ECHOJOB"
	"$W/ptybench" echo "$KEYS" "${CMD[@]}" > "$W/e.$p" || echo "- -" > "$W/e.$p"
	declare -g "EC_$p=$(cat "$W/e.$p")"
	sleep 0.5
done

printf "%-9s %10s %12s %12s %12s\n" peer "MB/s" "vs direct" "echo med us" "echo p99 us"
for p in "${PEERS[@]}"; do
	v=TP_$p; e=EC_$p
	[ -n "${!v:-}" ] || { echo "$p: no result"; continue; }
	r=$(awk -v a="${!v}" -v b="$TP_direct" 'BEGIN {printf "%.2fx", a / b}')
	read -r med p99 <<< "${!e}"
	printf "%-9s %10s %12s %12s %12s\n" "$p" "${!v}" "$r" "$med" "$p99"
done
awk -v a="$TP_ptyproxy" -v b="${TP_tmux:-0}" 'BEGIN { if (b > 0) printf "ptyproxy / tmux throughput: %.2fx\n", a / b }'
