#!/usr/bin/env bash
# bench/fds.sh: what the fd table costs a checkpoint and a restore, as it grows. A job holding N
# fds (zdtm-fds "many N": eventfds, pipes with a byte in them, armed timerfds and socketpairs,
# all registered in one epoll set) is checkpointed REPS times (the frozen time `ckptenv
# checkpoint` reports, and the CPU time the supervisor spent, from /proc/PID/task/*/schedstat),
# then checkpointed with --stop and restored REPS times (time from
# `ckptenv restore` until the restored process is back in pause()). Medians, side by side with
# N = 0 (the epoll fd only) as the baseline, and the ratio to it.
#   CKPTENV=path/to/ckptenv  (default: build/ckptenv/ckptenv, else build-*/ckptenv/ckptenv)
#   NS="0 64 512 2048" REPS=5 bash bench/fds.sh
# Work files go to /var/tmp (a job's /tmp is its own), or BENCH_DIR.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${CKPTENV:-}" ]; then
	for c in "$HERE"/build/ckptenv/ckptenv "$HERE"/build-*/ckptenv/ckptenv; do
		[ -x "$c" ] && { CKPTENV=$c; break; }
	done
fi
CKPTENV=${CKPTENV:?build ckptenv first or set CKPTENV}
FDS=$(dirname "$CKPTENV")/../helpers/zdtm-fds
[ -x "$FDS" ] || { echo "bench/fds.sh: no $FDS; build first" >&2; exit 1; }
NS=${NS:-0 64 512 2048}
REPS=${REPS:-5}
W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/bench-fds.XXXXXX")
export CKPTENV_HOME=$W/home
trap '"$CKPTENV" rm --force b >/dev/null 2>&1 || true; rm -rf "$W"' EXIT

median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
cmd_pid() {
	local j; j=$("$CKPTENV" status b | sed -n 's/^pid: *\([0-9]*\) .*/\1/p')
	cat "/proc/$j/task/$j/children" 2>/dev/null | tr -d ' '
}
in_pause() { local p; p=$(cmd_pid) && [ -n "$p" ] && grep -q '^34 ' "/proc/$p/syscall" 2>/dev/null; }
wait_for() { # wait_for SECONDS CMD...
	local end=$(( $(now_ms) + $1 * 1000 )); shift
	until "$@"; do [ "$(now_ms)" -lt "$end" ] || return 1; sleep 0.01; done
}
# CPU time (ns) of every thread of process $1 so far: less sensitive to a loaded machine than
# the wall-clock frozen time (this CPU's perf counters are not available in the VM).
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
sup_pid() { sed -n 's/.*supervisor b\[\([0-9]*\)\]: job started.*/\1/p' "$CKPTENV_HOME/jobs/b/log" | tail -1; }

declare -A CK RS CPU
for n in $NS; do
	"$CKPTENV" run --name b --detach -- "$FDS" 1 "/tmp/bench" many "$n" </dev/null >/dev/null
	wait_for 30 in_pause || { echo "job with $n fds did not start: $("$CKPTENV" log b | tail -2)" >&2; exit 1; }
	made=$("$CKPTENV" log b | sed -n 's/^ready 0 \([0-9]*\).*/\1/p')
	ck="" cpu=""
	sup=$(sup_pid)
	for _ in $(seq "$REPS"); do
		c0=$(cpu_ns "$sup")
		"$CKPTENV" checkpoint b >/dev/null 2>"$W/err"
		cpu+="$(( ($(cpu_ns "$sup") - c0) / 1000 / 1000 )) "
		ck+="$(sed -n 's/.*frozen \([0-9.]*\) ms.*/\1/p' "$W/err") "
	done
	"$CKPTENV" checkpoint b --stop >/dev/null 2>&1
	rs=""
	for _ in $(seq "$REPS"); do
		t0=$(now_ms)
		"$CKPTENV" restore b --detach >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
		wait_for 60 in_pause || { echo "restore of $n fds: $("$CKPTENV" log b | tail -2)" >&2; exit 1; }
		rs+="$(( $(now_ms) - t0 )) "
		s=$(sup_pid); kill -9 "$s"; wait_for 10 sh -c "! kill -0 $s 2>/dev/null"
		wait_for 10 sh -c "'$CKPTENV' status b | grep -q 'state: *died'"
	done
	"$CKPTENV" rm --force b >/dev/null 2>&1
	CK[$n]=$(echo $ck | tr ' ' '\n' | median)
	CPU[$n]=$(echo $cpu | tr ' ' '\n' | median)
	RS[$n]=$(echo $rs | tr ' ' '\n' | median)
	echo "n=$n ($made fds): checkpoint frozen [$ck] ms, supervisor cpu [$cpu] ms, restore [$rs] ms" >&2
done
base=$(echo $NS | awk '{print $1}')
printf '%8s %12s %10s %12s %10s %12s %10s\n' fds frozen_ms x_base sup_cpu_ms x_base restore_ms x_base
ratio() { echo "$1 / ($2 + 0.001)" | bc -l; }
for n in $NS; do
	printf '%8s %12s %10.2f %12s %10.2f %12s %10.2f\n' "$n" \
		"${CK[$n]}" "$(ratio "${CK[$n]}" "${CK[$base]}")" \
		"${CPU[$n]}" "$(ratio "${CPU[$n]}" "${CPU[$base]}")" \
		"${RS[$n]}" "$(ratio "${RS[$n]}" "${RS[$base]}")"
done
