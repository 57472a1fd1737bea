#!/usr/bin/env bash
# No terminal: `ckptenv run` relays stdin/stdout/stderr byte-exact over pipes (50 MB binary
# through cat), end of input reaches the job, stdout and stderr stay apart, the exit status is
# the job's. The output log is bounded (--log-size) and `ckptenv log [-f]` prints it, -f also across rotations. Another
# uid is refused on attach.sock even when the file system would let it connect.
source "$(dirname "$0")/../lib.sh"
CK=$CKPTENV

head -c 50M /dev/urandom > "$T/in"
rc=0; "$CK" run --name p -- sh -c 'cat; echo err >&2; exit 4' < "$T/in" > "$T/out" 2> "$T/err" || rc=$?
expect_eq "pipe exit status" 4 "$rc"
cmp -s "$T/in" "$T/out" || fail "pipe mode not byte-exact ($(stat -c %s "$T/out") bytes out)"
expect_eq "stderr apart" "err" "$(cat "$T/err")"
# The job's stdio are pipes, not a terminal; end of input is end of input.
out=$(printf 'a\nb\n' | "$CK" run --name p -- sh -c '[ -t 0 ] || [ -t 1 ] && echo tty; wc -l')
expect_eq "pipes and EOF" 2 "$(echo $out)"
# The log keeps the newest --log-size bytes (output + output.1), oldest dropped.
ls -l "$CKPTENV_HOME/jobs/p/"output* >/dev/null || fail "no output log"
total=$(cat "$CKPTENV_HOME"/jobs/p/output* | wc -c)
[ "$total" -le $((4 << 20)) ] || fail "log over its default bound: $total"
"$CK" run --name small --log-size 64K -- sh -c 'seq 1 100000; echo last-line' >/dev/null
total=$("$CK" log small | wc -c)
[ "$total" -le 65536 ] && [ "$total" -gt 16384 ] || fail "--log-size 64K kept $total bytes"
"$CK" log small | tail -1 | grep -qx last-line || fail "log lost the newest bytes"
rc=0; "$CK" run --log-size 12 -- true 2>/dev/null || rc=$?
expect_eq "bad --log-size" 2 "$rc"
# log -f follows a detached job until it ends.
"$CK" run --detach --name f -- sh -c "while [ ! -e $T/go ]; do sleep 0.05; done; echo followed" >/dev/null
"$CK" log -f f > "$T/follow" &
lf=$!
# log -f starts at the log's end (as tail -f): only once it holds the file may the job print.
poll_until 20 sh -c "ls -l /proc/$lf/fd 2>/dev/null | grep -q 'jobs/f/output'" || fail "log -f did not open the log"
touch "$T/go"
poll_until 20 sh -c "! kill -0 $lf 2>/dev/null" || fail "log -f did not end with the job"
grep -qx followed "$T/follow" || fail "log -f missed the output: $(cat "$T/follow")"
# log -f across rotations: bursts of ~45 KB into a 64K log (32K per file), so that one flush
# rotates twice (the file the follower holds is gone, output.1 is the one after it). Each
# burst waits for the follower to have printed the one before.
"$CK" run --detach --name r --log-size 64K -- sh -c "while [ ! -e $T/go2 ]; do sleep 0.05; done
	for i in 1 2 3 4 5; do seq -f \"b\$i-%g\" 1 6000; while [ ! -e $T/got\$i ]; do sleep 0.05; done; done" >/dev/null
"$CK" log -f r > "$T/follow2" &
lf=$!
touch "$T/go2"
for i in 1 2 3 4 5; do
	poll_until 20 grep -qx "b$i-6000" "$T/follow2" || fail "log -f did not print burst $i"
	touch "$T/got$i"
done
poll_until 20 sh -c "! kill -0 $lf 2>/dev/null" || fail "log -f did not end with job r"
for i in 1 2 3 4 5; do seq -f "b$i-%g" 1 6000; done > "$T/want2"
cmp -s "$T/want2" "$T/follow2" || fail "log -f lost bytes across rotations: $(diff "$T/want2" "$T/follow2" | head -3)"

# Another uid: let it reach the socket, the supervisor must still refuse it (SO_PEERCRED).
[ "$(id -u)" = 0 ] || skip "needs root to act as another uid"
command -v setpriv >/dev/null && [ -x /usr/bin/python3 ] || skip "setpriv or /usr/bin/python3 missing"
"$CK" run --detach --name u -- sh -c "while [ ! -e $T/stop ]; do sleep 0.05; done" >/dev/null
poll_until 20 test -S "$CKPTENV_HOME/jobs/u/attach.sock" || fail "no attach.sock"
[ "$(stat -c %a "$CKPTENV_HOME/jobs/u/attach.sock")" = 600 ] || fail "attach.sock not 0600"
chmod 711 "$T" "$CKPTENV_HOME" "$CKPTENV_HOME/jobs" "$CKPTENV_HOME/jobs/u"
chmod 666 "$CKPTENV_HOME/jobs/u/attach.sock"
setpriv --reuid 65534 --regid 65534 --clear-groups /usr/bin/python3 - "$CKPTENV_HOME/jobs/u/attach.sock" <<'PY' || fail "another uid was served"
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.settimeout(10)
hello = struct.pack("<IHHHH", 0, 24, 80, 0, 0)
try:
    s.sendall(struct.pack("<HBBI", 0xC7A7, 1, 1, len(hello)) + hello)
    got = s.recv(100)
except (BrokenPipeError, ConnectionResetError):  # closed, maybe with our HELLO unread
    got = b""
assert got == b"", "got an answer"
PY
grep -q "attach: client pid [0-9]* uid 65534: not our uid; closing" "$CKPTENV_HOME/jobs/u/log" || fail "refusal not logged"
"$CK" list | grep -Eq '^u +running' || fail "job hurt by a refused client"
touch "$T/stop"
pass "pipes byte-exact, EOF, stderr, status, log bound, log -f, uid check"
