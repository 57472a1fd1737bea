#!/bin/bash
# `run --log-size` holds for a restore by a new supervisor (after a reboot or a killed
# supervisor): it comes from jobs/NAME/ckpt-policy. Before, that supervisor fell back to the
# default 4 MiB, and a log asked to be 64M lost its start. Here with 8K, which a forgotten
# size would exceed: the restored job prints 200 KB.
. "$(dirname "$0")/../lib.sh"
cat >job.py <<'PY'
import os, sys, time
open(sys.argv[1] + ".ready", "w").close()
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
for i in range(20000):
    sys.stdout.write("%09d\n" % i)
PY
state_is() { "$CKPTENV" status "$1" | grep -Eq "state: *($2)"; }
"$CKPTENV" run --name g --detach --log-size 8K -- python3 "$T/job.py" "$T/go" </dev/null >/dev/null || fail "run"
poll_until 20 test -e go.ready || fail "the job does not run"
"$CKPTENV" checkpoint g >/dev/null 2>err.txt || fail "checkpoint: $(cat err.txt)"
sup=$("$CKPTENV" status g | sed -n 's/^pid: .*(supervisor \([0-9]*\)).*/\1/p')
kill -9 "$sup"
poll_until 10 state_is g died || fail "the job outlived its supervisor"
"$CKPTENV" restore g --detach >/dev/null 2>err.txt || fail "restore: $(cat err.txt)"
touch go
poll_until 30 state_is g "exited 0" || fail "the restored job did not finish: $("$CKPTENV" status g | grep state)"
size=$("$CKPTENV" log g | wc -c)
[ "$size" -le 8192 ] || fail "the log holds $size bytes, more than --log-size 8K"
"$CKPTENV" log g | tail -1 | grep -qx 000019999 || fail "the log lacks the last line: $("$CKPTENV" log g | tail -1)"
pass "run --log-size holds after a restore by a new supervisor"
