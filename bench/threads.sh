#!/usr/bin/env bash
# bench/threads.sh: what threads cost a checkpoint and a restore. A job of N threads (each
# asleep in a 1 ms nanosleep loop, 64 KiB of its stack touched; the main thread prints a tick
# every 10 ms) is checkpointed, its supervisor killed and the job restored, REPS times per N:
#  - frozen: the "frozen X ms" ckptenv checkpoint reports (seize + dump + commit);
#  - restore: from `ckptenv restore --detach` until the job prints its next tick (new
#    supervisor, vfs, init, restorer, blob, threads).
# Medians, and ratios against the single-threaded job of the same run.
#   CKPTENV=path/to/ckptenv (default: build/ckptenv/ckptenv)
#   THREADS="1 16 128" REPS=5 bash bench/threads.sh
# Work files go to /var/tmp (a job's /tmp is its own), or BENCH_DIR.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
CKPTENV=${CKPTENV:-$HERE/build/ckptenv/ckptenv}
[ -x "$CKPTENV" ] || { echo "bench/threads.sh: build ckptenv first or set CKPTENV" >&2; exit 1; }
read -r -a NS <<< "${THREADS:-1 16 128}"
REPS=${REPS:-5}
W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/thrbench.XXXXXX")
export CKPTENV_HOME=$W/home
cleanup() {
	for j in "$CKPTENV_HOME"/jobs/*/; do
		[ -d "$j" ] && "$CKPTENV" rm --force "$(basename "$j")" >/dev/null 2>&1
	done
	rm -rf "$W"
}
trap cleanup EXIT

cat > "$W/sleepers.c" <<'EOF'
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static void nap(long ns)
{
	struct timespec ts = {0, ns};
	nanosleep(&ts, NULL);
}
static void *sleeper(void *a)
{
	char stack[64 << 10];
	memset(stack, 1, sizeof(stack));
	__asm__ volatile("" : : "r"(stack) : "memory");
	for (;;)
		nap(1000000);
	return a;
}
int main(int argc, char **argv)
{
	int n = atoi(argv[1]);
	for (int i = 1; i < n; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, sleeper, NULL))
			return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (unsigned long long k = 0;; k++) {
		printf("tick %llu\n", k);
		nap(10000000);
	}
}
EOF
cc -O2 -pthread -o "$W/sleepers" "$W/sleepers.c"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
ticks() { "$CKPTENV" log "$1" | grep -ac '^tick '; }
wait_ticks() { # JOB COUNT: until the job printed more than COUNT ticks (10 s at most)
	local end=$(( $(now_ms) + 10000 ))
	while [ "$(ticks "$1")" -le "$2" ]; do
		[ "$(now_ms)" -lt "$end" ] || { echo "job $1 does not tick" >&2; exit 1; }
		sleep 0.005
	done
}
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

declare -A FROZEN RESTORE
for n in "${NS[@]}"; do
	job=t$n
	"$CKPTENV" run --name "$job" --detach -- "$W/sleepers" "$n" </dev/null >/dev/null
	wait_ticks "$job" 5
	fr=() rs=()
	for ((r = 0; r < REPS; r++)); do
		"$CKPTENV" checkpoint "$job" --stop >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
		fr+=("$(sed -n 's/.*frozen \([0-9.]*\) ms.*/\1/p' "$W/err")")
		c=$(ticks "$job")
		t0=$(now_ms)
		"$CKPTENV" restore "$job" --detach >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
		wait_ticks "$job" "$c"
		rs+=($(( $(now_ms) - t0 )))
	done
	FROZEN[$n]=$(printf '%s\n' "${fr[@]}" | median)
	RESTORE[$n]=$(printf '%s\n' "${rs[@]}" | median)
	"$CKPTENV" rm --force "$job" >/dev/null 2>&1
done

b=${NS[0]}
printf '%-8s %12s %8s %12s %8s\n' threads "frozen ms" ratio "restore ms" ratio
for n in "${NS[@]}"; do
	printf '%-8s %12s %8.2f %12s %8.2f\n' "$n" "${FROZEN[$n]}" \
		"$(echo "${FROZEN[$n]} / ${FROZEN[$b]}" | bc -l)" "${RESTORE[$n]}" \
		"$(echo "${RESTORE[$n]} / ${RESTORE[$b]}" | bc -l)"
done
echo "(medians of $REPS; ratios against $b thread(s); checkpoint --stop, then restore)"
