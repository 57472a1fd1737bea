#!/bin/bash
# run --checkpoint-every/--keep: the supervisor checkpoints by itself and keeps the newest K,
# dropping older checkpoints with their /tmp epochs (refs ckpt-ID); rm --checkpoint drops one;
# list shows the space used; a stale .ID.tmp is swept; --checkpoint-on-term: SIGTERM to the
# supervisor takes a final checkpoint and ends the job, which then restores from it.
. "$(dirname "$0")/../lib.sh"
LOOP=$CK_HELPERS/zdtm-loop
[ -x "$LOOP" ] || fail "missing helper $LOOP"
LOG=$CKPTENV_HOME/jobs/p/log
taken() { grep -c "supervisor p\[.*checkpoint [0-9]*: frozen" "$LOG" || true; }
taken_ge() { [ "$(taken)" -ge "$1" ]; }
ids() { "$CKPTENV" checkpoints p | awk 'NR > 1 {print $1}' | tr '\n' ' '; }
refs() { "$CKPTENV" snapshots p | awk '/^ckpt-/ {sub("ckpt-", "", $1); print $1}' | sort -n | tr '\n' ' '; }
counts() { "$CKPTENV" log p | grep -a '^count ' | awk '{print $2}'; }
count_above() { [ "$(counts | tail -1)" -gt "$1" ]; }

# Bad values are refused with one line, nothing started.
for bad in "--checkpoint-every 0" "--checkpoint-every 10x" "--checkpoint-every 500ms" "--keep 0"; do
	"$CKPTENV" run --name bad $bad -- true </dev/null >/dev/null 2>err.txt && fail "accepted $bad"
	[ "$(wc -l <err.txt)" = 1 ] || fail "$bad: not one line: $(cat err.txt)"
	grep -q "invalid" err.txt || fail "$bad: $(cat err.txt)"
done

"$CKPTENV" run --name p --detach --checkpoint-every 1s --keep 2 --checkpoint-on-term -- "$LOOP" </dev/null >/dev/null
poll_until 20 taken_ge 4 || fail "periodic checkpoints: $(grep -v count "$LOG")"
# Only the newest 2 are left, each with its epoch ref, and no other ckpt ref. (Polled: the
# next periodic checkpoint may fall between two reads.)
kept_two() { [ "$(ids | wc -w)" = 2 ]; }
same_refs() { [ "$(ids)" = "$(refs)" ]; }
poll_until 5 kept_two || fail "kept '$(ids)', not 2"
poll_until 5 same_refs || fail "checkpoints '$(ids)' but refs '$(refs)'"
grep -q "dropped checkpoint 1 (keeping the newest 2)" "$LOG" || fail "no drop logged"
"$CKPTENV" checkpoints p >/dev/null || fail "checkpoints reports a disagreement"
"$CKPTENV" list | grep -Eq '^p +running .* [0-9.]+ (KiB|MiB) ' || fail "list has no space: $("$CKPTENV" list)"

# rm --checkpoint: the newest goes with its ref (the oldest could be pruned meanwhile); a bad
# or unknown id is refused.
first=$(ids | awk '{print $NF}')
"$CKPTENV" rm p --checkpoint "$first" || fail "rm --checkpoint $first"
ids | grep -qw "$first" && fail "checkpoint $first still listed"
refs | grep -qw "$first" && fail "ref ckpt-$first still there"
"$CKPTENV" rm p --checkpoint 999999 2>err.txt && fail "dropped an unknown checkpoint"
grep -q "no such checkpoint" err.txt || fail "unknown id: $(cat err.txt)"
"$CKPTENV" rm p --checkpoint x1 2>err.txt && fail "accepted id x1"
grep -q "invalid checkpoint id" err.txt || fail "bad id: $(cat err.txt)"
"$CKPTENV" list | grep -q '^p ' || fail "rm --checkpoint removed the job"

# What a killed checkpoint leaves is swept by the next one.
mkdir "$CKPTENV_HOME/jobs/p/checkpoints/.99.tmp"
n=$(taken)
# Two more: one in progress at the mkdir may have swept before it.
poll_until 20 taken_ge $((n + 2)) || fail "no further periodic checkpoints"
[ ! -e "$CKPTENV_HOME/jobs/p/checkpoints/.99.tmp" ] || fail ".99.tmp not swept"

# SIGTERM to the supervisor: a final checkpoint, the job ends, a restore goes on from it.
sup=$(sed -n 's/.*supervisor p\[\([0-9]*\)\]: job started.*/\1/p' "$LOG" | tail -1)
kill -TERM "$sup"
poll_until 10 sh -c "! kill -0 $sup" || fail "supervisor survived SIGTERM"
grep -q "SIGTERM: final checkpoint [0-9]* taken" "$LOG" || fail "no final checkpoint: $(tail -3 "$LOG")"
last=$(sed -n 's/.*SIGTERM: final checkpoint \([0-9]*\) taken.*/\1/p' "$LOG" | tail -1)
latest=$(ids | awk '{print $NF}')
expect_eq "newest checkpoint" "$last" "$latest"
at=$(counts | tail -1)
"$CKPTENV" restore p --detach >/dev/null 2>err.txt || fail "restore: $(cat err.txt)"
poll_until 10 count_above "$at" || fail "the restored job does not count on"
# The restored job keeps the policy: it checkpoints by itself again.
n=$(taken)
poll_until 10 taken_ge $((n + 1)) || fail "no periodic checkpoint after restore"
# With no supervisor, rm --checkpoint opens the store itself.
sup=$(sed -n 's/.*supervisor p\[\([0-9]*\)\]: job started.*/\1/p' "$LOG" | tail -1)
kill -TERM "$sup"
poll_until 10 sh -c "! kill -0 $sup" || fail "supervisor survived the second SIGTERM"
old=$(ids | awk '{print $1}')
"$CKPTENV" rm p --checkpoint "$old" 2>err.txt || fail "rm --checkpoint of a stopped job: $(cat err.txt)"
ids | grep -qw "$old" && fail "checkpoint $old still listed"
expect_eq "refs after rm of a stopped job" "$(ids)" "$(refs)"
pass "periodic checkpoints, keep, rm --checkpoint, sweep, checkpoint on SIGTERM"
