#!/bin/bash
# A checkpoint of an earlier supervisor restored in place never attaches the job to this
# supervisor's connections. Checkpoint A (supervisor 1, session 1 to a server), supervisor 1
# killed, restored by supervisor 2 (the job gets ECONNRESET and connects again: session 1 of
# supervisor 2, same peer), checkpoint --stop, then restore A in place. Before, A's session 1
# was matched to supervisor 2's session 1 and the job read another connection's stream with
# restore's exit 0 (found by a testing helper); each proxy has an instance id now, in net.cut.
. "$(dirname "$0")/../lib.sh"
SERVER=$(dirname "$0")/connseq-server.py
cat >job.py <<'PY'
import socket, sys
port = int(sys.argv[1])
def connect():
    s = socket.create_connection(("127.0.0.1", port)); f = s.makefile("rb")
    s.sendall(b"H hello\n")
    k = int(f.readline().split()[1])
    print("CONNECTED conn", k, flush=True)
    return s, f, k
s, f, k = connect(); n = 0
while True:
    try:
        l = f.readline()
        if not l: raise ConnectionResetError("EOF")
    except OSError as e:
        print("RESET at conn", k, "n", n, flush=True)
        s, f, k = connect(); n = 0; continue
    p = l.split()
    if p[0] != b"S" or int(p[1]) != k or int(p[2]) != n:
        print("FAIL: expected S %d %d, got %r" % (k, n, l), flush=True)
        raise SystemExit(3)
    n += 1
    if n % 200 == 0: print("OK conn", k, "n", n, flush=True)
PY
python3 "$SERVER" "$T/port" </dev/null >/dev/null 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null; _cleanup $?' EXIT
poll_until 20 test -s port || fail "the server did not start"
sup() { "$CKPTENV" status fo | sed -n 's/.*(supervisor \([0-9]*\)).*/\1/p'; }
ok_on() { "$CKPTENV" log fo | grep -q "^OK conn $1 n"; }
"$CKPTENV" run --name fo --detach -- python3 "$T/job.py" "$(cat port)" </dev/null >/dev/null
poll_until 20 ok_on 1 || fail "no stream: $("$CKPTENV" log fo | tail -3)"
A=$("$CKPTENV" checkpoint fo 2>err.txt) || fail "checkpoint A: $(cat err.txt)"
kill -9 "$(sup)"
poll_until 10 sh -c "'$CKPTENV' status fo | grep -q 'state: *died'" || fail "not died: $("$CKPTENV" status fo)"
"$CKPTENV" restore fo --detach >/dev/null 2>err.txt || fail "restore by a new supervisor: $(cat err.txt)"
poll_until 20 ok_on 2 || fail "no second connection: $("$CKPTENV" log fo | tail -3)"
"$CKPTENV" checkpoint fo --stop >/dev/null 2>err.txt || fail "checkpoint --stop: $(cat err.txt)"
"$CKPTENV" restore fo "$A" --detach >/dev/null 2>err.txt || fail "restore $A in place: $(cat err.txt)"
grep -q "^ckptenv: restore fo: connection to 127.0.0.1:$(cat port) (fd [0-9]*) reset: its supervisor ended since the checkpoint" err.txt ||
	fail "the connection of A was not reported reset: $(cat err.txt)"
poll_until 20 ok_on 3 || fail "the job did not connect again: $("$CKPTENV" log fo | tail -3)"
"$CKPTENV" log fo | grep -a "^FAIL" && fail "the restored job read another connection's bytes"
"$CKPTENV" rm --force fo >/dev/null
pass "a checkpoint of an earlier supervisor restored in place resets its connection"
