#!/bin/bash
# Scheduling and prctl attributes a job set on itself come back with it: its nice value, its
# CPU affinity (pinned to CPU 0), its parent-death signal, and PR_SET_DUMPABLE 0 (ssh-agent's
# protection from ptrace and core dumps). Before, a restored job ran at nice 0 on every CPU,
# its pdeathsig gone, dumpable again. Both ways: restore in place, and by a new supervisor.
. "$(dirname "$0")/../lib.sh"
cat >job.py <<'PY'
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
os.nice(5)
os.sched_setaffinity(0, {0})
libc.prctl(1, 10, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGUSR1
libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE
sig = ctypes.c_int()
while True:
    libc.prctl(2, ctypes.byref(sig), 0, 0, 0)  # PR_GET_PDEATHSIG
    print("attrs nice=%d cpus=%s pdeathsig=%d dumpable=%d" % (os.nice(0), sorted(os.sched_getaffinity(0)),
          sig.value, libc.prctl(3, 0, 0, 0, 0)), flush=True)  # PR_GET_DUMPABLE
    time.sleep(0.05)
PY
want="attrs nice=5 cpus=[0] pdeathsig=10 dumpable=0"
state_is() { "$CKPTENV" status "$1" | grep -Eq "state: *($2)"; }
lines() { "$CKPTENV" log a | grep -ac '^attrs'; }
more() { [ "$(lines)" -gt "$1" ]; }
"$CKPTENV" run --name a --detach -- python3 "$T/job.py" </dev/null >/dev/null || fail "run"
poll_until 20 more 2 || fail "no output: $("$CKPTENV" log a | tail -2)"
expect_eq "before" "$want" "$("$CKPTENV" log a | grep -a '^attrs' | tail -1)"
"$CKPTENV" checkpoint a --stop >/dev/null 2>err.txt || fail "checkpoint --stop: $(cat err.txt)"
n=$(lines)
"$CKPTENV" restore a --detach >/dev/null 2>err.txt || fail "restore in place: $(cat err.txt)"
poll_until 20 more $((n + 2)) || fail "no output after the restore in place"
expect_eq "after the restore in place" "$want" "$("$CKPTENV" log a | grep -a '^attrs' | tail -1)"
"$CKPTENV" checkpoint a >/dev/null 2>err.txt || fail "checkpoint: $(cat err.txt)"
kill -9 "$("$CKPTENV" status a | sed -n 's/^pid: .*(supervisor \([0-9]*\)).*/\1/p')"
poll_until 10 state_is a died || fail "the job survived its supervisor"
n=$(lines)
"$CKPTENV" restore a --detach >/dev/null 2>err.txt || fail "restore: $(cat err.txt)"
poll_until 20 more $((n + 2)) || fail "no output after the restore"
expect_eq "after a restore by a new supervisor" "$want" "$("$CKPTENV" log a | grep -a '^attrs' | tail -1)"
"$CKPTENV" rm --force a >/dev/null
pass "nice, CPU affinity, pdeathsig and PR_SET_DUMPABLE 0 restored"
