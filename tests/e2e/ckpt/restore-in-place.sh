#!/bin/bash
# Restore while the supervisor lives. `checkpoint --stop` ends the job but not its supervisor:
# the terminal that ran it (`ckptenv run` in tmux) stays attached and sees one notice line, a
# new attach is accepted and shows the screen; `restore` reuses that supervisor, the attached
# terminal is redrawn and types into the restored job, which verifies its memory and /tmp
# (zdtm-seq); an older checkpoint restores in place too; the `run` client finally gets the job's
# exit status. The same for a pipe-mode `run` client (byte-exact stdout, no gap). A job with a
# checkpoint policy killed by SIGKILL (as by the OOM killer) is kept for a restore in place too;
# one without a policy, or killed through ckptenv, just ends.
. "$(dirname "$0")/../lib.sh"
SEQ=$CK_HELPERS/zdtm-seq
LOOP=$CK_HELPERS/zdtm-loop
[ -x "$SEQ" ] && [ -x "$LOOP" ] || fail "missing helpers in $CK_HELPERS"
tmux_start
E="env CKPTENV_HOME=$CKPTENV_HOME TERM=xterm"
sup_of() { sed -n "s/.*supervisor $1\[\([0-9]*\)\]: starting.*/\1/p" "$CKPTENV_HOME/jobs/$1/log" | tail -1; }
state_is() { "$CKPTENV" status "$1" | grep "state: *$2" >/dev/null; }
# Type "v" until the helper answers (keys typed while the restorer runs can be lost).
verify() {
	local n; n=$(pane a | grep -c "OK $1" || true)
	for try in 1 2 3 4 5 6 7 8 9 10; do
		$TM send-keys -t a v Enter
		poll_until 1 sh -c "[ \$($TM capture-pane -p -t a | grep -c 'OK $1') -gt $n ] || $TM capture-pane -p -t a | grep -q BAD" && break
	done
	pane a | grep -q BAD && fail "$2: $(pane a | grep BAD)"
	[ "$(pane a | grep -c "OK $1")" -gt "$n" ] || fail "$2: no answer: $(pane a)"
}

$TM new-session -d -s a -x 80 -y 24 "$E $CKPTENV run --name s -- $SEQ; echo run-rc=\$?; sleep 60"
poll_until 10 has a 'seq ready' || fail "helper not ready: $(pane a)"
sup=$(sup_of s)
$TM send-keys -t a n Enter
poll_until 10 has a "STEP 1" || fail "step 1: $(pane a)"
"$CKPTENV" checkpoint s >/dev/null 2>err.txt || fail "checkpoint 1: $(cat err.txt)"
$TM send-keys -t a n Enter
poll_until 10 has a "STEP 2" || fail "step 2: $(pane a)"
"$CKPTENV" checkpoint s --stop >/dev/null 2>err.txt || fail "checkpoint --stop: $(cat err.txt)"

# Stopped: the supervisor is the same, the run client still attached, told what happened.
state_is s stopped || fail "after --stop: $("$CKPTENV" status s)"
# No pid: the init it names is gone.
"$CKPTENV" list | grep -Eq '^s +stopped +- ' || fail "list: $("$CKPTENV" list)"
"$CKPTENV" list --json | grep -q '"pid"' && fail "list --json: a pid for a stopped job"
kill -0 "$sup" || fail "the supervisor ended with the job"
# A run under its name is told the job is stopped (it said "already running").
rc=0
"$CKPTENV" run --name s -- true </dev/null >/dev/null 2>err.txt || rc=$?
expect_eq "run of a stopped job's name" 1 "$rc"
grep -q "the job is stopped at a checkpoint; 'ckptenv restore s' resumes it" err.txt || fail "said: $(cat err.txt)"
poll_until 10 has a "job s stopped at checkpoint 2" || fail "no notice: $(pane a)"
has a "run-rc=" && fail "the run client left: $(pane a)"
$TM new-session -d -s w -x 80 -y 24 "$E $CKPTENV attach --read-only s; echo attach-rc=\$?; sleep 60"
poll_until 10 has w "STEP 2" || fail "attach while stopped: $(pane w)"
# ... and is told, as the clients attached at the --stop were (it saw only the old screen).
poll_until 10 has w "job s stopped at checkpoint 2; 'ckptenv restore s' resumes it here" ||
	fail "no notice for an attach while stopped: $(pane w)"

