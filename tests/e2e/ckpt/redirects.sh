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

# A job that moved its stdout pipe to fd 5 and pointed fd 1 at /dev/null, as ssh does: the
# checkpoint succeeded and every restore failed ("fd 5 is a pipe whose other end was held
# outside the job"), so --stop ended the job for good. Now fd 5 is the restored job's stdout
# pipe again, and fd 1 /dev/null (it used to become the stdout pipe too).
cat >moved.py <<'PY'
import os, time
os.dup2(1, 5); n = os.open("/dev/null", os.O_RDWR); os.dup2(n, 1); os.close(n)
for i in range(1, 301):
    os.write(5, b"n %d\n" % i); os.write(1, b"leak\n"); time.sleep(0.01)
os.write(5, b"end\n")
PY
n_above() { local n; n=$("$CKPTENV" log m | sed -n 's/^n //p' | tail -1) && [ -n "$n" ] && [ "$n" -gt "$1" ]; }
proc_of() { local p; p=$(job_pid "$1") && cat "/proc/$p/task/$p/children" | cut -d' ' -f1; }
fd1_null() { local p; p=$(proc_of m) && [ -n "$p" ] && [ "$(readlink "/proc/$p/fd/1")" = /dev/null ]; }
"$CKPTENV" run --name m --detach -- python3 "$T/moved.py" </dev/null >/dev/null || fail "m: run"
poll_until 20 n_above 20 || fail "m: no progress"
"$CKPTENV" checkpoint m --stop >/dev/null 2>err.txt || fail "m: checkpoint --stop: $(cat err.txt)"
"$CKPTENV" restore m --detach >/dev/null 2>err.txt || fail "m: restore in place: $(cat err.txt)"
poll_until 20 n_above 100 || fail "m: no progress after the restore in place: $("$CKPTENV" log m | tail -3)"
fd1_null || fail "m: fd 1 of the restored job is $(readlink "/proc/$(proc_of m)/fd/1"), not /dev/null"
"$CKPTENV" checkpoint m >/dev/null 2>err.txt || fail "m: checkpoint: $(cat err.txt)"
sup=$("$CKPTENV" status m | sed -n 's/^pid: .*(supervisor \([0-9]*\)).*/\1/p')
kill -9 "$sup"
poll_until 10 state_is m died || fail "m: the job survived its supervisor"
"$CKPTENV" restore m --detach >/dev/null 2>err.txt || fail "m: restore: $(cat err.txt)"
poll_until 30 state_is m exited || fail "m: the restored job did not finish: $("$CKPTENV" log m | tail -3)"
"$CKPTENV" status m | grep -q 'state: *exited 0' || fail "m: $("$CKPTENV" status m | grep state)"
"$CKPTENV" log m | grep -aq leak && fail "m: what the job wrote to /dev/null reached its log"
"$CKPTENV" log m | sed -n 's/^n //p' | sort -nu >got.txt
seq 1 300 | cmp -s - got.txt || fail "m: numbers missing from the log: $(seq 1 300 | diff - got.txt | head -3)"
"$CKPTENV" log m | grep -aqx end || fail "m: no end line"
pass "stdin, stdout and stderr redirected to files, and 100 /tmp files, come back; a refusal is told; a moved stdout pipe too"
