#!/bin/bash
# A real program: a python3 loop that counts and prints time.monotonic() and time.time() is
# checkpointed, everything is killed (supervisor too), we stay down a few seconds, and the
# restored program counts on from the checkpoint with its monotonic clock continuous: never
# back, and forward across the restore by at most what the restore itself took, not by the
# downtime (its time namespace continues the clock from the checkpoint).
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
[ -x "$PY" ] || fail "no $PY (scripts/setup.sh installs python3)"
DOWN=3

sup_pid() { sed -n 's/.*supervisor j\[\([0-9]*\)\]: job started.*/\1/p' "$CKPTENV_HOME/jobs/j/log" | tail -1; }
lines() { "$CKPTENV" log j | grep -a '^n '; }
count_above() { [ "$(lines | tail -1 | awk '{print $2}')" -gt "$1" ]; }
# The restored run starts where the count goes back (the original ran on after the checkpoint).
restarted() { lines | awk 'NR > 1 && $2 <= p {found = 1} {p = $2} END {exit !found}'; }

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
"$CKPTENV" checkpoint j >/dev/null 2>err.txt || fail "checkpoint: $(cat err.txt)"
s=$(sup_pid)
kill -9 "$s"
poll_until 10 sh -c "! kill -0 $s" || fail "supervisor $s survived SIGKILL"
poll_until 10 sh -c "'$CKPTENV' status j | grep -q 'state: *died'" || fail "job still up"
sleep $DOWN
"$CKPTENV" restore j --detach >/dev/null 2>err.txt || fail "restore: $(cat err.txt)"
poll_until 20 restarted || fail "no output after the restore: $(lines | tail -3 | tr '\n' ' ')"
first=$(lines | awk 'NR > 1 && $2 <= p {print $2; exit} {p = $2}')
poll_until 20 count_above $((first + 20)) || fail "the restored loop stopped counting"
# Line k-1 of the original run (before the checkpoint) against line k of the restored one.
lines | awk -v k="$first" -v down="$DOWN" '
	!restored && NR > 1 && $2 <= p { restored = 1 }
	{ p = $2 }
	!restored && $2 == k - 1 { m0 = $3; r0 = $4 }
	restored && $2 == k { m1 = $3; r1 = $4 }
	restored && pm != "" && $3 < pm { print "monotonic went back: " pm " -> " $3; bad = 1 }
	restored { pm = $3 }
	END {
		if (m0 == "" || m1 == "") { print "lines around the checkpoint missing"; exit 1 }
		jump = m1 - m0; gap = r1 - r0
		printf "count %d: monotonic +%.3f s, wall clock +%.3f s, downtime %d s\n", k, jump, gap, down
		if (jump < 0) { print "monotonic went back across the restore"; exit 1 }
		if (jump > gap - down + 0.25) { print "monotonic jumped by the downtime"; exit 1 }
		exit bad
	}' || fail "clock across the restore"
pass "python3 counts on after kill -9 and restore; time.monotonic() continuous"
