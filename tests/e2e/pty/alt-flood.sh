#!/usr/bin/env bash
# A flood of output inside the alternate screen (a full-screen program printing fast) leaves
# the screen model right: the supervisor skips to the last screenful of a flood, and those
# lines now land on the screen the skipped bytes had switched to. Before, after
#   printf '\e[?1049h'; seq 1 100000; printf '\e[?1049l'; echo FIN
# a reattach showed the flood's numbers on the normal screen, and a program still in the
# alternate screen was redrawn blank. Also through a ring overflow (3 million lines).
source "$(dirname "$0")/../lib.sh"
tmux_start
E="env CKPTENV_HOME=$CKPTENV_HOME PS1=ck-prompt\$\\  TERM=xterm"
reattach() { # NAME SESSION: a fresh client of the same size
	$TM kill-session -t "$2" 2>/dev/null || true
	$TM new-session -d -s "$2" -x 80 -y 20 "$E $CKPTENV attach $1; sleep 60"
}

$TM new-session -d -s a -x 80 -y 20 "$E $CKPTENV run --name f -- /bin/bash --norc -i; sleep 60"
poll_until 10 has a 'ck-prompt' || fail "no prompt: $(pane a)"
for n in 100000 3000000; do
	$TM send-keys -t a "clear; echo NORMAL-$n; printf '\\e[?1049h'; seq 1 $n; printf '\\e[?1049l'; echo FIN-$n" Enter
	poll_until 60 has a "^FIN-$n" || fail "$n: no FIN on the live client: $(pane a)"
	poll_until 10 sh -c "$TM capture-pane -p -t a | grep -A1 '^FIN-$n' | grep -q ck-prompt" || fail "$n: no prompt"
	sleep 0.3 # the model is fed once output is quiet
	reattach f b
	poll_until 10 has b "^FIN-$n" || fail "$n: reattach lost FIN: $(pane b)"
	has b "^NORMAL-$n" || fail "$n: reattach lost the normal screen's NORMAL: $(pane b)"
	pane b | grep -Eq '^[0-9]+$' && fail "$n: the flood's lines on the normal screen after a reattach: $(pane b)"
	$TM kill-session -t b
done
# Still inside the alternate screen: its last lines are redrawn, not a blank screen.
$TM send-keys -t a "printf '\\e[?1049h'; seq 1 100000; echo END-ALT; read x; printf '\\e[?1049l'" Enter
poll_until 30 has a '^END-ALT' || fail "no END-ALT live: $(pane a)"
sleep 0.3
reattach f b
poll_until 10 has b '^END-ALT' || fail "the alternate screen redrawn without its last lines: $(pane b)"
has b '^100000$' || fail "100000 missing from the redraw: $(pane b)"
$TM send-keys -t a Enter
"$CKPTENV" rm --force f >/dev/null
pass "floods inside the alternate screen keep the screen model right"
