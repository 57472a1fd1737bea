#!/bin/bash
# The proxy as an ordinary user: the job is in a user namespace; the supervisor (same uid, owner
# of that namespace) takes the job's sockets with pidfd_getfd and connects them to its legs.
# A limit of 2 sessions (CKPTENV_NET_MAX_SESSIONS) refuses the third connect with EAGAIN and
# the supervisor's log says why; a limit that is not a number is refused by `run`.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
[ "$(id -u)" = 0 ] || skip "needs root to create the test user"
[ -x $PY ] || skip "python3 missing"
CK_USER_ENV=(CKPTENV_NET_MAX_SESSIONS=2)
use_ckuser reach nn "$(dirname "$0")"/npserver.py
BG=()
trap 'rc=$?; set +e; kill "${BG[@]}" 2>/dev/null; cleanup_user; _cleanup $rc' EXIT
$PY "$U/npserver.py" > "$T/port" 2>/dev/null </dev/null &
BG+=($!)
poll_until 20 test -s "$T/port" || fail "test server did not start"
PORT=$(cat "$T/port")

cat > "$U/job.py" <<PYEOF
import os, socket
a = ("127.0.0.1", $PORT)
s1 = socket.create_connection(a)
s2 = socket.create_connection(a)
try:
    socket.create_connection(a)
    print("third connect succeeded")
except BlockingIOError:
    print("third refused EAGAIN")
s1.sendall(b"ECHO\nhello")
print(os.getuid(), s1.recv(5).decode(), s1.getpeername() == a)
PYEOF
chown ckuser: "$U/job.py"
out=$(as_user run --name nn -- $PY "$U/job.py" 2>&1) || fail "job failed: $out"
expect_eq "user job through the proxy" "third refused EAGAIN
$(id -u ckuser) hello True" "$out"
grep -q "failed with EAGAIN 1 time(s): 2 proxied connections is the limit" "$U/home/jobs/nn/log" ||
	fail "the supervisor's log does not explain the refused connect: $(cat "$U/home/jobs/nn/log")"
rc=0
out=$(CKPTENV_NET_MAX_SESSIONS=lots "$CKPTENV" run --name bad -- true 2>&1 </dev/null) || rc=$?
expect_eq "exit status with a bad limit" 2 "$rc"
expect_eq "bad limit refused" "ckptenv: run bad: CKPTENV_NET_MAX_SESSIONS=lots is not a number of connections in 1..1000000; unset it or give one" "$out"
pass "non-root job through the proxy, session limit"