"$CKPTENV" checkpoint s 2>err.txt && fail "checkpoint of a stopped job accepted"
grep -q "job s is stopped; 'ckptenv restore s' resumes it" err.txt || fail "stopped: $(cat err.txt)"
"$CKPTENV" status s | grep -q '^pid:' && fail "status shows a pid for a stopped job"
# The checkpoint it is stopped at stays: dropped, a restore resumed it from checkpoint 1 and
# the work since was lost without a word (found by a testing helper).
"$CKPTENV" rm s --checkpoint 2 2>err.txt && fail "dropped the checkpoint s is stopped at"
expect_eq "its line" "ckptenv: rm s: job s is stopped at checkpoint 2: 'ckptenv restore s' resumes it from there; restore it first, or 'ckptenv rm s' to end it and delete its data" "$(cat err.txt)"
# Why it is stopped (status said only 'last exit: -').
"$CKPTENV" status s | grep -qx "stopped: *at checkpoint 2 ('checkpoint --stop'); 'ckptenv restore s' resumes it, 'ckptenv rm s' ends it and deletes its data" ||
	fail "status of a stopped job: $("$CKPTENV" status s)"
"$CKPTENV" list --json | grep -q '"name": "s", "state": "stopped", "stopped_by": "checkpoint", "checkpoint": 2,' ||
	fail "list --json of a stopped job: $("$CKPTENV" list --json)"
"$CKPTENV" snapshot s 2>err.txt && fail "a snapshot of a stopped job"
expect_eq "its line" "ckptenv: snapshot s: job s is stopped at a checkpoint: its /tmp is the checkpoint's; 'ckptenv restore s' resumes it, then snapshot" "$(cat err.txt)"
"$CKPTENV" snapshot s --drop ckpt-1 2>err.txt && fail "dropped a checkpoint's epoch alone"
grep -q "drop both with 'ckptenv rm s --checkpoint 1'" err.txt || fail "drop ckpt-1: $(cat err.txt)"

# Restore in place: same supervisor, the attached terminal redrawn and typing into the job.
"$CKPTENV" restore s --detach >/dev/null 2>err.txt || fail "restore in place: $(cat err.txt)"
expect_eq "supervisor after restore" "$sup" "$(sup_of s)"
grep -q "restoring checkpoint 2 in place" "$CKPTENV_HOME/jobs/s/log" || fail "not in place"
poll_until 10 sh -c "! $TM capture-pane -p -t a | grep -q 'ckptenv: job s stopped'" ||
	fail "the attached terminal was not redrawn: $(pane a)"
verify 2 "restore of checkpoint 2 in place"
$TM send-keys -t a n Enter
poll_until 10 has a "STEP 3" || fail "step 3 after restore: $(pane a)"

# An older checkpoint, in place: the screen and /tmp of step 1.
"$CKPTENV" checkpoint s --stop >/dev/null 2>err.txt || fail "second --stop: $(cat err.txt)"
"$CKPTENV" restore s 1 --detach >/dev/null 2>err.txt || fail "restore 1 in place: $(cat err.txt)"
poll_until 10 sh -c "! $TM capture-pane -p -t a | grep -q 'STEP 3'" || fail "screen of step 3 left: $(pane a)"
verify 1 "restore of checkpoint 1 in place"
has a "STEP 2" && fail "restore 1: the screen shows step 2: $(pane a)"
$TM send-keys -t a q Enter
poll_until 10 has a "run-rc=1" || fail "run did not get the job's status: $(pane a)"
poll_until 10 sh -c "! kill -0 $sup" || fail "supervisor outlived its job"

# Pipe mode: a `run` client relaying stdout byte for byte stays through --stop and a restore
# in place; its output goes on without a gap or any notice in it; it gets the final status.
"$CKPTENV" run --name pp -- "$LOOP" </dev/null >pp.out 2>pp.err &
runpid=$!
poll_until 10 sh -c "[ \$(grep -c '^count ' pp.out) -gt 20 ]" || fail "pp: no output: $(cat pp.err)"
"$CKPTENV" checkpoint pp --stop >/dev/null 2>err.txt || fail "pp --stop: $(cat err.txt)"
kill -0 "$runpid" || fail "the pipe-mode run client left at --stop"
n=$(grep -c '^count ' pp.out)
"$CKPTENV" restore pp --detach >/dev/null 2>err.txt || fail "pp restore in place: $(cat err.txt)"
poll_until 10 sh -c "[ \$(grep -c '^count ' pp.out) -gt $((n + 20)) ]" || fail "pp: output stopped"
p=$("$CKPTENV" status pp | sed -n 's/^pid: *\([0-9]*\) .*/\1/p')
kill -TERM "$(cat "/proc/$p/task/$p/children")"
rc=0; wait "$runpid" || rc=$?
expect_eq "pipe-mode run's exit status" 143 "$rc"
[ -z "$(grep -av '^count ' pp.out)" ] || fail "pp: foreign bytes in stdout: $(grep -av '^count ' pp.out | head -3)"
gaps=$(awk 'NR > 1 && $2 != p + 1 {print p "->" $2} {p = $2}' pp.out)
[ -z "$gaps" ] || fail "pp: the counter jumped across --stop and restore: $gaps"

