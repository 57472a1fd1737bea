#!/bin/bash
# The job's file locks come back with it: flock, POSIX (lockf, on a byte range) and OFD locks on
# files outside /tmp, a POSIX lock on a file that is also mapped (as SQLite's -shm: the restorer's
# close of its mapping fd dropped it again), and a flock on a /tmp file. Before, every restore dropped them silently:
# the job believed it held its lock file while another process took it. After checkpoint --stop
# and a restore in place, and after a kill -9 of the supervisor and a restore, a process on the
# host cannot take them; while one holds a lock the job had, the restore is refused in one line
# (the job stays stopped) and succeeds once it is released.
. "$(dirname "$0")/../lib.sh"
touch lk1 lk2 lk3
head -c 4096 /dev/zero >lk5
cat >job.py <<PY
import fcntl, mmap, os, struct, time
e = open("$T/lk5", "r+b"); m = mmap.mmap(e.fileno(), 4096); fcntl.lockf(e, fcntl.LOCK_EX)
a = open("$T/lk1", "r+"); fcntl.flock(a, fcntl.LOCK_EX)
b = open("$T/lk2", "r+"); fcntl.lockf(b, fcntl.LOCK_EX, 10, 5)          # bytes 5..14
c = open("$T/lk3", "r+"); fcntl.fcntl(c, 37, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0))  # F_OFD_SETLK
d = open("/tmp/lk4", "w"); fcntl.flock(d, fcntl.LOCK_SH)
open("$T/ready", "w").close()
while True:
    time.sleep(0.1)
PY
cat >probe.py <<'PY'
import fcntl, struct, sys
d = sys.argv[1]
free = []
try:
    f = open(d + "/lk1", "r+"); fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB); free.append("flock")
except OSError: pass
try:
    f = open(d + "/lk2", "r+"); fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 9); free.append("posix")
except OSError: pass
try:
    f = open(d + "/lk2", "r+"); fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 20)  # outside the range
except OSError: free.append("posix-range-too-wide")
try:
    f = open(d + "/lk3", "r+"); fcntl.fcntl(f, 37, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0)); free.append("ofd")
except OSError: pass
try:
    f = open(d + "/lk5", "r+"); fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB); free.append("posix-mapped")
except OSError: pass
print(" ".join(free) or "all held")
PY
state_is() { "$CKPTENV" status "$1" | grep -Eq "state: *($2)"; }
proc_of() { local p; p=$("$CKPTENV" status "$1" | sed -n 's/^pid: *\([0-9]*\) .*/\1/p') && cut -d' ' -f1 "/proc/$p/task/$p/children"; }
tmp_lock_held() { # the job's shared flock on /tmp/lk4, seen from a second open in the job's /tmp
	local p; p=$(proc_of l) && python3 -c "
import fcntl, sys
f = open('/proc/$p/root/tmp/lk4')
try: fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')
except OSError: print('held')"
}
"$CKPTENV" run --name l --detach -- python3 "$T/job.py" </dev/null >/dev/null || fail "run"
poll_until 20 test -e ready || fail "the job did not start: $("$CKPTENV" log l | tail -3)"
expect_eq "before" "all held" "$(python3 probe.py "$T")"
expect_eq "before, /tmp" "held" "$(tmp_lock_held)"

"$CKPTENV" checkpoint l --stop >/dev/null 2>err.txt || fail "checkpoint --stop: $(cat err.txt)"
expect_eq "stopped" "flock posix ofd posix-mapped" "$(python3 probe.py "$T")"
"$CKPTENV" restore l --detach >/dev/null 2>err.txt || fail "restore in place: $(cat err.txt)"
expect_eq "after the restore in place" "all held" "$(python3 probe.py "$T")"
expect_eq "after the restore in place, /tmp" "held" "$(tmp_lock_held)"

"$CKPTENV" checkpoint l >/dev/null 2>err.txt || fail "checkpoint: $(cat err.txt)"
sup=$("$CKPTENV" status l | sed -n 's/^pid: .*(supervisor \([0-9]*\)).*/\1/p')
kill -9 "$sup"
poll_until 10 state_is l died || fail "the job outlived its supervisor"
# Someone takes the job's flock meanwhile: the restore is refused, saying which lock.
python3 -c "import fcntl, time; f = open('$T/lk1'); fcntl.flock(f, fcntl.LOCK_EX); time.sleep(60)" &
holder=$!
poll_until 10 sh -c "! flock -n '$T/lk1' true" || fail "the holder did not take lk1"
rc=0
"$CKPTENV" restore l --detach >/dev/null 2>err.txt || rc=$?
expect_eq "restore while lk1 is held elsewhere" 1 "$rc"
grep -q "the FLOCK write lock the job held on $T/lk1 (fd [0-9]*) is held by another process now" err.txt ||
	fail "not said: $(cat err.txt)"
kill "$holder"; wait "$holder" 2>/dev/null || true
"$CKPTENV" restore l --detach >/dev/null 2>err.txt || fail "restore: $(cat err.txt)"
expect_eq "after the restore by a new supervisor" "all held" "$(python3 probe.py "$T")"
expect_eq "after the restore by a new supervisor, /tmp" "held" "$(tmp_lock_held)"
"$CKPTENV" rm --force l >/dev/null
pass "flock, POSIX and OFD locks are held again after a restore, or the restore says who has one"
