#!/bin/bash
# SIGTERM and SIGHUP sent to the CLI reach the command (a trap in the job's shell).
. "$(dirname "$0")/../lib.sh"

for sig in TERM HUP; do
	rm -f "$T/ready" "$T/marker"
	"$CKPTENV" run --name sig -- sh -c "trap 'echo $sig > $T/marker; exit 9' $sig; touch $T/ready; while :; do sleep 0.05; done" </dev/null &
	cli=$!
	poll_until 20 test -e "$T/ready" || fail "job did not start"
	kill -"$sig" "$cli"
	rc=0; wait "$cli" || rc=$?
	expect_eq "CLI exit after SIG$sig" 9 "$rc"
	expect_eq "marker after SIG$sig" "$sig" "$(cat "$T/marker" 2>/dev/null)"
done

# SIGINT and SIGQUIT go to the command's whole process group (as Ctrl-C would): both the
# shell and its foreground child see it. A command started in the background by a script
# ignores them, so the CLI is started with default dispositions.
for sig in INT QUIT; do
	rm -f "$T/ready" "$T/marker" "$T/child"
	inner="trap 'echo child > $T/child; exit 0' $sig; touch $T/ready; while :; do sleep 0.05; done"
	python3 -c 'import os, signal, sys
for s in (signal.SIGINT, signal.SIGQUIT): signal.signal(s, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$CKPTENV" run --name sig -- \
		sh -c "trap 'echo $sig > $T/marker; exit 9' $sig; sh -c \"\$0\"; exit 1" "$inner" </dev/null &
	cli=$!
	poll_until 20 test -e "$T/ready" || fail "job did not start"
	kill -"$sig" "$cli"
	rc=0; wait "$cli" || rc=$?
	expect_eq "CLI exit after SIG$sig" 9 "$rc"
	expect_eq "shell marker after SIG$sig" "$sig" "$(cat "$T/marker" 2>/dev/null)"
	expect_eq "child marker after SIG$sig" "child" "$(cat "$T/child" 2>/dev/null)"
done

# An untrapped SIGTERM kills the command: 128+15.
rm -f "$T/ready"
"$CKPTENV" run --name sig -- sh -c "touch $T/ready; while :; do sleep 0.05; done" </dev/null &
cli=$!
poll_until 20 test -e "$T/ready" || fail "job did not start"
kill -TERM "$cli"
rc=0; wait "$cli" || rc=$?
expect_eq "CLI exit after untrapped SIGTERM" 143 "$rc"
pass "signals forwarded"
