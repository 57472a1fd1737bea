#!/bin/bash
# A real program: a python3 loop that counts and prints time.monotonic() and time.time() is
# checkpointed, everything is killed (supervisor too), we stay down a few seconds, and the
# restored program counts on from the checkpoint with its monotonic clock continuous: never
# back, and forward across the restore by at most what the restore itself took, not by the
# downtime (its time namespace continues the clock from the checkpoint). Twice: the second
# checkpoint is of the restored job, whose clocks include its namespace's offsets.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
[ -x "$PY" ] || fail "no $PY (scripts/setup.sh installs python3)"
DOWN=2

sup_pid() { sed -n 's/.*supervisor j\[\([0-9]*\)\]: job started.*/\1/p' "$CKPTENV_HOME/jobs/j/log" | tail -1; }
# Whole records only: a line cut by the kill -9 may have the restored run's first one glued on.
lines() { "$CKPTENV" log j | grep -aoE '^n [0-9]+ [0-9]+\.[0-9]{6} [0-9]+\.[0-9]{6}$|n [0-9]+ [0-9]+\.[0-9]{6} [0-9]+\.[0-9]{6}$'; }
count_above() { [ "$(lines | tail -1 | awk '{print $2}')" -gt "$1" ]; }
# Every line logged before a restore is the previous run's (the job was dead by then): the
# restored run's lines come after those.
more_than() { [ "$(lines | wc -l)" -gt "$1" ]; }

cat >loop.py <<'PYEOF'
import sys, time
n = 0
while True:
    print("n %d %.6f %.6f" % (n, time.monotonic(), time.time()), flush=True)
    n += 1
    time.sleep(0.05)
PYEOF
"$CKPTENV" run --name j --detach -- "$PY" "$T/loop.py" </dev/null >/dev/null
poll_until 20 count_above 10 || fail "the python loop does not count: $("$CKPTENV" log j | tail -3)"

# checkpoint, kill -9 of everything, DOWN seconds down, restore; then check the clock across it.
# Round 2 checkpoints the restored job: its clocks then include its namespace's offsets.
round() {
	local r=$1 first nb
	"$CKPTENV" checkpoint j >/dev/null 2>err.txt || fail "checkpoint $r: $(cat err.txt)"
	local s; s=$(sup_pid)
	kill -9 "$s"
	poll_until 10 sh -c "! kill -0 $s" || fail "supervisor $s survived SIGKILL"
	poll_until 10 sh -c "'$CKPTENV' status j | grep -q 'state: *died'" || fail "job still up"
	nb=$(lines | wc -l)
	sleep $DOWN
	"$CKPTENV" restore j --detach >/dev/null 2>err.txt || fail "restore $r: $(cat err.txt)"
	poll_until 20 more_than "$nb" || fail "no output after restore $r: $(lines | tail -3 | tr '\n' ' ')"
	first=$(lines | sed -n "$((nb + 1))p" | awk '{print $2}')
	poll_until 20 count_above $((first + 20)) || fail "the loop stopped counting after restore $r"
	# The last line logged before the checkpoint (k-1, or earlier when the kill -9 took the
	# supervisor before its last lines reached the log) against line k, the restored run's
	# first: both clocks advance alike over the extra lines, so the check holds the same.
	lines | awk -v k="$first" -v nb="$nb" -v down="$DOWN" -v r="$r" '
		NR <= nb && $2 < k && $2 >= c0 { c0 = $2; m0 = $3; r0 = $4 }
		NR == nb + 1 { m1 = $3; r1 = $4 }
		NR > nb + 1 && $3 < pm { print "monotonic went back: " pm " -> " $3; bad = 1 }
		NR > nb { pm = $3 }
		END {
			if (m0 == "" || m1 == "") {
				print "lines around checkpoint " r " missing (" nb " before, count " k ")"
				exit 1
			}
			jump = m1 - m0; gap = r1 - r0
			printf "restore %d, count %d: monotonic +%.3f s, wall clock +%.3f s, downtime %d s\n",
				r, k, jump, gap, down
			if (jump < 0) { print "monotonic went back across the restore"; exit 1 }
			if (jump > gap - down + 0.25) { print "monotonic jumped by the downtime"; exit 1 }
			exit bad
		}' || { "$CKPTENV" log j | tail -n +$((nb - 3)) | head -8 >&2; fail "clock across restore $r"; }
}
round 1
round 2
pass "python3 counts on after kill -9 and restore, twice; time.monotonic() continuous"
