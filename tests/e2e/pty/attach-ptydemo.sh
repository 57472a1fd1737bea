#!/usr/bin/env bash
# Through a real terminal (tmux): output, detach key, job keeps running while detached,
# reattach from another window redraws the screen (also less, full-screen), stty size follows
# the client, read-only cannot type, mouse mode reset after detach, pipe mode byte-exact.
# Driven by ptydemo (the library's test driver) until `ckptenv run/attach` are wired.
source "$(dirname "$0")/../lib.sh"
PD=${CK_HELPERS}/ptydemo
[ -x "$PD" ] || skip "ptydemo not built"
command -v tmux >/dev/null || skip "tmux missing"
S="$T/a.sock"; TM="tmux -L e2e-$$ -f /dev/null"

pane() { $TM capture-pane -p -t "$1"; }
has() { pane "$1" | grep -q -- "$2"; }

$TM new-session -d -s s -x 90 -y 25 "$PD run $S -- bash --norc -i; echo RC=\$?; sleep 60"
poll_until 5 has s:0 'bash' || fail "no prompt"
$TM send-keys -t s:0 'stty size; printf "\033[?1000h"; echo out-$((6*7))' Enter
poll_until 5 has s:0 'out-42' || fail "no output through the proxy"
has s:0 '^25 90' || fail "stty size is not the client's"
$TM send-keys -t s:0 'C-\'
poll_until 5 has s:0 'detached' || fail "detach key"
# Mouse mode was reset on the outer terminal (tmux records it per pane).
[ "$($TM display -p -t s:0 '#{mouse_any_flag}')" = 0 ] || fail "mouse mode left on after detach"
# Reattach from another window of another size, with less running full screen.
$TM new-window -t s -n w2 "$PD attach $S; echo RC=\$?; sleep 60"
$TM resize-window -t s:w2 -x 70 -y 20 2>/dev/null || true
poll_until 5 has s:w2 'out-42' || fail "reattach did not redraw"
$TM send-keys -t s:w2 'seq 1 500 | less' Enter
poll_until 5 has s:w2 '^1$' || fail "less not shown"
$TM send-keys -t s:w2 'C-\'
poll_until 5 has s:w2 'detached' || fail "detach from less"
$TM new-window -t s -n w3 "$PD attach $S; echo RC=\$?; sleep 60"
poll_until 5 has s:w3 '^1$' || fail "full-screen redraw of less"
$TM send-keys -t s:w3 q; poll_until 5 has s:w3 '\$ *$\|bash' || true
# Read-only client: typing does nothing.
$TM new-window -t s -n ro "$PD attach $S --read-only; sleep 60"
poll_until 5 has s:ro 'bash' || fail "read-only attach"
$TM send-keys -t s:ro 'echo ro-typed' Enter
sleep 0.3; has s:w3 'ro-typed' && fail "read-only client typed"
$TM send-keys -t s:w3 'exit 3' Enter
poll_until 5 has s:w3 'RC=3' || fail "exit status not returned"
# Pipe mode: byte-exact, stdout and stderr apart, exit status.
head -c 50M /dev/urandom > "$T/in"
set +e; "$PD" run "$T/p.sock" -- sh -c 'cat; echo err >&2; exit 4' < "$T/in" > "$T/out" 2> "$T/err"; rc=$?; set -e
[ $rc = 4 ] || fail "pipe exit status $rc"
cmp -s "$T/in" "$T/out" || fail "pipe mode not byte-exact"
grep -qx err "$T/err" || fail "stderr not separate"
$TM kill-server 2>/dev/null || true
pass "attach, detach, redraw, read-only, modes, pipes"
