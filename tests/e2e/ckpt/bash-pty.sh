#!/bin/bash
# An interactive bash on the job's terminal, idle at its prompt, attached through tmux:
# checkpointed, killed with its supervisor, restored with `ckptenv restore` from tmux (which
# attaches like `run`), and it still has its shell variable, its pid 2 and its terminal; the
# screen is redrawn as it was at the checkpoint without a key pressed; fds 0-2 are not
# close-on-exec after the restore (programs it runs have stdio: `tty` works); an fd it holds on
# /dev/tty comes back on the terminal (it made every restore fail).
. "$(dirname "$0")/../lib.sh"
tmux_start
bash_pid() { local p; p=$("$CKPTENV" status b | sed -n 's/^pid: *\([0-9]*\) .*/\1/p'); cat "/proc/$p/task/$p/children" | tr -d ' '; }
# Is fd N of bash close-on-exec (bit 02000000 of fdinfo's octal flags)?
stdio_cloexec() { local b; b=$(bash_pid); for n in 0 1 2; do
	echo "$n:$(( 0$(sed -n 's/^flags:[[:space:]]*//p' "/proc/$b/fdinfo/$n") & 02000000 ))"; done | tr '\n' ' '; }
E="env CKPTENV_HOME=$CKPTENV_HOME PS1=ck-prompt\$\\  TERM=xterm"

$TM new-session -d -s a -x 80 -y 24 "$E $CKPTENV run --name b -- /bin/bash --norc -i; sleep 60"
poll_until 10 has a 'ck-prompt' || fail "no prompt: $(pane a)"
$TM send-keys -t a 'X=ck-before-$((6*7)); exec 9<>/dev/tty' Enter
poll_until 10 sh -c "[ \$($TM capture-pane -p -t a | grep -c ck-prompt) -ge 2 ]" || fail "no 2nd prompt"
$TM send-keys -t a 'echo ck-screen-$((3*5))' Enter
poll_until 10 has a 'ck-screen-15' || fail "no output: $(pane a)"
poll_until 10 sh -c "[ \$($TM capture-pane -p -t a | grep -c ck-prompt) -ge 3 ]" || fail "no 3rd prompt"
before=$(stdio_cloexec)
[ "$before" = "0:0 1:0 2:0 " ] || fail "bash's stdio is close-on-exec before the checkpoint: $before"
"$CKPTENV" checkpoint b >/dev/null 2>err.txt || fail "checkpoint: $(cat err.txt)"
s=$(sed -n 's/.*supervisor b\[\([0-9]*\)\]: job started.*/\1/p' "$CKPTENV_HOME/jobs/b/log" | tail -1)
kill -9 "$s"
poll_until 10 sh -c "'$CKPTENV' status b | grep -q 'state: *died'" || fail "job still up"

$TM new-session -d -s r -x 80 -y 24 "$E $CKPTENV restore b; echo restore-rc=\$?; sleep 60"
poll_until 10 sh -c "'$CKPTENV' status b | grep -q 'state: *running'" || fail "not restored: $(pane r)"
# An attach gets the screen as it was at the checkpoint, without a key pressed. (Not checked
# on `restore`'s own terminal: cmd-run.c attaches it with no_redraw, as for `run`.)
$TM new-session -d -s v -x 80 -y 24 "$E $CKPTENV attach --read-only b; sleep 60"
poll_until 10 has v 'ck-screen-15' || fail "screen not redrawn after restore: $(pane v)"
after=$(stdio_cloexec)
[ "$after" = "$before" ] || fail "fds 0-2 close-on-exec after restore: $after (was $before)"
sleep 1 # keys typed while the restorer still runs can be lost (see docs/checkpoint.md)
$TM send-keys -t r '[ -t 0 ] && echo "got $X pid $$ on-tty"' Enter
poll_until 10 has r 'got ck-before-42 pid 2 on-tty' ||
	fail "restored bash: $(pane r; "$CKPTENV" log b | tail -3)"
$TM send-keys -t r 'echo "tty=$(tty)"' Enter
poll_until 10 has r 'tty=/dev/pts/0' || fail "no tty for programs of the restored bash: $(pane r)"
# fd 9 on /dev/tty (as less or getpass hold it) came back on the job's terminal
$TM send-keys -t r 'echo ck-tty-$((2*21)) >&9' Enter
poll_until 10 has r 'ck-tty-42' || fail "bash's /dev/tty fd: $(pane r)"
$TM send-keys -t r 'exit 7' Enter
poll_until 10 has r 'restore-rc=7' || fail "restore did not exit with bash's status: $(pane r)"
pass "interactive bash restored on its terminal"
