#!/bin/bash
# A restore from every checkpoint of a run gives the state of that instant: zdtm-seq (on the
# job's terminal, in tmux) advances a sequence one step per line typed, writing it into /tmp,
# into its memory and to the terminal; a checkpoint after each step; then, with everything
# killed (a reboot), each checkpoint is restored in turn: the screen shows that step and no
# later one, /tmp/seq.txt holds that step, and the helper verifies its memory and /tmp itself.
. "$(dirname "$0")/../lib.sh"
SEQ=$CK_HELPERS/zdtm-seq
[ -x "$SEQ" ] || fail "missing helper $SEQ"
tmux_start
E="env CKPTENV_HOME=$CKPTENV_HOME TERM=xterm"
sup_pid() { sed -n 's/.*supervisor s\[\([0-9]*\)\]: job started.*/\1/p' "$CKPTENV_HOME/jobs/s/log" | tail -1; }
cmd_pid() { local p; p=$("$CKPTENV" status s | sed -n 's/^pid: *\([0-9]*\) .*/\1/p'); cat "/proc/$p/task/$p/children" | tr -d ' '; }
kill_all() {
	local s; s=$(sup_pid)
	kill -9 "$s"
	poll_until 10 sh -c "! kill -0 $s" || fail "supervisor $s survived SIGKILL"
	poll_until 10 sh -c "'$CKPTENV' status s | grep -q 'state: *died'" || fail "job still up"
}
STEPS=3

$TM new-session -d -s a -x 80 -y 24 "$E $CKPTENV run --name s -- $SEQ; sleep 60"
poll_until 10 has a 'seq ready' || fail "helper not ready: $(pane a)"
for k in $(seq 1 $STEPS); do
	$TM send-keys -t a n Enter
	poll_until 10 has a "STEP $k" || fail "step $k: $(pane a)"
	id=$("$CKPTENV" checkpoint s 2>err.txt) || fail "checkpoint $k: $(cat err.txt)"
	[ "$id" = "$k" ] || fail "checkpoint after step $k has id $id"
done
kill_all

for k in $(seq 1 $STEPS); do
	$TM new-session -d -s r$k -x 80 -y 24 "$E $CKPTENV restore s $k; echo restore-rc=\$?; sleep 60"
	poll_until 10 sh -c "'$CKPTENV' status s | grep -q 'state: *running'" || fail "restore $k: $(pane r$k)"
	# The terminal as it was: an attach redraws the screen of that instant.
	$TM new-session -d -s v$k -x 80 -y 24 "$E $CKPTENV attach --read-only s; sleep 60"
	poll_until 10 has v$k "STEP $k" || fail "restore $k: screen not redrawn: $(pane v$k)"
	pane v$k | grep -q "STEP $((k + 1))" && fail "restore $k: the screen shows a later step"
	# /tmp as it was, seen from outside.
	got=$(tr '\n' ' ' <"/proc/$(cmd_pid)/root/tmp/seq.txt")
	expect_eq "restore $k: /tmp/seq.txt" "$(seq 1 $k | tr '\n' ' ')" "$got"
	# Memory and /tmp as the helper sees them. Keys typed while the restorer still runs can be
	# lost (docs/checkpoint.md): ask again until it answers.
	for try in 1 2 3 4 5 6 7 8 9 10; do
		$TM send-keys -t r$k v Enter
		poll_until 1 sh -c "$TM capture-pane -p -t r$k | grep -q -e 'OK $k' -e BAD" && break
	done
	pane r$k | grep -q BAD && fail "restore $k: $(pane r$k | grep BAD)"
	has r$k "OK $k" || fail "restore $k: the helper does not answer: $(pane r$k)"
	kill_all
done
pass "each of $STEPS checkpoints restored its own step in /tmp, memory and on the terminal"
