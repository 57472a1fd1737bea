#!/bin/bash
# A slow upstream connect never blocks the supervisor: the job's thread A connects to a listener
# whose accept queue is full (its SYNs are dropped), with TCP_SYNCNT=1 set before connect (copied
# to the upstream, so it gives up after a few seconds with ETIMEDOUT, as a direct connect would).
# Meanwhile thread B's connects and echoes go through, and `ckptenv status` answers at once and
# lists A's session as connecting. Then a checkpoint while a (single-threaded) job's connect
# waits: the freeze aborts the notification, the half-made session is dropped, and the connect
# the kernel restarts after the freeze is served anew (a new session) and still times out.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
[ -x $PY ] || skip "python3 missing"
cp "$(dirname "$0")"/npserver.py "$T/"
BG=()
trap 'rc=$?; set +e; kill "${BG[@]}" 2>/dev/null; _cleanup $rc' EXIT
$PY "$T/npserver.py" > "$T/port" 2>/dev/null </dev/null &
BG+=($!)
# The full listener: backlog 0, one connection queued and never accepted.
$PY -c '
import socket, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(0)
c = socket.create_connection(l.getsockname())
print(l.getsockname()[1], flush=True)
time.sleep(600)' > "$T/full" 2>/dev/null </dev/null &
BG+=($!)
poll_until 20 test -s "$T/port" || fail "test server did not start"
poll_until 20 test -s "$T/full" || fail "full listener did not start"
PORT=$(cat "$T/port") FULL=$(cat "$T/full")

cat > "$T/job.py" <<PYEOF
import os, socket, threading, time
res = {}
def slow():
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)
    t0 = time.time()
    try:
        s.connect(("127.0.0.1", $FULL))
        res["a"] = "connected"
    except OSError as e:
        res["a"] = "%s after %.0f s" % (os.strerror(e.errno), time.time() - t0)
a = threading.Thread(target=slow)
a.start()
time.sleep(0.3)
open("$T/a-started", "w").close()
for i in range(20):
    b = socket.create_connection(("127.0.0.1", $PORT))
    b.sendall(b"ECHO\nping")
    assert b.recv(4) == b"ping"
    b.close()
print("b: 20 echoes while a waits" if a.is_alive() else "b: a was no longer waiting", flush=True)
a.join()
print("a:", res["a"], flush=True)
PYEOF
"$CKPTENV" run --name sl --detach -- sh -c "exec $PY $T/job.py > $T/out 2>&1" >/dev/null </dev/null
poll_until 20 test -e "$T/a-started" || fail "job did not start: $(cat "$T/out")"
t0=$(date +%s%N)
st=$("$CKPTENV" status sl)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -lt 5000 ] || fail "status took $ms ms while a connect was pending"
grep -Eq "^  [0-9]+ +connecting +127\.0\.0\.1:$FULL " <<<"$st" ||
	fail "status does not list the pending connect: $st"
poll_until 60 sh -c "\"$CKPTENV\" list | grep -Eq '^sl +exited'" || fail "job did not end: $(cat "$T/out")"
expect_eq "job output" "b: 20 echoes while a waits" "$(sed -n 1p "$T/out")"
sed -n 2p "$T/out" | grep -Eq "^a: Connection timed out after [1-9][0-9]? s$" ||
	fail "slow connect: $(cat "$T/out")"

rm -f "$T/fz.out"
"$CKPTENV" run --name fz --detach -- $PY -c "
import os, socket, time
s = socket.socket()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 2)
try:
    s.connect(('127.0.0.1', $FULL)); r = 'connected'
except OSError as e:
    r = os.strerror(e.errno)
open('$T/fz.out', 'w').write(r + '\n')
" >/dev/null </dev/null
poll_until 20 sh -c "\"$CKPTENV\" status fz | grep -Eq '^  1 +connecting +127\.0\.0\.1:$FULL '" ||
	fail "fz: no pending connect: $("$CKPTENV" status fz)"
"$CKPTENV" checkpoint fz >/dev/null 2>"$T/ckpt.txt" || fail "checkpoint with a pending connect: $(cat "$T/ckpt.txt")"
poll_until 20 sh -c "\"$CKPTENV\" status fz | grep -Eq '^  2 +connecting +127\.0\.0\.1:$FULL '" ||
	fail "fz: the restarted connect is not a new session: $("$CKPTENV" status fz)"
# The aborted session goes once its upstream connect ends (its notification is no longer valid
# then): poll for it.
poll_until 30 sh -c "\"$CKPTENV\" status fz | grep -Eq '^network: +1 proxied connection \(limit [0-9]+; 2 made'" ||
	fail "fz: the aborted session was not dropped: $("$CKPTENV" status fz)"
poll_until 60 test -s "$T/fz.out" || fail "fz: connect never returned"
expect_eq "fz: restarted connect" "Connection timed out" "$(cat "$T/fz.out")"
pass "slow connect: loop responsive, other connects served, ETIMEDOUT as direct; a freeze restarts it cleanly"
