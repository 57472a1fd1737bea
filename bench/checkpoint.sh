#!/usr/bin/env bash
# Checkpoint/restore benchmark: `ckptenv checkpoint` of a job with N MiB of touched memory
# against `dd` writing N MiB to the same disk with fsync, and `ckptenv restore` (page cache
# dropped) against `dd` reading those N MiB back cold; the time the job is frozen; for N = 64,
# 256, 1024 and 4096 MiB, side by side in one run, medians (and fastest) of BENCH_N runs. See
# bench/README.md.
#
#   bench/checkpoint.sh            (as root: drop_caches; build first: cmake --build build)
#
# Environment (defaults in brackets):
#   BENCH_N [3]                   runs per measurement; the median and the fastest are reported
#   BENCH_SIZES [64 256 1024 4096]  MiB of touched memory
#   BENCH_DIR [/var/tmp]          where the work dir (state directory and dd file) is made
#   BENCH_NO_DROP [0]             1: do not drop the page cache (non-root; restore then warm)
#   CKPTENV [build/ckptenv/ckptenv], CK_HELPERS [dir of ckptenv/../helpers]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${BENCH_N:-3}
SIZES=${BENCH_SIZES:-64 256 1024 4096}
NO_DROP=${BENCH_NO_DROP:-0}
CKPTENV=${CKPTENV:-$ROOT/build/ckptenv/ckptenv}
CK_HELPERS=${CK_HELPERS:-$(dirname "$(dirname "$CKPTENV")")/helpers}
TOUCH=$CK_HELPERS/zdtm-touch
PRIME=${PRIME:-$(dirname "$(dirname "$CKPTENV")")/bench/ckbench-prime}

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }

[ -x "$CKPTENV" ] || die "no ckptenv at $CKPTENV (build first, or set CKPTENV)"
[ -x "$TOUCH" ] || die "no zdtm-touch at $TOUCH (build the helpers, or set CK_HELPERS)"
[ -x "$PRIME" ] || die "no ckbench-prime at $PRIME (build first, or set PRIME)"
if [ "$NO_DROP" != 1 ] && [ "$(id -u)" -ne 0 ]; then
	die "run as root (drop_caches for the cold reads), or set BENCH_NO_DROP=1"
fi

