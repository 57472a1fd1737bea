#!/usr/bin/env bash
# bench/pty.sh: output throughput and keystroke echo latency of a job's terminal through
# `ckptenv run` (the real binary: supervisor + ptyproxy + attach client), against the same
# program run directly on a pty, inside tmux, screen and dtach.
#
# Every peer is driven the same way: started on one new raw 50x200 outer pty whose master a
# plain reader drains (no terminal emulator in the measurement).
#  - Throughput: the job prints a ready mark and waits for a newline; the driver sends it, starts
#    the clock and reads until the end mark. MB/s = payload bytes / time (the payload, not the
#    bytes read: tmux and screen repaint instead of passing every byte). Start-up of the peer is
#    not in the figure.
#  - Echo latency: the job is `stty raw -echo; exec cat`; one byte is typed every 1 ms and timed
#    until it is read back; median and p99 in microseconds.
# Medians of REPS throughput runs and of ECHO_REPS echo runs (the median of the runs' medians
# and of their p99s); ratios side by side. REPS=0 or ECHO_REPS=0 leaves that part out.
#   CKPTENV=path/to/ckptenv  (default: build/ckptenv/ckptenv, else build-*/ckptenv/ckptenv)
#   SIZE_MB=200 REPS=5 KEYS=2000 ECHO_REPS=3 PEERS="direct ckptenv tmux screen dtach" \
#     bash bench/pty.sh
#   CKPTENV_BASE=path/to/other/ckptenv adds the peer "base" (before/after a change, same run).
#   The peer "relay" is ckptenv with CKPTENV_ATTACH_RELAY=1: the attach client relays both ways
#   instead of handing its terminal to the supervisor.
# Needs: tmux, screen, dtach (apt-get install tmux screen dtach), cc. Work files go to
# /var/tmp (a job's /tmp is its own), or BENCH_DIR.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${CKPTENV:-}" ]; then
	for c in "$HERE"/build/ckptenv/ckptenv "$HERE"/build-*/ckptenv/ckptenv; do
		[ -x "$c" ] && { CKPTENV=$c; break; }
	done
fi
CKPTENV=${CKPTENV:?build ckptenv first or set CKPTENV}
SIZE_MB=${SIZE_MB:-200}
REPS=${REPS:-5}
KEYS=${KEYS:-2000}
ECHO_REPS=${ECHO_REPS:-3}
read -r -a PEERS <<< "${PEERS:-direct ckptenv ${CKPTENV_BASE:+base }tmux screen dtach}"
W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/ptybench.XXXXXX")
export CKPTENV_HOME=$W/home
cleanup() {
	tmux -L ptybench kill-server 2>/dev/null || true
	for j in "$CKPTENV_HOME"/jobs/*/; do
		[ -d "$j" ] && "$CKPTENV" rm --force "$(basename "$j")" >/dev/null 2>&1
	done
	screen -wipe >/dev/null 2>&1 || true
	rm -rf "$W"
}
trap cleanup EXIT

cat > "$W/ptybench.c" <<'EOF'
/* Outer-pty driver.
 * tput BYTES CMD...: run CMD on a new raw 50x200 pty; wait for the ready mark, send "\n", read
 *   until the end mark; print BYTES / elapsed in MB/s.
 * echo N CMD...: run CMD (an echoing cat), type one byte at a time and time until its echo is
 *   read back; print median and p99 in microseconds. */
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
#define READY "PTYBENCH_READY_4711"
#define DONE "PTYBENCH_DONE_4711"
static char buf[1 << 16];
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
/* Read until @mark shows up; returns the bytes read or -1. */
static long long read_until(int m, const char *mark)
{
	size_t ml = strlen(mark), keep = 0;
	long long total = 0;
	for (;;) {
		ssize_t n = read(m, buf + keep, sizeof(buf) - keep);
		if (n <= 0) return -1;
		total += n;
		size_t len = keep + n;
		if (memmem(buf, len, mark, ml)) return total;
		keep = len < ml ? len : ml - 1;
		memmove(buf, buf + len - keep, keep);
	}
}
int main(int argc, char **argv)
{
	struct winsize ws = {50, 200, 0, 0};
	struct termios raw;
	memset(&raw, 0, sizeof(raw));
	cfmakeraw(&raw);
	raw.c_cc[VMIN] = 1;
	int tput = !strcmp(argv[1], "tput");
	int m;
	if (argc < 4) return 2;
	pid_t pid = forkpty(&m, NULL, tput ? &raw : NULL, &ws);
	if (pid == 0) {
		setenv("TERM", "xterm-256color", 1);
		execvp(argv[3], argv + 3);
		_exit(127);
	}
	if (tput) {
		double bytes = atof(argv[2]);
		if (read_until(m, READY) < 0) { fprintf(stderr, "ptybench: eof before ready\n"); return 1; }
		usleep(100000); /* let the job reach its read and the peer settle */
		while (1) { struct pollfd p = {m, POLLIN, 0}; if (poll(&p, 1, 0) != 1 || read(m, buf, sizeof(buf)) <= 0) break; }
		double t0 = now();
		if (write(m, "\n", 1) != 1) return 1;
		if (read_until(m, DONE) < 0) { fprintf(stderr, "ptybench: eof before mark\n"); return 1; }
		printf("%.1f\n", bytes / (now() - t0) / 1e6);
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
	close(m);
	waitpid(pid, NULL, 0);
	return 0;
}
EOF
cc -O2 -o "$W/ptybench" "$W/ptybench.c" -lutil

echo "generating $SIZE_MB MB of text from /dev/urandom..." >&2
head -c $((SIZE_MB * 3 / 4))M /dev/urandom | base64 -w 100 > "$W/data"
BYTES=$(stat -c %s "$W/data")
# The marks are assembled by the job so that no echo of the command line can match them.
JOB="printf 'PTYBENCH_%s_4711\n' READY; read x; cat $W/data; printf 'PTYBENCH_%s_4711\n' DONE; sleep 1"
# dtach keeps a session after its client is gone: the echo job ends by itself.
ECHOJOB="stty raw -echo; exec timeout 60 cat"

N=0
peer_cmd() { # peer job -> command line (as an array in CMD); a fresh name per run
	N=$((N + 1))
	case $1 in
	direct) CMD=(sh -c "$2") ;;
	ckptenv) CMD=("$CKPTENV" run --name "b$N" -- sh -c "$2") ;;
	base) CMD=("$CKPTENV_BASE" run --name "b$N" -- sh -c "$2") ;;
	relay) CMD=(env CKPTENV_ATTACH_RELAY=1 "$CKPTENV" run --name "b$N" -- sh -c "$2") ;;
	tmux) CMD=(tmux -L ptybench -f /dev/null new-session -x 200 -y 50 sh -c "$2") ;;
	screen) CMD=(screen -q -S "ptybench$$.$N" -c /dev/null sh -c "$2") ;;
	dtach) CMD=(dtach -c "$W/dtach.$N.sock" -E -z sh -c "$2") ;;
	esac
}
after_run() { # stop what a run left behind (a detached ckptenv job, a tmux server)
	case $1 in
	ckptenv|base|relay) "$CKPTENV" rm --force "b$N" >/dev/null 2>&1 || true ;;
	tmux) tmux -L ptybench kill-server 2>/dev/null || true ;;
	screen) screen -S "ptybench$$.$N" -X quit >/dev/null 2>&1 || true ;;
	esac
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

