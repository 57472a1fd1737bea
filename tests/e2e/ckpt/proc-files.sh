#!/bin/bash
# A job that keeps files of its /proc open (top keeps /proc/stat and /proc/meminfo) restores:
# its /proc is mounted anew by each run, so their identity never matched the image's and every
# restore was refused ("/proc/stat was replaced since the checkpoint (device 0:21, was 0:42)")
# unless --allow-changed named each file. In place after --stop, and by a new supervisor.
. "$(dirname "$0")/../lib.sh"
cat >job.py <<'PY'
import sys, time
f, g = open("/proc/stat"), open("/proc/self/status")
for i in range(100000):
    f.seek(0); g.seek(0)
    ok = f.read().startswith("cpu") and "Pid:" in g.read()
    print("read", i, ok, flush=True)
    time.sleep(0.05)
PY
state_is() { "$CKPTENV" status "$1" | grep -Eq "state: *($2)"; }
reads() { "$CKPTENV" log p | grep -ac '^read .* True$'; }
reads_above() { [ "$(reads)" -gt "$1" ]; }
"$CKPTENV" run --name p --detach -- python3 "$T/job.py" </dev/null >/dev/null || fail "run"
poll_until 20 reads_above 3 || fail "the job does not read: $("$CKPTENV" log p | tail -3)"
"$CKPTENV" checkpoint p --stop >/dev/null 2>err.txt || fail "checkpoint --stop: $(cat err.txt)"
"$CKPTENV" restore p --detach >/dev/null 2>err.txt || fail "restore in place: $(cat err.txt)"
n=$(reads)
poll_until 20 reads_above $((n + 3)) || fail "no reads after the restore in place: $("$CKPTENV" log p | tail -3)"
"$CKPTENV" checkpoint p >/dev/null 2>err.txt || fail "checkpoint: $(cat err.txt)"
sup=$("$CKPTENV" status p | sed -n 's/^pid: .*(supervisor \([0-9]*\)).*/\1/p')
kill -9 "$sup"
poll_until 10 state_is p died || fail "the job outlived its supervisor"
"$CKPTENV" restore p --detach >/dev/null 2>err.txt || fail "restore: $(cat err.txt)"
n=$(reads)
poll_until 20 reads_above $((n + 3)) || fail "no reads after the restore: $("$CKPTENV" log p | tail -3)"
"$CKPTENV" log p | grep -aq '^read .* False$' && fail "a read of /proc went wrong"
"$CKPTENV" rm --force p >/dev/null
pass "files of the job's /proc open across a restore in place and one by a new supervisor"
