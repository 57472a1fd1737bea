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
#   COST=1 adds context switches and CPU time per keystroke (perf stat), which load does not skew.
#   The peer "relay" is ckptenv with CKPTENV_ATTACH_RELAY=1: the attach client relays both ways
#   instead of handing its terminal to the supervisor. The peer "floor" is the driver's own
#   one-process proxy (blocking copies between a new pty and the outer one): the least any proxy
#   holding the job's terminal costs.
#   Every throughput run also measures the flood's CPU and context switches per MB by process
#   role (/proc, see scan() below); SYSCALLS=1 adds a run per peer under `perf trace -s` for the
#   syscalls per MB by role.
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
	tmux -L "ptybench$$" kill-server 2>/dev/null || true
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
 *   read back; print median and p99 in microseconds.
 * With PTYBENCH_COST=FILE, tput also writes to FILE the CPU time and context switches each
 *   process spent between the newline and the end mark (see scan()).
 * proxy CMD...: the least a proxy holding the job's terminal can do (the peer "floor"): run CMD
 *   on a new pty with our terminal's modes and size, one process copying stdin to it and its
 *   output to stdout with plain blocking reads and writes; no log, no screen, no socket. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
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
/* The processes of a run, from /proc: the driver, the peer (its children, and daemons such as
 * the supervisor or a tmux server, whose command line holds PTYBENCH_MARK), their descendants,
 * and the kworkers (whole machine: the pty's flip-buffer work runs there). CPU is the schedstat
 * run time of every thread plus the cutime+cstime of reaped children (the job's cat ends
 * before the end mark); switches are voluntary + involuntary, of live threads only. */
