#!/bin/bash
# A state directory that fills up during a checkpoint (a 32 MiB tmpfs in a private mount
# namespace, filled but for a few pages): the checkpoint fails with one clear line saying the
# disk is full and what to do, the job keeps running, nothing is left half-written, and the
# older checkpoint is still listed and restores; once space is freed, checkpoints work again.
CK_SMALL_DISK=32m
. "$(dirname "$0")/../lib.sh"
LOOP=$CK_HELPERS/zdtm-loop
[ -x "$LOOP" ] || fail "missing helper $LOOP"
trap 'rc=$?; set +e; "$CKPTENV" rm --force f >/dev/null 2>&1; umount -l "$CKPTENV_HOME"; _cleanup $rc' EXIT
JD=$CKPTENV_HOME/jobs/f
sup_pid() { sed -n 's/.*supervisor f\[\([0-9]*\)\]: job started.*/\1/p' "$JD/log" | tail -1; }
job_pid() { "$CKPTENV" status f | sed -n 's/^pid: *\([0-9]*\) .*/\1/p'; }
cmd_pid() { cat "/proc/$(job_pid)/task/$(job_pid)/children" | tr -d ' '; }
counts() { "$CKPTENV" log f | grep -a '^count ' | awk '{print $2}'; }
count_above() { [ "$(counts | tail -1)" -gt "$1" ]; }

"$CKPTENV" run --name f --detach -- "$LOOP" </dev/null >/dev/null
poll_until 10 count_above 10 || fail "the counter does not run"
"$CKPTENV" checkpoint f >/dev/null 2>err.txt || fail "first checkpoint: $(cat err.txt)"
pid=$(cmd_pid)
# Fill the file system but for a little slack: none (the /tmp commit fails), then 48 KiB (the
# /tmp commit fits, the ~100 KiB process image does not).
for slack in 0 48; do
	dd if=/dev/zero of="$CKPTENV_HOME/filler" bs=64k 2>/dev/null || true
	truncate -s -${slack}K "$CKPTENV_HOME/filler"
	avail=$(( $(stat -f -c '%a * %S' "$CKPTENV_HOME") ))
	[ "$avail" -lt $(((slack + 16) * 1024)) ] || fail "tmpfs not full: $avail bytes left"
	"$CKPTENV" checkpoint f >out.txt 2>err.txt && fail "slack $slack KiB: a checkpoint on a full disk succeeded"
	echo "slack $slack KiB: refused: $(cat err.txt)"
	[ "$(wc -l <err.txt)" = 1 ] || fail "not one line: $(cat err.txt)"
	grep -q "no space left in $JD; free space, or drop old checkpoints" err.txt || fail "unclear: $(cat err.txt)"
	[ -z "$(ls -A "$JD/checkpoints" | grep -v -e '^1$' -e '^LATEST$')" ] || fail "left: $(ls -A "$JD/checkpoints")"
	kill -0 "$pid" || fail "slack $slack KiB: the job's process is gone"
	rm -f "$CKPTENV_HOME/filler"
done
# The job goes on, the same process.
at=$(counts | tail -1)
poll_until 10 count_above "$at" || fail "the job stopped after the failed checkpoint"
expect_eq "the job's process" "$pid" "$(cmd_pid)"
"$CKPTENV" checkpoints f >list.txt || fail "checkpoints reports a disagreement"
[ "$(awk 'NR > 1 {print $1}' list.txt | tr '\n' ' ')" = "1 " ] || fail "checkpoints: $(cat list.txt)"
# Space again: checkpoints work; and the old one still restores.
id=$("$CKPTENV" checkpoint f 2>err.txt) || fail "checkpoint after freeing space: $(cat err.txt)"
s=$(sup_pid)
kill -9 "$s"
poll_until 10 sh -c "'$CKPTENV' status f | grep -q 'state: *died'" || fail "job still up"
n=$(counts | wc -l)
"$CKPTENV" restore f 1 --detach >/dev/null 2>err.txt || fail "restore of checkpoint 1: $(cat err.txt)"
poll_until 10 sh -c "[ \$('$CKPTENV' log f | grep -ac '^count ') -gt $((n + 5)) ]" || fail "restored job does not run"
pass "checkpoint on a full disk refused clearly, job running, checkpoint 1 intact (then $id)"
