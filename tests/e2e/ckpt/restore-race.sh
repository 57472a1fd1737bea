#!/bin/bash
# Two `restore` of the same ended job at once (two terminals after a reboot): one restores it,
# the other is refused with one line that fits restore (no `run` advice), and one job runs.
. "$(dirname "$0")/../lib.sh"
LOOP=$CK_HELPERS/zdtm-loop
[ -x "$LOOP" ] || fail "missing helper $LOOP"

"$CKPTENV" run --name j --detach -- "$LOOP" </dev/null >/dev/null
poll_until 10 sh -c "'$CKPTENV' log j | grep -aq '^count 5'" || fail "the counter does not run"
"$CKPTENV" checkpoint j >/dev/null 2>ckpt.txt || fail "checkpoint: $(cat ckpt.txt)"
sup=$("$CKPTENV" status j | sed -n 's/^pid: .*(supervisor \([0-9]*\))/\1/p')
[ -n "$sup" ] || fail "no supervisor pid: $("$CKPTENV" status j)"
kill -9 "$sup"
poll_until 10 sh -c "'$CKPTENV' status j | grep -q 'state: *died'" || fail "job still up"

for round in 1 2 3 4 5 6; do
	"$CKPTENV" restore j --detach </dev/null >out1.txt 2>err1.txt &
	p1=$!
	"$CKPTENV" restore j --detach </dev/null >out2.txt 2>err2.txt &
	p2=$!
	rc1=0 rc2=0
	wait $p1 || rc1=$?
	wait $p2 || rc2=$?
	[ $((rc1 == 0)) -ne $((rc2 == 0)) ] || fail "round $round: exits $rc1 and $rc2: $(cat err1.txt err2.txt)"
	[ "$rc1" = 0 ] && err=err2.txt || err=err1.txt
	expect_eq "round $round: lines of the refusal" 1 "$(wc -l <"$err")"
	grep -Eq "^ckptenv: restore j: the job is (already )?running" "$err" || fail "round $round: $(cat "$err")"
	grep -q -- "--name" "$err" && fail "round $round: run's advice for a restore: $(cat "$err")"
	"$CKPTENV" status j | grep -q 'state: *running' || fail "round $round: $("$CKPTENV" status j)"
	sup=$("$CKPTENV" status j | sed -n 's/^pid: .*(supervisor \([0-9]*\))/\1/p')
	kill -9 "$sup"
	poll_until 10 sh -c "'$CKPTENV' status j | grep -q 'state: *died'" || fail "round $round: job still up"
done
pass "concurrent restores: one wins, the other is told in one line"