struct proc { int pid, ppid, tree, kworker; char comm[32]; unsigned long long ns, vcsw, icsw; };
#define NPROC 16384
static struct proc P0[NPROC], P1[NPROC];
static int readf(const char *path, char *b, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return -1;
	ssize_t n = read(fd, b, cap - 1);
	close(fd);
	if (n < 0) return -1;
	b[n] = 0;
	return (int)n;
}
static void task_sum(struct proc *p)
{
	char path[96], b[4096];
	snprintf(path, sizeof(path), "/proc/%d/task", p->pid);
	DIR *d = opendir(path);
	for (struct dirent *e; d && (e = readdir(d));) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", p->pid, e->d_name);
		if (readf(path, b, sizeof(b)) > 0) p->ns += strtoull(b, NULL, 10);
		snprintf(path, sizeof(path), "/proc/%d/task/%s/status", p->pid, e->d_name);
		char *v = readf(path, b, sizeof(b)) > 0 ? strstr(b, "voluntary_ctxt_switches:") : NULL;
		char *nv = v ? strstr(v + 1, "nonvoluntary_ctxt_switches:") : NULL;
		if (v && nv) p->vcsw += strtoull(v + 24, NULL, 10), p->icsw += strtoull(nv + 27, NULL, 10);
	}
	if (d) closedir(d);
}
static int scan(struct proc *P, const char *mark, int self)
{
	int n = 0;
	char path[64], b[8192];
	DIR *d = opendir("/proc");
	for (struct dirent *e; d && n < NPROC && (e = readdir(d));) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
		struct proc *p = &P[n];
		memset(p, 0, sizeof(*p));
		p->pid = atoi(e->d_name);
		snprintf(path, sizeof(path), "/proc/%d/stat", p->pid);
		char *c, *r;
		if (readf(path, b, sizeof(b)) <= 0 || !(c = strchr(b, '(')) || !(r = strrchr(b, ')'))) continue;
		snprintf(p->comm, sizeof(p->comm), "%.*s", (int)(r - c - 1), c + 1);
		unsigned long long f[16] = {0}; /* fields 4.. of stat */
		char *s = r + 3;
		for (int i = 0; i < 16 && *s; i++) f[i] = strtoull(s, &s, 10);
		p->ppid = (int)f[0];
		p->ns = (f[12] + f[13]) * 10000000ull; /* cutime + cstime, in 1/100 s */
		p->kworker = !strncmp(p->comm, "kworker", 7);
		snprintf(path, sizeof(path), "/proc/%d/cmdline", p->pid);
		int k = readf(path, b, sizeof(b));
		p->tree = p->pid == self || (k > 0 && memmem(b, k, mark, strlen(mark)));
		n++;
	}
	if (d) closedir(d);
	for (int changed = 1; changed;) { /* descendants */
		changed = 0;
		for (int i = 0; i < n; i++)
			for (int j = 0; j < n && !P[i].tree; j++)
				if (P[j].tree && P[j].pid == P[i].ppid) P[i].tree = changed = 1;
	}
	for (int i = 0; i < n; i++)
		if (P[i].tree || P[i].kworker) task_sum(&P[i]);
	return n;
}
/* One line per process: role pid comm cpu_ns voluntary_switches involuntary_switches. */
static void cost_report(const char *file, int n0, int n1, int self)
{
	FILE *f = fopen(file, "w");
	if (!f) return;
	for (int i = 0; i < n1; i++) {
		struct proc *p = &P1[i], *q = NULL;
		if (!p->tree && !p->kworker) continue;
		for (int j = 0; j < n0 && !q; j++) if (P0[j].pid == p->pid) q = &P0[j];
		const char *role = p->pid == self ? "reader" : p->kworker ? "kworker" :
			!strcmp(p->comm, "sh") || !strcmp(p->comm, "cat") || !strcmp(p->comm, "sleep") ? "job" :
			p->ppid == self ? "client" : "server";
		for (char *c = p->comm; *c; c++) if (*c == ' ') *c = '_';
		fprintf(f, "%s %d %s %llu %llu %llu\n", role, p->pid, p->comm, p->ns - (q ? q->ns : 0),
			p->vcsw - (q ? q->vcsw : 0), p->icsw - (q ? q->icsw : 0));
	}
	fclose(f);
}
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
static int proxy(char **argv)
{
	struct termios t, raw;
	struct winsize ws;
	int m;
	if (tcgetattr(0, &t) < 0 || ioctl(0, TIOCGWINSZ, &ws) < 0) return 1;
	pid_t pid = forkpty(&m, NULL, &t, &ws);
	if (pid == 0) { execvp(argv[0], argv); _exit(127); }
	raw = t;
	cfmakeraw(&raw);
	tcsetattr(0, TCSANOW, &raw);
	for (;;) {
		struct pollfd p[2] = {{0, POLLIN, 0}, {m, POLLIN, 0}};
		if (poll(p, 2, -1) < 0) continue;
		for (int i = 0; i < 2; i++) {
			if (!p[i].revents) continue;
			ssize_t n = read(p[i].fd, buf, sizeof(buf));
			if (n <= 0) { tcsetattr(0, TCSANOW, &t); return 0; }
			for (ssize_t o = 0, k; o < n; o += k)
				if ((k = write(i ? 1 : m, buf + o, n - o)) <= 0) return 1;
		}
	}
}
int main(int argc, char **argv)
{
	if (argc > 2 && !strcmp(argv[1], "proxy")) return proxy(argv + 2);
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
		const char *cost = getenv("PTYBENCH_COST"), *mark = getenv("PTYBENCH_MARK");
		int n0 = cost && mark ? scan(P0, mark, getpid()) : 0;
		double t0 = now();
		if (write(m, "\n", 1) != 1) return 1;
		if (read_until(m, DONE) < 0) { fprintf(stderr, "ptybench: eof before mark\n"); return 1; }
		double t1 = now();
		if (cost && mark) cost_report(cost, n0, scan(P1, mark, getpid()), getpid());
		printf("%.1f\n", bytes / (t1 - t0) / 1e6);
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
	floor) CMD=("$W/ptybench" proxy sh -c "$2") ;;
	tmux) CMD=(tmux -L "ptybench$$" -f /dev/null new-session -x 200 -y 50 sh -c "$2") ;;
	screen) CMD=(screen -q -S "ptybench$$.$N" -c /dev/null sh -c "$2") ;;
	dtach) CMD=(dtach -c "$W/dtach.$N.sock" -E -z sh -c "$2") ;;
	esac
}
after_run() { # stop what a run left behind (a detached ckptenv job, a tmux server)
	case $1 in
	ckptenv|base|relay) "$CKPTENV" rm --force "b$N" >/dev/null 2>&1 || true ;;
	tmux) tmux -L "ptybench$$" kill-server 2>/dev/null || true ;;
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
		PTYBENCH_COST=$W/c.$p.$i PTYBENCH_MARK=$W \
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
# Flood cost per MB of payload, from the throughput runs (the driver's /proc snapshots around
# each): CPU ms and context switches of each process role, the median over the runs. Roles:
# reader (the driver, draining the outer pty), client (the peer's process on the outer pty),
# server (the peer's daemon: supervisor + job init, tmux/screen/dtach server), job (sh, cat),
# total (those four), kworker (all of the machine's: the pty's flip-buffer work, plus the noise
# of everything else running).
ROLES="reader client server job total kworker"
for p in "${PEERS[@]}"; do
	have "$p" || continue
	for f in "$W"/c."$p".*; do
		[ -f "$f" ] || continue
		awk -v mb="$(awk -v b="$BYTES" 'BEGIN {print b / 1e6}')" -v roles="$ROLES" '
			{ ns[$1] += $4; vs[$1] += $5; is[$1] += $6
			  if ($1 != "kworker") { ns["total"] += $4; vs["total"] += $5; is["total"] += $6 } }
			END { n = split(roles, r, " "); for (i = 1; i <= n; i++)
				printf "%s %.2f %.0f %.0f\n", r[i], ns[r[i]] / 1e6 / mb, vs[r[i]] / mb, is[r[i]] / mb }' "$f"
	done > "$W/cost.$p"
	for r in $ROLES; do
		col() { awk -v r="$r" -v c="$1" '$1 == r {print $c}' "$W/cost.$p" | median; }
		declare -g "FC_${p}_$r=$(col 2)/$(col 3)+$(col 4)"
	done
