#!/usr/bin/env bash
# A terminal job of an ordinary user, through tmux run as that user: output on the job's own
# /dev/pts/0, the detach key, reattach with a redraw and the supervisor writing the user's
# terminal itself (status: direct), `stty size`, exit status; root attaching relays (its
# terminal is not handed to the user's supervisor). Another uid is refused twice:
# by the 0700 job directory (a one-line error), and, with the directory opened up, by the
# supervisor's SO_PEERCRED check (even for a HELLO that hands over a terminal).
source "$(dirname "$0")/../lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root to create the test user"
command -v tmux >/dev/null || skip "tmux missing"
command -v setpriv >/dev/null && [ -x /usr/bin/python3 ] || skip "setpriv or /usr/bin/python3 missing"
id ckuser >/dev/null 2>&1 || useradd -m ckuser >/dev/null 2>&1 || skip "cannot create user ckuser"
chmod 0666 /dev/fuse
U="$T/ckuser"
mkdir -p "$U" && chown ckuser: "$U"
cp "$CKPTENV" "$U/ckptenv"
as_user() {
	setpriv --reuid ckuser --regid ckuser --init-groups env -i PATH=/usr/bin:/bin HOME="$U" \
		CKPTENV_HOME="$U/home" TERM=xterm "$@"
}
CK="$U/ckptenv"
TM="as_user tmux -L ck-nr-$$ -f /dev/null"
trap 'rc=$?; set +e; as_user "$CK" rm --force nr >/dev/null 2>&1 || true; $TM kill-server 2>/dev/null || true
	tmux -L ck-nrr-$$ kill-server 2>/dev/null || true; _cleanup $rc' EXIT

pane() { $TM capture-pane -p -t "$1"; }
has() { pane "$1" | grep -q -- "$2"; }

$TM new-session -d -s s -x 100 -y 30 "$CK run --name nr -- bash --norc -i; echo RC=\$?; sleep 120"
poll_until 10 has s:0 'bash' || fail "no prompt: $(pane s:0)"
$TM send-keys -t s:0 'tty; stty size; echo out-$((6*7))' Enter
poll_until 10 has s:0 '^out-42' || fail "no output through the proxy: $(pane s:0)"
has s:0 '^/dev/pts/0$' || fail "the job's terminal is not its own /dev/pts/0: $(pane s:0)"
has s:0 '^30 100$' || fail "stty size is not the client's: $(pane s:0)"
$TM send-keys -t s:0 'echo before-$((1+1))' Enter 'C-\'
poll_until 10 has s:0 '^detached from nr; reattach with: ckptenv attach nr' || fail "detach: $(pane s:0)"
poll_until 10 has s:0 '^RC=0' || fail "run did not exit 0 after a detach: $(pane s:0)"

$TM new-window -t s: -n w2 "$CK attach nr; echo RC=\$?; sleep 120"
poll_until 10 has s:w2 '^before-2' || fail "reattach did not redraw: $(pane s:w2)"
st=$(as_user "$CK" status nr)
grep -Eq '^  pid [0-9]+ +writer +100x30 +size owner direct$' <<<"$st" || fail "status: $st"
sup=$(echo "$st" | sed -n 's/.*(supervisor \([0-9]*\)).*/\1/p')
tty=$($TM display -p -t s:w2 '#{pane_tty}')
ls -l "/proc/$sup/fd" | grep -q " -> $tty\$" || fail "the supervisor does not hold $tty"
# Root may attach to the user's job, but does not hand its terminal to the user's supervisor.
TMR="tmux -L ck-nrr-$$ -f /dev/null"
$TMR new-session -d -s r -x 90 -y 20 "CKPTENV_HOME=$U/home $CK attach --read-only nr; sleep 120"
poll_until 10 sh -c "$TMR capture-pane -p -t r | grep -q '^before-2'" || fail "root's attach: $($TMR capture-pane -p -t r)"
st=$(as_user "$CK" status nr)
grep -Eq '^  pid [0-9]+ +read-only +90x20 +relayed$' <<<"$st" || fail "root's client not relayed: $st"
$TMR kill-server

# Another uid: the job directory keeps it out first...
err=$(setpriv --reuid 65534 --regid 65534 --clear-groups env -i PATH=/usr/bin:/bin \
	CKPTENV_HOME="$U/home" "$CK" attach nr </dev/null 2>&1) && fail "uid 65534 attached"
expect_eq "refusal by the directory" 1 "$(echo "$err" | wc -l)"
grep -q "Permission denied" <<<"$err" || fail "refusal message: $err"
# ...and with the directories opened up, the supervisor refuses it (SO_PEERCRED), terminal or not.
J="$U/home/jobs/nr"
chmod 711 "$U" "$U/home" "$U/home/jobs" "$J"
chmod 666 "$J/attach.sock"
setpriv --reuid 65534 --regid 65534 --clear-groups /usr/bin/python3 - "$J/attach.sock" <<'PY' || fail "another uid was served"
import os, pty, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.settimeout(10)
m, t = pty.openpty()
hello = struct.pack("<IHHHHH", 0x10, 24, 80, 0, 0, 0x1c)  # HELLO_TTY_FD, size, detach key
try:
    s.sendmsg([struct.pack("<HBBI", 0xC7A7, 1, 1, len(hello)) + hello],
               [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", t))])
    got = s.recv(100)
except (BrokenPipeError, ConnectionResetError):  # closed, maybe with our HELLO unread
    got = b""
assert got == b"", "got an answer"
PY
grep -q "attach: client pid [0-9]* uid 65534: not our uid; closing" "$J/log" || fail "refusal not logged: $(tail -3 "$J/log")"
chmod 700 "$U/home" "$U/home/jobs" "$J"

# The job was not disturbed: it still takes keystrokes and returns its exit status.
$TM send-keys -t s:w2 'exit 5' Enter
poll_until 10 has s:w2 '^RC=5' || fail "exit status not returned: $(pane s:w2)"
pass "non-root run/detach/attach through tmux, direct terminal, status, other uid refused"
