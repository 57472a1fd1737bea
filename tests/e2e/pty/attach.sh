#!/usr/bin/env bash
# `ckptenv run` / `attach` through a real terminal (tmux, send-keys, capture-pane): output
# through the proxy on the job's own /dev/pts/0, stty size, detach key, the job keeps running
# while detached, reattach from another window redraws (also less, full screen), the size
# follows a resize, a read-only client cannot type, bash job control, exit status, and the
# user's terminal is left out of mouse mode / the alternate screen after a detach and after
# kill -9 of the supervisor.
source "$(dirname "$0")/../lib.sh"
command -v less >/dev/null || skip "less missing"
tmux_start
CK=$CKPTENV

flag() { $TM display -p -t "$1" "#{$2}"; }
win() { $TM new-window -t s: -n "$1" "$2; echo RC=\$?; sleep 120"; }

$TM new-session -d -s s -x 90 -y 25 "$CK run --name j -- bash --norc -i; echo RC=\$?; sleep 120"
poll_until 10 has s:0 'bash' || fail "no prompt: $(pane s:0)"
$TM send-keys -t s:0 'tty; stty size; printf "\033[?1000h"; echo out-$((6*7))' Enter
poll_until 10 has s:0 '^out-42' || fail "no output through the proxy: $(pane s:0)"
has s:0 '^/dev/pts/0$' || fail "the job's terminal is not its own /dev/pts/0: $(pane s:0)"
has s:0 '^25 90$' || fail "stty size is not the client's: $(pane s:0)"
[ "$(flag s:0 mouse_any_flag)" = 1 ] || fail "mouse mode did not reach the terminal"
# Detach while the job is about to print: it keeps running.
$TM send-keys -t s:0 'sleep 0.3; echo kept-$((2*21))' Enter 'C-\'
poll_until 10 has s:0 '^detached from j; reattach with: ckptenv attach j' || fail "detach key: $(pane s:0)"
poll_until 10 has s:0 '^RC=0' || fail "run did not exit 0 after a detach"
[ "$(flag s:0 mouse_any_flag)" = 0 ] || fail "mouse mode left on after detach"
poll_until 10 sh -c "'$CK' log j | grep -q 'kept-42'" || fail "job did not run on while detached: $('$CK' log j | tail -3)"
"$CK" list | grep -Eq '^j +running .* 0$' || fail "list: $("$CK" list)"

# An attach whose stdin is no terminal is refused for a terminal job (it hung, typing a file
# into the shell).
rc=0
echo 'echo piped-in' | "$CK" attach j >out.txt 2>err.txt || rc=$?
expect_eq "attach without a terminal" 1 "$rc"
expect_eq "its line" "ckptenv: attach j: job j runs on a terminal and stdin is not one; attach from a terminal, or follow its output with 'ckptenv log -f j'" "$(cat err.txt)"
"$CK" log j | grep -q 'piped-in' && fail "the piped input reached the job"
# Nor one from a terminal whose stdout is a file: the session, redraws and all, went into the
# file while the terminal stayed blank (found by a testing helper).
win w9 "$CK attach j >$T/out9.txt 2>$T/err9.txt"
poll_until 10 has w9 '^RC=1' || fail "attach with stdout in a file: $(pane w9; cat "$T/err9.txt")"
expect_eq "its line" "ckptenv: attach j: job j runs on a terminal and stdout is not one; attach from a terminal, or follow its output with 'ckptenv log -f j'" "$(cat "$T/err9.txt")"
# A job on pipes attached from a terminal: the terminal keeps its modes, as for `run` (typed
# lines echoed, output lines at column 0). It was put in raw mode: output staircased and
# nothing typed showed (found by a testing helper).
"$CK" run --name pj --detach -- sh -c 'i=0; while [ $i -lt 100 ]; do echo tick $i; i=$((i+1)); sleep 0.2; done' </dev/null >/dev/null
win pw "$CK attach pj"
poll_until 10 has s:pw '^tick [0-9]' || fail "pipe job through a terminal: $(pane s:pw)"
n=$(pane s:pw | grep -c '^tick [0-9]*$')
poll_until 10 sh -c "[ \$($TM capture-pane -p -t s:pw | grep -c '^tick [0-9]*\$') -ge $((n + 2)) ]" ||
	fail "output lines not at column 0: $(pane s:pw)"