done

# Syscalls per MB (SYSCALLS=1, needs perf): one more run of each peer under `perf trace -s`,
# which counts every process's syscalls; the roles come from the run's /proc snapshot. Tracing
# slows every syscall, so the batching (bytes per read) differs from an untraced run: these are
# counts to compare between peers, not the untraced ones.
if [ "${SYSCALLS:-0}" = 1 ] && command -v perf >/dev/null; then
	for p in "${PEERS[@]}"; do
		have "$p" || continue
		peer_cmd $p "$JOB"
		rm -f "$W/sc.$p"
		PTYBENCH_COST=$W/sc.$p PTYBENCH_MARK=$W perf trace -s -o "$W/trace.$p" \
			timeout 600 "$W/ptybench" tput "$BYTES" "${CMD[@]}" > /dev/null ||
			echo "$p: traced run failed" >&2
		after_run $p
		sleep 0.3
		[ -s "$W/sc.$p" ] || continue
		# perf trace -s: " comm (pid), N events, ..." then one line per syscall: name calls ...
		# A cat or sh that ended before the snapshot is the job's.
		awk -v mb="$(awk -v b="$BYTES" 'BEGIN {print b / 1e6}')" '
			FNR == NR { role[$2] = $1; next }
			/^ .*\([0-9]+\), [0-9]+ events/ {
				match($0, /\([0-9]+\)/)
				pid = substr($0, RSTART + 1, RLENGTH - 2)
				if (!(pid in role) && ($1 == "cat" || $1 == "sh")) role[pid] = "job"
				next }
			pid != "" && NF >= 3 && $2 ~ /^[0-9]+$/ && (pid in role) {
				c[role[pid] " " $1] += $2; t[role[pid]] += $2 }
			END { for (r in t) { printf "%s %.0f:", r, t[r] / mb
				for (k in c) { split(k, a, " ")
					if (a[1] == r && c[k] / mb >= 1) printf " %s %.0f", a[2], c[k] / mb }
				printf "\n" } }' "$W/sc.$p" "$W/trace.$p" > "$W/syscalls.$p"
	done