# A crash (SIGKILL, as the OOM killer sends) of a job with a checkpoint policy: kept.
cmd_pid() { local p; p=$("$CKPTENV" status "$1" | sed -n 's/^pid: *\([0-9]*\) .*/\1/p'); cat "/proc/$p/task/$p/children" | tr -d ' '; }
counts() { "$CKPTENV" log "$1" | grep -a '^count ' | awk '{print $2}'; }
jumped() { counts "$1" | awk 'NR > 1 && $1 != p + 1 {j = 1} {p = $1} END {exit !j}'; }
"$CKPTENV" run --name c --detach --checkpoint-every 1h -- "$LOOP" </dev/null >/dev/null
poll_until 10 sh -c "[ \$('$CKPTENV' log c | grep -ac '^count ') -gt 20 ]" || fail "c does not count"
"$CKPTENV" checkpoint c >/dev/null 2>err.txt || fail "checkpoint c: $(cat err.txt)"
csup=$(sup_of c)
poll_until 10 sh -c "[ \$('$CKPTENV' log c | grep -ac '^count ') -gt 60 ]" || fail "c stopped counting"
kill -9 "$(cmd_pid c)"
poll_until 10 state_is c stopped || fail "crashed job not kept: $("$CKPTENV" status c)"
grep -q "job c was killed by signal 9" "$CKPTENV_HOME/jobs/c/log" || fail "crash not logged"
"$CKPTENV" status c | grep -Eqx "stopped: *killed by signal 9 \(Killed\); kept until [0-9: -]+ for 'ckptenv restore c' \(from checkpoint 1\), then it ends" ||
	fail "status of a crashed job: $("$CKPTENV" status c)"
"$CKPTENV" list --json | python3 -c '
import json, sys, time
j = [j for j in json.load(sys.stdin) if j["name"] == "c"][0]
assert j["stopped_by"] == "crash" and j["signal"] == 9 and j["checkpoint"] == 1, j
assert 500 < j["kept_until"] - time.time() <= 601, j' || fail "list --json of a crashed job"
"$CKPTENV" restore c --detach >/dev/null 2>err.txt || fail "restore after crash: $(cat err.txt)"
expect_eq "supervisor after the crash" "$csup" "$(sup_of c)"
poll_until 10 jumped c || fail "c did not go on from its checkpoint"
"$CKPTENV" rm --force c || fail "rm --force of c"

# A stopped job is removed by a plain rm (nothing runs), supervisor and all.
"$CKPTENV" run --name e --detach -- "$LOOP" </dev/null >/dev/null
poll_until 10 sh -c "[ \$('$CKPTENV' log e | grep -ac '^count ') -gt 5 ]" || fail "e does not count"
"$CKPTENV" checkpoint e --stop >/dev/null 2>err.txt || fail "checkpoint e --stop: $(cat err.txt)"
esup=$(sup_of e)
# Its only checkpoint stays: without it the job could be neither resumed nor run again, only
# removed with its /tmp (the drop was accepted; found by a testing helper).
"$CKPTENV" rm e --checkpoint 1 2>err.txt && fail "dropped a stopped job's last checkpoint"
expect_eq "its line" "ckptenv: rm e: checkpoint 1 is the last one of job e, which is stopped: without it nothing could resume the job; 'ckptenv restore e' first" "$(cat err.txt)"
"$CKPTENV" rm e 2>err.txt || fail "rm of a stopped job: $(cat err.txt)"
poll_until 10 sh -c "! kill -0 $esup" || fail "the stopped job's supervisor outlived rm"
[ ! -e "$CKPTENV_HOME/jobs/e" ] || fail "rm left jobs/e"

# Without a policy, a crash is an ordinary end.
"$CKPTENV" run --name d --detach -- "$LOOP" </dev/null >/dev/null
poll_until 10 sh -c "[ \$('$CKPTENV' log d | grep -ac '^count ') -gt 5 ]" || fail "d does not count"
"$CKPTENV" checkpoint d >/dev/null 2>err.txt || fail "checkpoint d: $(cat err.txt)"
kill -9 "$(cmd_pid d)"
poll_until 10 state_is d exited || fail "d: $("$CKPTENV" status d)"
pass "stop, restore in place with the terminal attached, older checkpoint, crash kept"
