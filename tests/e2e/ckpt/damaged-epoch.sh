#!/bin/bash
# One damaged /tmp epoch file (meta/E.ep failing its checksum) costs only the checkpoints that
# build on it. Before, the store refused to open at all: no restore of any checkpoint, and a
# stopped job whose restore in place failed on it was ended. Now `checkpoints` names the
# damaged file for the checkpoint that needs it (exit 1), its restore is refused in one line
# and the stopped job stays stopped, an older checkpoint restores in place, and the job goes
# on checkpointing and restoring (also by a new supervisor) with the damaged file present.
. "$(dirname "$0")/../lib.sh"
cat >job.py <<'PY'
import time
i = 0
while True:
    i += 1
    with open("/tmp/v", "w") as f:
        f.write("%d\n" % i)
    time.sleep(0.01)
PY
state_is() { "$CKPTENV" status "$1" | grep -Eq "state: *($2)"; }
sup_of() { "$CKPTENV" status "$1" | sed -n 's/^pid: .*(supervisor \([0-9]*\)).*/\1/p'; }
job_pid() { "$CKPTENV" status "$1" | sed -n 's/^pid: *\([0-9]*\) .*/\1/p'; }
"$CKPTENV" run --name de --detach -- python3 "$T/job.py" </dev/null >/dev/null || fail "run"
sup=$(sup_of de)
poll_until 20 sh -c "test -s /proc/$(job_pid de)/root/tmp/v" || fail "the job wrote nothing"
"$CKPTENV" checkpoint de >/dev/null 2>err.txt || fail "checkpoint 1: $(cat err.txt)"
"$CKPTENV" checkpoint de --stop >/dev/null 2>err.txt || fail "checkpoint 2: $(cat err.txt)"
poll_until 10 state_is de stopped || fail "not stopped"
"$CKPTENV" status de | grep -q "^supervisor: *$sup$" ||
	fail "status of a stopped job does not name its supervisor: $("$CKPTENV" status de | grep pid)"
epoch=$("$CKPTENV" checkpoints de | awk '$1 == 2 {print $(NF - 1)}')
[ -n "$epoch" ] || fail "no epoch for checkpoint 2: $("$CKPTENV" checkpoints de)"
ep=$CKPTENV_HOME/jobs/de/store/meta/$epoch.ep
[ -f "$ep" ] || fail "no $ep"
printf '\377' | dd of="$ep" bs=1 seek=40 conv=notrunc status=none

rc=0
"$CKPTENV" checkpoints de >out.txt 2>err.txt || rc=$?
expect_eq "checkpoints with a damaged epoch" 1 "$rc"
expect_eq "its line" "ckptenv: checkpoints de: checkpoint 2 cannot be restored: $ep: checksum mismatch; 'ckptenv rm de --checkpoint 2' drops it" "$(cat err.txt)"
grep -q '^1 ' out.txt || fail "checkpoint 1 not listed: $(cat out.txt)"

rc=0
"$CKPTENV" restore de 2 --detach >/dev/null 2>err.txt || rc=$?
expect_eq "restore of checkpoint 2" 1 "$rc"
expect_eq "its refusal" "ckptenv: restore de: checkpoint 2 cannot be restored: $ep: checksum mismatch; the job stays stopped, 'ckptenv checkpoints de' lists the others" "$(cat err.txt)"
state_is de stopped || fail "not stopped after the refusal: $("$CKPTENV" status de)"

"$CKPTENV" restore de 1 --detach >/dev/null 2>err.txt || fail "restore of checkpoint 1: $(cat err.txt)"
expect_eq "supervisor of the restore in place" "$sup" "$(sup_of de)"
p=$(job_pid de)
poll_until 20 sh -c "test -s /proc/$p/root/tmp/v" || fail "no /tmp/v after the restore"
"$CKPTENV" checkpoint de >/dev/null 2>err.txt || fail "checkpoint 3: $(cat err.txt)"
kill -9 "$sup"
poll_until 10 state_is de died || fail "the job survived its supervisor"
"$CKPTENV" restore de 3 --detach >/dev/null 2>err.txt || fail "restore of checkpoint 3 by a new supervisor: $(cat err.txt)"
poll_until 10 state_is de running || fail "not running: $("$CKPTENV" status de)"
"$CKPTENV" rm --force de >/dev/null
pass "a damaged epoch refuses only the checkpoint that needs it"