fi

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

# Cost per keystroke (COST=1, needs perf): context switches and CPU time of the whole tree
# (driver, peer, job) per key, from the difference of a 300-key and a 1300-key run, so start-up
# is not in it. Unlike wall-clock latency, it does not swing with the machine's load.
if [ "${COST:-0}" = 1 ] && command -v perf >/dev/null; then
	for p in "${PEERS[@]}"; do
		have "$p" || continue
		for k in 300 1300; do
			peer_cmd $p "$ECHOJOB"
			perf stat -x, -e context-switches,task-clock -o "$W/perf.$p.$k" \
				timeout 120 "$W/ptybench" echo "$k" "${CMD[@]}" > /dev/null || true
			after_run $p
			sleep 0.3
		done
		val() { awk -F, -v e="$2" '$3 ~ e {print $1}' "$W/perf.$p.$1"; }
		declare -g "CO_$p=$(awk -v a="$(val 300 context)" -v b="$(val 1300 context)" \
			-v c="$(val 300 task-clock)" -v d="$(val 1300 task-clock)" \
			'BEGIN {printf "%.2f %.1f", (b - a) / 1000, (d - c)}')" # task-clock ms/1000 keys = us/key
	done
fi

printf "%-9s %10s %12s %12s %12s\n" peer "MB/s" "vs direct" "echo med us" "echo p99 us"
for p in "${PEERS[@]}"; do
	v=TP_$p; e=EC_$p
	[ -n "${!v:-}${!e:-}" ] || { echo "$p: no result"; continue; }
	r=$(awk -v a="${!v}" -v b="${TP_direct:-0}" 'BEGIN {if (b > 0) printf "%.2fx", a / b; else print "-"}')
	read -r med p99 <<< "${!e}"
	printf "%-9s %10s %12s %12s %12s\n" "$p" "${!v}" "$r" "$med" "$p99"
done
if [ "${COST:-0}" = 1 ]; then
	printf "%-9s %16s %16s\n" peer "switches/key" "cpu us/key"
	for p in "${PEERS[@]}"; do
		c=CO_$p
		[ -n "${!c:-}" ] && printf "%-9s %16s %16s\n" "$p" ${!c}
	done
fi
if [ "$REPS" -gt 0 ]; then
	echo "flood cost per MB of payload: CPU ms / voluntary+involuntary context switches"
	echo "(medians of $REPS runs; kworker: the whole machine's)"
	printf "%-9s" peer; for r in $ROLES; do printf " %15s" "$r"; done; echo
	for p in "${PEERS[@]}"; do
		have "$p" || continue
		printf "%-9s" "$p"; for r in $ROLES; do v=FC_${p}_$r; printf " %15s" "${!v:-}"; done; echo
	done
fi
if [ "${SYSCALLS:-0}" = 1 ]; then
	echo "syscalls per MB by role, traced run (perf trace -s): total: the main ones"
	for p in "${PEERS[@]}"; do
		[ -s "$W/syscalls.$p" ] && sed "s/^/$p /" "$W/syscalls.$p"
	done
fi
awk -v a="${TP_ckptenv:-0}" -v b="${TP_tmux:-0}" 'BEGIN { if (a > 0 && b > 0) printf "ckptenv / tmux throughput: %.2fx\n", a / b }'
