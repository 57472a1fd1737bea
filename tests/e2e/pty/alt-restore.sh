#!/usr/bin/env bash
# A job checkpointed while in the alternate screen (vim, less, top) shows its normal screen
# again when it leaves it after a restore by a new supervisor (the ring that drew it on an
# attach is gone): pty.state version 2 carries the normal screen under the alternate one.
# Before, the terminal the restore attached showed a blank normal screen.
source "$(dirname "$0")/../lib.sh"
tmux_start
cat >job.py <<'PY'
import os, sys, time
print("NORMAL LINE 1"); print("NORMAL LINE 2")
sys.stdout.write("\x1b[?1049h\x1b[H\x1b[2JIN ALT SCREEN\n"); sys.stdout.flush()
open(sys.argv[1] + ".alt", "w").close()
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
sys.stdout.write("\x1b[?1049lBACK ON NORMAL\n"); sys.stdout.flush()
time.sleep(60)
PY
E="env CKPTENV_HOME=$CKPTENV_HOME TERM=xterm"
state_is() { "$CKPTENV" status "$1" | grep -Eq "state: *($2)"; }
$TM new-session -d -s a -x 80 -y 20 "$E $CKPTENV run --name alt -- python3 $T/job.py $T/go; sleep 60"
poll_until 20 test -e go.alt || fail "the job did not start: $(pane a)"
poll_until 10 has a 'IN ALT SCREEN' || fail "no alternate screen: $(pane a)"
"$CKPTENV" checkpoint alt >/dev/null 2>err.txt || fail "checkpoint: $(cat err.txt)"
sup=$("$CKPTENV" status alt | sed -n 's/^pid: .*(supervisor \([0-9]*\)).*/\1/p')
kill -9 "$sup"
poll_until 10 state_is alt died || fail "the job outlived its supervisor"
$TM new-session -d -s b -x 80 -y 20 "$E $CKPTENV restore alt; sleep 60"
poll_until 20 has b 'IN ALT SCREEN' || fail "the alternate screen not redrawn: $(pane b)"
touch go
poll_until 20 has b 'BACK ON NORMAL' || fail "the job did not leave the alternate screen: $(pane b)"
has b '^NORMAL LINE 1$' && has b '^NORMAL LINE 2$' || fail "the normal screen is blank: $(pane b)"
pass "the normal screen under the alternate one comes back with a restore by a new supervisor"
