#!/bin/bash
# A job whose process is stopped (SIGSTOP) is not checkpointed: one clear line, exit 1, and
# periodic checkpoints skip it, keeping the good ones. Before, the checkpoint "succeeded" with
# an image no restore accepts ("signal handlers but not their addresses"), and with
# --checkpoint-every --keep 2 those replaced every good checkpoint. Resumed, it checkpoints
# and restores again.
. "$(dirname "$0")/../lib.sh"
LOOP=$CK_HELPERS/zdtm-loop
[ -x "$LOOP" ] || fail "missing helper $LOOP"
job_pid() { "$CKPTENV" status "$1" | sed -n 's/^pid: *\([0-9]*\) .*/\1/p'; }
cmd_pid() { local j; j=$(job_pid "$1"); cat "/proc/$j/task/$j/children" | tr -d ' '; }
ids() { "$CKPTENV" checkpoints "$1" 2>/dev/null | awk 'NR > 1 {print $1}' | tr '\n' ' '; }
count_ids() { [ "$(ids "$1" | wc -w)" -ge "$2" ]; }

"$CKPTENV" run --name st --detach --checkpoint-every 1s --keep 2 -- "$LOOP" </dev/null >/dev/null
poll_until 20 count_ids st 2 || fail "no periodic checkpoints: $(ids st)"
p=$(cmd_pid st)
kill -STOP "$p"
poll_until 10 sh -c "grep -q '^[^)]*) T' /proc/$p/stat" || fail "not stopped"
before=$(ids st)
rc=0
"$CKPTENV" checkpoint st >out.txt 2>err.txt || rc=$?
expect_eq "checkpoint of a stopped job" 1 "$rc"
expect_eq "its line" "ckptenv: checkpoint st: job st's process (pid $p here) is stopped (SIGSTOP or SIGTSTP); a stopped process cannot be checkpointed yet: 'kill -CONT $p' resumes it" "$(cat err.txt)"
sleep 2.5 # two periods
expect_eq "checkpoints while stopped" "$before" "$(ids st)"
"$CKPTENV" checkpoints st >/dev/null 2>err.txt || fail "an unusable checkpoint: $(cat err.txt)"
grep -q "periodic checkpoint failed: .*is stopped" "$CKPTENV_HOME/jobs/st/log" || fail "the skip is not logged"
# status shows the policy and the failure (they were only in the supervisor's log), until a
# periodic checkpoint succeeds again.
"$CKPTENV" status st | grep -qx "policy: *a checkpoint every 1.0 s, keeping the newest 2" ||
	fail "status lacks the policy: $("$CKPTENV" status st)"
"$CKPTENV" status st | grep -Eq "^last periodic checkpoint failed \([0-9: -]+\): job st's process \(pid $p here\) is stopped" ||
	fail "status lacks the failure: $("$CKPTENV" status st)"
kill -CONT "$p"
poll_until 10 sh -c "! '$CKPTENV' status st | grep -q '^last periodic checkpoint failed'" ||
	fail "the failure outlived a good checkpoint: $("$CKPTENV" status st)"
"$CKPTENV" checkpoint st --stop >/dev/null 2>err.txt || fail "checkpoint after SIGCONT: $(cat err.txt)"
"$CKPTENV" restore st --detach >/dev/null 2>err.txt || fail "restore: $(cat err.txt)"
"$CKPTENV" rm --force st >/dev/null

# A SIGSTOP that arrives during a checkpoint is not lost: SIGSTOP cannot be blocked, so the
# dump's syscall injection (signals blocked) used to take it (its step failed with EIO, the
# checkpoint with it, and the process ran on). 60 threads make the injection long; 20 tries.
cat >threads.py <<'PY'
import signal, threading, time
signal.signal(signal.SIGUSR1, lambda s, f: None)
def spin():
    while True:
        time.sleep(0.001)
for i in range(60):
    threading.Thread(target=spin, daemon=True).start()
while True:
    time.sleep(0.01)
PY
"$CKPTENV" run --name sr --detach -- python3 "$T/threads.py" </dev/null >/dev/null
poll_until 10 sh -c "[ \$(ls /proc/\$(cat /proc/$(job_pid sr)/task/$(job_pid sr)/children | tr -d ' ')/task | wc -l) -ge 61 ]" ||
	fail "the threads did not start"
p=$(cmd_pid sr)
for i in $(seq 1 20); do
	"$CKPTENV" checkpoint sr >/dev/null 2>err.txt &
	ck=$!
	sleep "0.0$((RANDOM % 10))"
	kill -STOP "$p"
	wait $ck || grep -q "is stopped" err.txt || fail "try $i: checkpoint: $(cat err.txt)"
	poll_until 5 sh -c "grep -q '^[^)]*) T' /proc/$p/stat" || fail "try $i: the SIGSTOP was lost ($(cat err.txt))"
	kill -CONT "$p"
done
"$CKPTENV" rm --force sr >/dev/null
pass "a stopped job is refused, periodic checkpoints keep the good ones, a SIGSTOP during a checkpoint is kept"
