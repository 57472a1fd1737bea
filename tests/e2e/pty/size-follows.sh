#!/usr/bin/env bash
# The job's window size follows the newest writer client still attached: when a second,
# smaller client detaches, the size goes back to the first one's (it stayed at the gone
# client's until someone resized); and after `checkpoint --stop` a restore in place gets the
# attached client's size as it is now, not the checkpoint's.
source "$(dirname "$0")/../lib.sh"
tmux_start
E="env CKPTENV_HOME=$CKPTENV_HOME PS1=ck-prompt\$\\  TERM=xterm"
size_is() { # SESSION ROWS COLS: asks the job, waits for the answer on that pane
	local tag="sz$RANDOM"
	$TM send-keys -t "$1" "echo $tag \$(stty size)" Enter
	poll_until 10 has "$1" "^$tag $2 $3\$" || fail "$1: stty size is not $2 $3: $(pane "$1" | grep "^$tag" | tail -1)"
}

$TM new-session -d -s a -x 90 -y 25 "$E $CKPTENV run --name z -- /bin/bash --norc -i; sleep 60"
poll_until 10 has a 'ck-prompt' || fail "no prompt: $(pane a)"
size_is a 25 90
$TM new-session -d -s b -x 60 -y 20 "$E $CKPTENV attach z; sleep 60"
poll_until 10 has b 'ck-prompt' || fail "attach: $(pane b)"
size_is b 20 60
$TM send-keys -t b 'C-\'
poll_until 10 has b 'detached from z' || fail "detach: $(pane b)"
size_is a 25 90

"$CKPTENV" checkpoint z --stop >/dev/null 2>err.txt || fail "checkpoint --stop: $(cat err.txt)"
$TM resize-window -t a -x 80 -y 22
"$CKPTENV" restore z --detach >/dev/null 2>err.txt || fail "restore: $(cat err.txt)"
sleep 1 # keys typed while the restorer still runs can be lost (docs/checkpoint.md)
size_is a 22 80
"$CKPTENV" rm --force z >/dev/null
pass "the size follows the newest attached writer, also after a detach and a restore in place"
