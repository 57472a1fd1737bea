#!/usr/bin/env bash
# kill -9 soak of checkpoints: a zdtm-loop job is checkpointed again and again while either the
# `ckptenv checkpoint` client or the job's supervisor is killed with SIGKILL at a random instant
# (0..SOAK_MAX_MS after the checkpoint was asked for). After every kill:
#   - `ckptenv checkpoints` lists every checkpoint that was complete before (nothing older
#     lost) and finds no checkpoint whose image and /tmp epoch disagree (its exit status);
#   - after a supervisor kill, `ckptenv restore` of the newest checkpoint runs, the restored
#     counter goes on, and the restore's supervisor swept what the kill left: no .ID.tmp /
#     .ID.del directory and no ckpt-ID ref without its checkpoint.
# Prints one summary line; exits 1 at the first violation (its work directory is kept).
#
#   bench/ckpt-soak.sh [ITERATIONS]      (default 1000; the e2e suite runs 40)
#
# Environment: CKPTENV [build/ckptenv/ckptenv], CK_HELPERS [dir of ckptenv/../helpers],
# SOAK_DIR [a new directory below /var/tmp], SOAK_MAX_MS [60].
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${1:-1000}
CKPTENV=${CKPTENV:-$ROOT/build/ckptenv/ckptenv}
CK_HELPERS=${CK_HELPERS:-$(dirname "$CKPTENV")/../helpers}
LOOP=$CK_HELPERS/zdtm-loop
MAX_MS=${SOAK_MAX_MS:-60}
[ -x "$CKPTENV" ] && [ -x "$LOOP" ] || { echo "ckpt-soak: build first (no $CKPTENV or $LOOP)" >&2; exit 2; }
W=${SOAK_DIR:-$(mktemp -d /var/tmp/ckpt-soak.XXXXXX)}
mkdir -p "$W"
export CKPTENV_HOME=$W/home
J=soak
JD=$CKPTENV_HOME/jobs/$J
cleanup() {
	local rc=$?
	if [ "$rc" = 0 ]; then
		"$CKPTENV" rm --force "$J" >/dev/null 2>&1 || true
		[ -n "${SOAK_DIR:-}" ] || rm -rf "$W"
		return
	fi
	# Keep the evidence: stop the job without deleting its state.
	local s; s=$(sup_pid 2>/dev/null || true)
	[ -z "$s" ] || kill -9 "$s" 2>/dev/null || true
	{ echo "checkpoints/: $(ls -a "$JD/checkpoints" | tr '\n' ' ')"
	  "$CKPTENV" snapshots "$J"; grep -av '^count' "$JD/log" | tail -20; } >&2 || true
	echo "ckpt-soak: work directory kept at $W" >&2
}
trap cleanup EXIT

die() { echo "ckpt-soak: iteration $i: $*" >&2; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
poll() { # poll SECONDS CMD...
	local end=$(( $(now_ms) + $1 * 1000 )); shift
	until "$@" >/dev/null 2>&1; do [ "$(now_ms)" -lt "$end" ] || return 1; sleep 0.02; done
}
sup_pid() { sed -n "s/.*supervisor $J\[\([0-9]*\)\]: job started.*/\1/p" "$JD/log" | tail -1; }
ids() { "$CKPTENV" checkpoints "$J" 2>/dev/null | awk 'NR > 1 {print $1}' | tr '\n' ' '; }
refs() { "$CKPTENV" snapshots "$J" | awk '/^ckpt-/ {sub("ckpt-", "", $1); print $1}' | sort -n | tr '\n' ' '; }
lines() { "$CKPTENV" log "$J" | grep -ac '^count ' || true; }
lines_above() { [ "$(lines)" -gt "$1" ]; }
died() { "$CKPTENV" status "$J" | grep -q 'state: *died'; }
check_list() { # every id of $1 still listed, and no disagreement
	local now; now=$("$CKPTENV" checkpoints "$J" 2>"$W/check.err" | awk 'NR > 1 {print $1}' | tr '\n' ' ') ||
		die "checkpoints reports: $(cat "$W/check.err")"
	for id in $1; do
		case " $now " in *" $id "*) ;; *) die "checkpoint $id lost (had: $1, now: $now)" ;; esac
	done
}

"$CKPTENV" run --name "$J" --detach -- "$LOOP" </dev/null >/dev/null
poll 10 lines_above 5 || { i=0; die "the job does not run"; }
i=0
"$CKPTENV" checkpoint "$J" >/dev/null 2>&1 || die "first checkpoint failed"
sup_kills=0 cli_kills=0 swept=0 restores=0 t0=$(now_ms)
for i in $(seq 1 "$N"); do
	before=$(ids)
	"$CKPTENV" checkpoint "$J" >/dev/null 2>&1 &
	cli=$!
	sleep "$(printf '0.%03d' $((RANDOM % MAX_MS)))"
	if [ $((RANDOM % 2)) = 0 ]; then
		kill -9 "$cli" 2>/dev/null || true
		wait "$cli" 2>/dev/null || true
		cli_kills=$((cli_kills + 1))
		check_list "$before"
		continue
	fi
	s=$(sup_pid)
	kill -9 "$s"
	wait "$cli" 2>/dev/null || true
	sup_kills=$((sup_kills + 1))
	poll 10 died || die "the job outlived its supervisor"
	check_list "$before"
	n=$(lines)
	"$CKPTENV" restore "$J" --detach >/dev/null 2>"$W/restore.err" || die "restore: $(cat "$W/restore.err")"
	restores=$((restores + 1))
	poll 10 lines_above $((n + 3)) || die "the restored job does not count on"
	if grep -q "supervisor $J\[$(sup_pid)\]: removed" "$JD/log"; then swept=$((swept + 1)); fi
	left=$(find "$JD/checkpoints" -maxdepth 1 -name '.*.tmp' -o -maxdepth 1 -name '.*.del')
	[ -z "$left" ] || die "left after the restore's sweep: $left"
	[ "$(ids)" = "$(refs)" ] || die "checkpoints '$(ids)' but refs '$(refs)'"
done
echo "ckpt-soak: $N kills ($sup_kills of the supervisor, $cli_kills of the client), $restores restores, leftovers swept $swept times, 0 lost or inconsistent checkpoints, $(( ($(now_ms) - t0) / 1000 )) s"
