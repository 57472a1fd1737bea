#!/bin/bash
# A job with an fd near its open-file hard limit: the restorer holds the image's fds twice for a
# moment, so such a checkpoint succeeded and every restore of it failed ("Too many open files",
# "Invalid argument"): the job lost (found by a testing helper with 10,000 fds, and one at fd
# 19999 under a hard limit of 20000). Now either the checkpoint is refused in one line and the
# job runs on, or (a supervisor that may lift the limit: CAP_SYS_RESOURCE) it restores.
. "$(dirname "$0")/../lib.sh"
cat >job.py <<'PY'
import os, sys, time
fd = os.open("/tmp/f", os.O_RDWR | os.O_CREAT)
os.dup2(fd, int(sys.argv[1])); os.close(fd)
n = 0
while True:
    n += 1
    print("tick", n, flush=True)
    time.sleep(0.05)
PY
ticks() { "$CKPTENV" log "$1" | grep -ac '^tick'; }
more() { [ "$(ticks "$1")" -gt "$2" ]; }
caps=$(sed -n 's/^CapEff:\t//p' /proc/self/status)
lift=$(( (0x$caps >> 24) & 1 ))
for at in 900 1010; do
	j=f$at
	(ulimit -n 1024 && ulimit -Hn 1024 && "$CKPTENV" run --name $j --detach -- python3 "$T/job.py" $at </dev/null >/dev/null) ||
		fail "$j: run"
	poll_until 20 more $j 2 || fail "$j: no output: $("$CKPTENV" log $j | tail -2)"
	rc=0
	"$CKPTENV" checkpoint $j --stop >/dev/null 2>err.txt || rc=$?
	if [ $at = 1010 ] && [ $lift = 0 ]; then
		expect_eq "$j: checkpoint" 1 "$rc"
		grep -q "^ckptenv: checkpoint $j: the job has [0-9]* fds open, up to fd 1010, .* over the open-file limit 1024; close some, or start the job from a shell with a higher hard limit (ulimit -Hn)$" err.txt ||
			fail "$j: said: $(cat err.txt)"
		n=$(ticks $j)
		poll_until 20 more $j "$n" || fail "$j: the job did not run on"
	else
		expect_eq "$j: checkpoint --stop ($(cat err.txt))" 0 "$rc"
		n=$(ticks $j)
		"$CKPTENV" restore $j --detach >/dev/null 2>err.txt || fail "$j: restore: $(cat err.txt)"
		poll_until 20 more $j "$n" || fail "$j: not going after the restore: $("$CKPTENV" log $j | tail -2)"
	fi
	"$CKPTENV" rm --force $j >/dev/null
done
pass "an fd near the open-file limit: refused at checkpoint, or restored"