have() { case $1 in tmux|screen|dtach) command -v "$1" >/dev/null ;; esac; }
for p in "${PEERS[@]}"; do have "$p" || echo "missing $p: skipped" >&2; : > "$W/t.$p"; done
# Throughput: round-robin over the peers, so that a change in the machine's load hits all alike.
for i in $(seq "$REPS"); do
	for p in "${PEERS[@]}"; do
		have "$p" || continue
		peer_cmd $p "$JOB"
		timeout 120 "$W/ptybench" tput "$BYTES" "${CMD[@]}" >> "$W/t.$p" ||
			echo "$p: run $i failed" >&2
		after_run $p
		sleep 0.3
	done
done
for p in "${PEERS[@]}"; do
	have "$p" || continue
	echo "$p MB/s: $(tr '\n' ' ' < "$W/t.$p")" >&2
	declare -g "TP_$p=$(median < "$W/t.$p")"
	: > "$W/e.$p"
done
# Echo latency: ECHO_REPS rounds, round-robin over the peers like the throughput runs.
for i in $(seq "$ECHO_REPS"); do
	for p in "${PEERS[@]}"; do
		have "$p" || continue
		peer_cmd $p "$ECHOJOB"
		timeout 120 "$W/ptybench" echo "$KEYS" "${CMD[@]}" >> "$W/e.$p" ||
			echo "$p: echo run $i failed" >&2
		after_run $p
		sleep 0.3
	done
done
for p in "${PEERS[@]}"; do
	have "$p" || continue
	echo "$p echo median/p99 us: $(tr '\n' ' ' < "$W/e.$p")" >&2
	declare -g "EC_$p=$(awk '{print $1}' "$W/e.$p" | median) $(awk '{print $2}' "$W/e.$p" | median)"
done

printf "%-9s %10s %12s %12s %12s\n" peer "MB/s" "vs direct" "echo med us" "echo p99 us"
for p in "${PEERS[@]}"; do
	v=TP_$p; e=EC_$p
	[ -n "${!v:-}${!e:-}" ] || { echo "$p: no result"; continue; }
	r=$(awk -v a="${!v}" -v b="${TP_direct:-0}" 'BEGIN {if (b > 0) printf "%.2fx", a / b; else print "-"}')
	read -r med p99 <<< "${!e}"
	printf "%-9s %10s %12s %12s %12s\n" "$p" "${!v}" "$r" "$med" "$p99"
done
awk -v a="${TP_ckptenv:-0}" -v b="${TP_tmux:-0}" 'BEGIN { if (a > 0 && b > 0) printf "ckptenv / tmux throughput: %.2fx\n", a / b }'
