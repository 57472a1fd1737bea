#!/usr/bin/env bash
# A client that attaches while the job is in the alternate screen (less, vim) gets the normal
# screen drawn too, under it: when the program exits, the shell's screen is there. Before, the
# alternate screen alone was drawn, so after `q` the client showed its own old screen and the
# job's cursor row no longer matched it.
source "$(dirname "$0")/../lib.sh"
command -v less >/dev/null || skip "less missing"
tmux_start
E="env CKPTENV_HOME=$CKPTENV_HOME PS1=ck-prompt\$\\  TERM=xterm LESS= LESSHISTFILE=-"
seq 1 200 | sed 's/^/page-line-/' >page.txt
less_detached() { # SESSION: start less on the page there, then detach that client
	$TM send-keys -t "$1" "less $T/page.txt" Enter
	poll_until 10 has "$1" '^page-line-1$' || fail "$1: less did not start: $(pane "$1")"
	$TM send-keys -t "$1" 'C-\'
	poll_until 10 has "$1" 'detached from v' || fail "$1: detach: $(pane "$1")"
}

$TM new-session -d -s a -x 80 -y 20 "$E $CKPTENV run --name v -- /bin/bash --norc -i; sleep 60"
poll_until 10 has a 'ck-prompt' || fail "no prompt: $(pane a)"
$TM send-keys -t a 'echo ck-normal-$((40+2))' Enter
poll_until 10 has a '^ck-normal-42' || fail "no output: $(pane a)"
less_detached a

$TM new-session -d -s b -x 80 -y 20 "$E $CKPTENV attach v; sleep 60"
poll_until 10 has b '^page-line-1$' || fail "the alternate screen not redrawn: $(pane b)"
# The redraw left the job's screen model alone: scrolled on, a second client sees the same.
# (One key at a time until the top line is 6: less drops typeahead on the attach's SIGWINCH.)
top() { pane b | head -1; }
for i in $(seq 1 20); do
	before=$(top)
	[ "$before" = page-line-6 ] && break
	$TM send-keys -t b j
	poll_until 3 sh -c "[ \"\$($TM capture-pane -p -t b | head -1)\" != '$before' ]" || true
done
expect_eq "less's top line after scrolling" page-line-6 "$(top)"
$TM new-session -d -s d -x 80 -y 20 "$E $CKPTENV attach --read-only v; sleep 60"
poll_until 10 has d '^page-line-6$' || fail "a second client in the alternate screen: $(pane d)"
expect_eq "the alternate screen seen by two clients" "$(pane b | sed 's/ *$//')" "$(pane d | sed 's/ *$//')"
$TM kill-session -t d
$TM send-keys -t b q
poll_until 10 sh -c "! $TM capture-pane -p -t b | grep -q '^page-line-1\$'" || fail "less did not exit: $(pane b)"
poll_until 10 has b '^ck-normal-42' || fail "the normal screen is not there after less exits: $(pane b)"
$TM send-keys -t b 'echo ck-after-$((6*7))' Enter
poll_until 10 has b '^ck-after-42' || fail "the shell does not go on: $(pane b)"
# The job's idea of the screen and the client's agree: a fresh attach shows the same rows.
$TM new-session -d -s c -x 80 -y 20 "$E $CKPTENV attach --read-only v; sleep 60"
poll_until 10 has c '^ck-after-42' || fail "third attach: $(pane c)"
expect_eq "the screen seen by two clients" "$(pane b | sed 's/ *$//')" "$(pane c | sed 's/ *$//')"
# Also when the attaching client has another size than the job had (its normal screen then
# fitted: the bottom rows, the columns cut): less again, detach, attach from a 60x16 client.
$TM kill-session -t c
less_detached b
$TM new-session -d -s e -x 60 -y 16 "$E $CKPTENV attach v; sleep 60"
poll_until 10 has e '^page-line-1$' || fail "60x16: the alternate screen not redrawn: $(pane e)"
$TM send-keys -t e q
poll_until 10 has e '^ck-after-42' || fail "60x16: the normal screen is not there after less exits: $(pane e)"
"$CKPTENV" rm --force v >/dev/null
pass "an attach in the alternate screen draws the normal one under it"
