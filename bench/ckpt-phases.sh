#!/usr/bin/env bash
# Where a checkpoint's frozen time goes, phase by phase (freeze, vfs, pty, memory, commit, net):
# a job with BENCH_MEM_MB of touched memory (zdtm-big), BENCH_FILES small files in its /tmp and
# BENCH_CONNS proxied TCP connections (bash's /dev/tcp to a local echo server, kept open across
# the exec) is checkpointed BENCH_N times; the medians are printed, each with its share of the
# frozen time. Numbers from `ckptenv checkpoint`'s second stderr line.
#
#   bench/ckpt-phases.sh        (build first: cmake --build build)
#
# Environment: BENCH_MEM_MB [1024], BENCH_FILES [10000], BENCH_CONNS [10], BENCH_N [5], BENCH_TERM [0] (1: the
# job on a terminal, through tmux, so the pty phase has a screen to save), BENCH_DIR [/var/tmp],
# CKPTENV [build/ckptenv/ckptenv], CK_HELPERS [dir of ckptenv/../helpers].
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MEM=${BENCH_MEM_MB:-1024}
FILES=${BENCH_FILES:-10000}
CONNS=${BENCH_CONNS:-10}
N=${BENCH_N:-5}
TERM_JOB=${BENCH_TERM:-0}
CKPTENV=${CKPTENV:-$ROOT/build/ckptenv/ckptenv}
CK_HELPERS=${CK_HELPERS:-$(dirname "$CKPTENV")/../helpers}
[ -x "$CKPTENV" ] && [ -x "$CK_HELPERS/zdtm-big" ] || { echo "build first" >&2; exit 2; }
W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/ckpt-phases.XXXXXX")
export CKPTENV_HOME=$W/home
TM="tmux -L ckpt-phases-$$ -f /dev/null"
SRV=
trap '"$CKPTENV" rm --force ph >/dev/null 2>&1 || true; $TM kill-server 2>/dev/null || true; [ -z "$SRV" ] || kill "$SRV" 2>/dev/null; [ -n "${BENCH_KEEP:-}" ] || rm -rf "$W"' EXIT

# A local echo server for the job's connections (loopback only); it prints its port.
conns=
if [ "$CONNS" -gt 0 ]; then
	python3 -c '
import socket, threading, sys
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(64)
print(l.getsockname()[1], flush=True)
def echo(c):
    while True:
        b = c.recv(65536)
        if not b: return
        c.sendall(b)
while True:
    c, _ = l.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()
' >"$W/port" &
	SRV=$!
	until [ -s "$W/port" ]; do sleep 0.05; done
	port=$(cat "$W/port")
	for ((c = 0; c < CONNS; c++)); do conns+="exec $((10 + c))<>/dev/tcp/127.0.0.1/$port; "; done
fi
script="mkdir -p /tmp/f; for i in \$(seq $FILES); do echo \$i > /tmp/f/\$i; done; ${conns}exec $CK_HELPERS/zdtm-big 1 $MEM"
if [ "$TERM_JOB" = 1 ]; then
	$TM new-session -d -s b -x 120 -y 40 "env CKPTENV_HOME=$CKPTENV_HOME $CKPTENV run --name ph -- bash -c '$script'"
else
	"$CKPTENV" run --name ph --detach -- bash -c "$script" </dev/null >/dev/null
fi
end=$(( $(date +%s) + 600 ))
until "$CKPTENV" log ph 2>/dev/null | grep -q ready; do
	[ "$(date +%s)" -lt "$end" ] || { echo "the job never got ready" >&2; exit 1; }
	sleep 0.2
done
: >"$W/phases"
for i in $(seq "$N"); do
	"$CKPTENV" checkpoint ph 2>"$W/err" >/dev/null || { cat "$W/err" >&2; exit 1; }
	tot=$(sed -n 's/.*frozen \([0-9.]*\) ms,.*/\1/p' "$W/err" | head -1)
	sed -n "s/.*time by phase ([^)]*): freeze \([0-9.]*\) ms, vfs \([0-9.]*\) ms, pty \([0-9.]*\) ms, memory \([0-9.]*\) ms, commit \([0-9.]*\) ms, net \([0-9.]*\) ms.*/$i $tot \1 \2 \3 \4 \5 \6/p" "$W/err" >>"$W/phases"
	# Keep the disk use bounded: only the newest checkpoint matters here.
	[ "$i" = 1 ] || "$CKPTENV" rm ph --checkpoint $((i - 1)) >/dev/null
done
echo "checkpoint of a job with $MEM MiB touched, $FILES files in /tmp, $CONNS connections$([ "$TERM_JOB" = 1 ] && echo ', on a terminal'):"
echo "  (the first one commits every file of /tmp; the next ones only what changed: nothing)"
# column K of the rows selected by awk condition C: median
median() { awk "$1 {print \$$2}" "$W/phases" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
printf '  %-24s %10s %10s %10s %10s %10s %10s | %10s\n' "" freeze vfs pty memory commit net frozen
row() {
	local label=$1 cond=$2 t; t=$(median "$cond" 2)
	printf '  %-24s' "$label"
	for k in 3 4 5 6 7 8; do
		awk -v m="$(median "$cond" $k)" -v t="$t" 'BEGIN {printf " %7.1f ms", m}'
	done
	printf ' | %7.1f ms\n' "$t"
	printf '  %-24s' ""
	for k in 3 4 5 6 7 8; do
		awk -v m="$(median "$cond" $k)" -v t="$t" 'BEGIN {printf " %9.1f%%", 100 * m / t}'
	done
	echo
}
row "first checkpoint" '$1 == 1'
[ "$N" -lt 2 ] || row "next $((N - 1)), median" '$1 > 1'
# BENCH_VERBOSE=1: the supervisor's breakdown of each /tmp commit (the vfs phase).
[ -z "${BENCH_VERBOSE:-}" ] || grep -a "/tmp commit:" "$CKPTENV_HOME/jobs/ph/log" | sed 's/^.*: checkpoint/  checkpoint/'