$TM send-keys -t s:pw 'typed-zz'
poll_until 10 has s:pw 'typed-zz' || fail "what was typed was not echoed: $(pane s:pw)"
"$CK" rm --force pj >/dev/null

# Reattach from another window of another size: redrawn, and the job gets the new size.
win w2 "$CK attach j"
$TM resize-window -t s:w2 -x 70 -y 20
poll_until 10 has s:w2 '^kept-42' || fail "reattach did not redraw: $(pane s:w2)"
$TM send-keys -t s:w2 'stty size' Enter
poll_until 10 has s:w2 '^20 70$' || fail "stty size did not follow the client: $(pane s:w2)"
$TM resize-window -t s:w2 -x 60 -y 18
# The resize reaches the job asynchronously (SIGWINCH to the client, RESIZE, TIOCSWINSZ).
$TM send-keys -t s:w2 'clear; while sleep 0.1; do stty size; done' Enter
poll_until 10 has s:w2 '^18 60$' || fail "stty size did not follow a resize: $(pane s:w2)"
$TM send-keys -t s:w2 C-c
"$CK" list | grep -Eq '^j +running .* 1$' || fail "list does not show the client: $("$CK" list)"
# status lists the clients: this one writes, has the size, and is served directly (the
# supervisor holds its terminal).
st=$("$CK" status j)
grep -q '^clients: *1 attached (0 read-only); terminal 60x18$' <<<"$st" || fail "status: $st"
grep -Eq '^  pid [0-9]+ +writer +60x18 +size owner direct$' <<<"$st" || fail "status client: $st"
# A flood goes through the client (the supervisor hands it the output), then the terminal is
# written directly again: the last lines are there, in order, and typing still echoes.
$TM send-keys -t s:w2 'clear; seq 1 300000 | cat; echo flood-$((5*5))' Enter
poll_until 30 has s:w2 '^flood-25$' || fail "flood: $(pane s:w2)"
pane s:w2 | grep -A1 '^299999$' | grep -qx 300000 || fail "flood's last lines: $(pane s:w2)"
$TM send-keys -t s:w2 'clear; echo after-$((6*6))' Enter
poll_until 10 has s:w2 '^after-36$' || fail "no echo after the flood: $(pane s:w2)"
# A full-screen program, redrawn on reattach.
$TM send-keys -t s:w2 'seq 1 500 | less' Enter
poll_until 10 has s:w2 '^1$' || fail "less not shown: $(pane s:w2)"
[ "$(flag s:w2 alternate_on)" = 1 ] || fail "less did not switch to the alternate screen"
$TM send-keys -t s:w2 'C-\'
poll_until 10 has s:w2 '^detached from j' || fail "detach from less: $(pane s:w2)"
[ "$(flag s:w2 alternate_on)" = 0 ] || fail "alternate screen left on after detach"
win w3 "$CK attach j --detach-key C-a"
poll_until 10 has s:w3 '^1$' || fail "no full-screen redraw of less: $(pane s:w3)"
[ "$(flag s:w3 alternate_on)" = 1 ] || fail "redraw did not restore the alternate screen"
has s:w3 '^17$' || fail "less redrawn incompletely: $(pane s:w3)"
$TM send-keys -t s:w3 q
poll_until 10 sh -c "[ \"\$($TM display -p -t s:w3 '#{alternate_on}')\" = 0 ]" || fail "less did not quit"
# Read-only client: it sees, but typing does nothing.
win ro "$CK attach j --read-only"
poll_until 10 has s:ro 'bash' || fail "read-only attach: $(pane s:ro)"
$TM send-keys -t s:ro 'echo ro-typed' Enter
$TM send-keys -t s:w3 'echo rw-$((3*3))' Enter
poll_until 10 has s:ro '^rw-9$' || fail "read-only client does not see output: $(pane s:ro)"
has s:w3 'ro-typed' && fail "read-only client typed"
st=$("$CK" status j)
grep -q '^clients: *2 attached (1 read-only)' <<<"$st" || fail "status with a read-only client: $st"
grep -Eq '^  pid [0-9]+ +read-only +[0-9]+x[0-9]+ +direct$' <<<"$st" || fail "status read-only: $st"
# Bash job control: the job is a session leader on its terminal.
$TM send-keys -t s:w3 "clear; sh -c 'echo sleep-\$((50*2)); exec sleep 100'" Enter
poll_until 10 has s:w3 '^sleep-100$' || fail "sleep did not start: $(pane s:w3)"
$TM send-keys -t s:w3 C-z
poll_until 10 has s:w3 'Stopped.*sleep 100' || fail "Ctrl-Z did not stop the job: $(pane s:w3)"
$TM send-keys -t s:w3 'clear; jobs' Enter
poll_until 10 has s:w3 '^\[1\]+ *Stopped.*sleep 100' || fail "jobs: $(pane s:w3)"
$TM send-keys -t s:w3 'clear; fg' Enter
poll_until 10 has s:w3 "^sh -c 'echo" || fail "fg: $(pane s:w3)"
$TM send-keys -t s:w3 C-c
$TM send-keys -t s:w3 'echo jc-$((1+1))' Enter
poll_until 10 has s:w3 '^jc-2$' || fail "Ctrl-C after fg: $(pane s:w3)"
# The custom detach key, then the exit status through a fresh attach.
$TM send-keys -t s:w3 C-a
poll_until 10 has s:w3 '^detached from j' || fail "--detach-key C-a: $(pane s:w3)"
win w4 "$CK attach j"
poll_until 10 has s:w4 'jc-2' || fail "attach: $(pane s:w4)"
$TM send-keys -t s:w4 'exit 3' Enter
poll_until 10 has s:w4 '^RC=3' || fail "exit status not returned: $(pane s:w4)"
poll_until 10 has s:ro '^RC=3' || fail "read-only client not told of the end: $(pane s:ro)"
# An attach says that the job ended (after an rm --force elsewhere it just went away).
has s:w4 "^ckptenv: attach j: the job ended (exit status 3)" || fail "no end line: $(pane s:w4)"

# kill -9 of the supervisor: the client puts the terminal back (no alt screen, no mouse).
win k "$CK run --name k -- sh -c 'printf \"\\033[?1049h\\033[?1002h\\033[?2004h\"; echo in-alt; exec cat'"
poll_until 10 has s:k '^in-alt' || fail "k did not start: $(pane s:k)"
[ "$(flag s:k alternate_on)" = 1 ] && [ "$(flag s:k mouse_button_flag)" = 1 ] || fail "modes not set"
sup=$("$CK" status k | sed -n 's/.*(supervisor \([0-9]*\)).*/\1/p')
[ -n "$sup" ] || fail "no supervisor pid"
kill -9 "$sup"
poll_until 10 has s:k '^RC=1' || fail "run did not end with the supervisor: $(pane s:k)"
[ "$(flag s:k alternate_on)" = 0 ] || fail "alternate screen left on after kill -9"
[ "$(flag s:k mouse_button_flag)" = 0 ] || fail "mouse mode left on after kill -9"
[ "$(flag s:k bracketed_paste_flag 2>/dev/null || echo 0)" != 1 ] || fail "bracketed paste left on"
pass "run/attach/detach, redraw, size, read-only, job control, modes, exit status"
