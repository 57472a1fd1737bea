#!/bin/bash
# A job that redirected its own stdio to files comes back with them: stdin from a file outside
# /tmp (at its offset), stdout and stderr to a file in /tmp, and 100 more /tmp files open.
# Before, 0/1/2 were always the job's pipes after a restore (its output went to the log, its
# input was cut short, exit 0), and more than 64 open /tmp files made every restore fail.
# The job reads 400 numbered lines slowly; across `checkpoint --stop` and a restore in place,
# then a checkpoint, a kill -9 of the supervisor and a restore by a new one, /tmp/out must end
# up holding exactly "got 1" .. "got 400".
. "$(dirname "$0")/../lib.sh"
seq 1 400 >in.txt
cat >job.py <<'PY'
import sys, time
keep = [open("/tmp/k%d" % i, "w") for i in range(100)]
for line in sys.stdin:
    print("got", line.strip(), flush=True)
    time.sleep(0.005)
print("done", file=sys.stderr, flush=True)
PY
state_is() { "$CKPTENV" status "$1" | grep -Eq "state: *($2)"; }
job_pid() { "$CKPTENV" status "$1" | sed -n 's/^pid: *\([0-9]*\) .*/\1/p'; }
got() { local p; p=$(job_pid r) && [ -n "$p" ] && tail -1 "/proc/$p/root/tmp/out" 2>/dev/null | sed -n 's/^got //p'; }
got_above() { local g; g=$(got) && [ -n "$g" ] && [ "$g" -gt "$1" ]; }

"$CKPTENV" run --name r --detach -- sh -c "exec python3 '$T/job.py' <'$T/in.txt' >/tmp/out 2>&1" </dev/null >/dev/null ||
	fail "run"
poll_until 20 got_above 40 || fail "no progress"
"$CKPTENV" checkpoint r --stop >/dev/null 2>err.txt || fail "checkpoint --stop: $(cat err.txt)"
"$CKPTENV" restore r --detach >/dev/null 2>err.txt || fail "restore in place: $(cat err.txt)"
poll_until 20 got_above 120 || fail "no progress after the restore in place: $("$CKPTENV" log r | tail -3)"
"$CKPTENV" checkpoint r >/dev/null 2>err.txt || fail "checkpoint: $(cat err.txt)"
sup=$("$CKPTENV" status r | sed -n 's/^pid: .*(supervisor \([0-9]*\)).*/\1/p')
kill -9 "$sup"
poll_until 10 state_is r died || fail "the job survived its supervisor"
"$CKPTENV" restore r --detach >/dev/null 2>err.txt || fail "restore: $(cat err.txt)"
poll_until 30 state_is r exited || fail "the restored job did not finish: $("$CKPTENV" log r | tail -3)"
"$CKPTENV" status r | grep -q 'state: *exited 0' || fail "$("$CKPTENV" status r | grep state)"
"$CKPTENV" log r | grep -aq '^got' && fail "the job's output went to its log (stdout became the pipe)"
"$CKPTENV" run --name r -- cat /tmp/out >out.txt || fail "cannot read /tmp/out"
{ seq -f 'got %g' 1 400; echo done; } >want.txt
cmp -s want.txt out.txt || fail "/tmp/out differs: $(diff want.txt out.txt | head -5)"

# A restore that fails once the fds are in place (its cwd is gone) says why, although the
# job's stderr is a file of its own: the message went into that file, and `restore` said 0.
mkdir "$T/wd"
(cd "$T/wd" && "$CKPTENV" run --name w --detach -- sh -c 'exec 2>/tmp/err.log; exec sleep 100') </dev/null >/dev/null
"$CKPTENV" checkpoint w --stop >/dev/null 2>err.txt || fail "w: checkpoint --stop: $(cat err.txt)"
rmdir "$T/wd"
rc=0
"$CKPTENV" restore w --detach >/dev/null 2>err.txt || rc=$?
expect_eq "w: restore without its cwd" 1 "$rc"
grep -q "cannot change to $T/wd: No such file or directory" err.txt || fail "w: no reason: $(cat err.txt)"
state_is w stopped || fail "w: not stopped after the refused restore"
"$CKPTENV" rm --force w >/dev/null
pass "stdin, stdout and stderr redirected to files, and 100 /tmp files, come back; a refusal is told"