W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/ckbench-ckpt.XXXXXX")
chmod 755 "$W"
export CKPTENV_HOME=$W/home
JOBS=()
cleanup() {
	set +e
	for j in "${JOBS[@]}"; do "$CKPTENV" rm --force "$j" >/dev/null 2>&1; done
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# Before every timed step: the page cache dropped (cold reads), then 2 x its size of memory
# touched and freed, so that dd and ckptenv alike find recently used pages (bench/prime.c).
drop() {
	sync
	[ "$NO_DROP" = 1 ] || echo 3 >/proc/sys/vm/drop_caches
	"$PRIME" $((2 * mib))
}
# poll CMD... every 10 ms for at most 600 s
poll() {
	local end=$(($(date +%s) + 600))
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.01
	done
}
init_pid() { "$CKPTENV" status "$1" | sed -n 's/^pid: *\([0-9]*\) .*/\1/p'; }
sup_pid() { "$CKPTENV" status "$1" | sed -n 's/^pid: .*(supervisor \([0-9]*\)).*/\1/p'; }
cmd_pid() {
	local i
	i=$(init_pid "$1")
	[ -n "$i" ] && tr -d ' ' <"/proc/$i/task/$i/children"
}
logged() { "$CKPTENV" log "$1" | grep -aq "$2"; }
# The restore is complete once the restored process has closed pages.img (the restorer blob
# closes it after the last page is in and the protections are set).
restored() {
	local p
	p=$(cmd_pid "$1") && [ -n "$p" ] && [ -d "/proc/$p/fd" ] &&
		! ls -l "/proc/$p/fd" 2>/dev/null | grep -q 'pages\.img'
}
kill_job() { # as a reboot would: the supervisor takes the job with it
	local s
	s=$(sup_pid "$1")
	[ -z "$s" ] || kill -9 "$s"
	poll sh -c "'$CKPTENV' status '$1' | grep -Eq 'state: *(died|exited)'" || die "job $1 survived"
}

declare -A R
for mib in $SIZES; do
	for i in $(seq 1 "$N"); do
		# Peer: dd of the same amount to the same disk, fsync'ed; then read back cold.
		drop
		t0=$(now)
		dd if=/dev/zero of="$W/dd.img" bs=1M count="$mib" conv=fsync status=none
		t1=$(now)
		R[ddw,$mib]+="$(secs "$t0" "$t1") "
		drop
		t0=$(now)
		dd if="$W/dd.img" of=/dev/null bs=1M status=none
		t1=$(now)
		R[ddr,$mib]+="$(secs "$t0" "$t1") "
		rm -f "$W/dd.img"

		# ckptenv: a job touching $mib MiB, checkpointed, killed, restored cold.
		j=b${mib}_$i
		JOBS+=("$j")
		"$CKPTENV" run --name "$j" --detach -- "$TOUCH" "$mib" </dev/null >/dev/null
		poll logged "$j" "^ready $mib" || die "job $j did not get ready: $("$CKPTENV" log "$j" | tail -2)"
		drop
		t0=$(now)
		"$CKPTENV" checkpoint "$j" >/dev/null 2>"$W/ckpt.txt" || die "checkpoint: $(cat "$W/ckpt.txt")"
		t1=$(now)
		R[ck,$mib]+="$(secs "$t0" "$t1") "
		fz=$(sed -n 's/.*frozen \([0-9.]*\) ms.*/\1/p' "$W/ckpt.txt")
		R[fz,$mib]+="$(awk -v f="$fz" 'BEGIN { printf "%.3f", f / 1000 }') "
		kill_job "$j"
		drop
		t0=$(now)
		"$CKPTENV" restore "$j" --detach >/dev/null 2>"$W/rst.txt" || die "restore: $(cat "$W/rst.txt")"
		poll restored "$j" || die "restore of $j did not complete: $("$CKPTENV" log "$j" | tail -2)"
		t1=$(now)
		R[rs,$mib]+="$(secs "$t0" "$t1") "
		kill -USR1 "$(cmd_pid "$j")"
		poll logged "$j" "^verify" || die "restored job $j does not answer"
		logged "$j" "^verify ok $mib" || die "restored job $j: $("$CKPTENV" log "$j" | grep -a verify)"
		"$CKPTENV" rm --force "$j" >/dev/null
		note "$mib MiB run $i: $(cat "$W/ckpt.txt")"
	done
done

# Medians, then the fastest run of each: the disks of shared machines stall for a second now
# and then, on either side; the fastest run shows what each costs without that.
table() { # TITLE FUNCTION
	printf '\n%s of %s runs; seconds; (x) = ckptenv / dd, goal <= 1.30\n' "$1" "$N"
	printf '%8s %10s %10s %8s %10s %10s %10s %8s\n' MiB "dd write" checkpoint ratio frozen "dd read" restore ratio
	for mib in $SIZES; do
		w=$(echo ${R[ddw,$mib]} | tr ' ' '\n' | $2)
		c=$(echo ${R[ck,$mib]} | tr ' ' '\n' | $2)
		f=$(echo ${R[fz,$mib]} | tr ' ' '\n' | $2)
		r=$(echo ${R[ddr,$mib]} | tr ' ' '\n' | $2)
		s=$(echo ${R[rs,$mib]} | tr ' ' '\n' | $2)
		awk -v m="$mib" -v w="$w" -v c="$c" -v f="$f" -v r="$r" -v s="$s" 'BEGIN {
			printf "%8d %10.3f %10.3f %7.2fx %10.3f %10.3f %10.3f %7.2fx\n", m, w, c, c / w, f, r, s, s / r }'
	done
}
fastest() { sort -g | head -1; }
table medians median
table fastest fastest
