#!/bin/bash
# What a job wrote to a TCP connection before it exited reaches the peer, as it would from a
# process run directly (the kernel delivers an exited process's send queue, then a FIN): the
# job writes until send() would block to a server that starts reading only later, then exits,
# once with close() and once without. The server must get every byte send() took, then EOF
# (the supervisor used to reset the upstream at the job's end: the server got ~128 KiB, then
# ECONNRESET).
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
[ -x $PY ] || skip "python3 missing"

cat > "$T/srv.py" <<'EOF'
import errno, socket, sys, time
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(5)
print(ls.getsockname()[1], flush=True)
for res in sys.argv[1:]:
    c, _ = ls.accept()
    time.sleep(2)  # the job has exited by now
    got, end = 0, "EOF"
    try:
        while True:
            d = c.recv(1 << 20)
            if not d:
                break
            got += len(d)
    except OSError as e:
        end = errno.errorcode.get(e.errno, str(e.errno))
    open(res, "w").write("%d %s" % (got, end))
    c.close()
EOF
cat > "$T/cli.py" <<'EOF'
import socket, sys, time
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
c.setblocking(False)
total = 0
while True:
    try:
        total += c.send(b"x" * 65536)
    except BlockingIOError:
        time.sleep(0.3)  # the relay may have made room
        try:
            total += c.send(b"x" * 65536)
            continue
        except BlockingIOError:
            break
open(sys.argv[2], "w").write(str(total))
if sys.argv[3] == "close":
    c.close()
EOF

BG=()
trap 'rc=$?; set +e; kill "${BG[@]}" 2>/dev/null; _cleanup $rc' EXIT
$PY "$T/srv.py" "$T/res.close" "$T/res.exit" > "$T/port" 2>"$T/srv.err" </dev/null &
BG+=($!)
poll_until 20 test -s "$T/port" || fail "test server did not start"
PORT=$(cat "$T/port")
for how in close exit; do
	"$CKPTENV" run --name "ef-$how" -- $PY "$T/cli.py" "$PORT" "$T/sent.$how" "$how" </dev/null ||
		fail "job ($how) failed"
	poll_until 60 test -s "$T/res.$how" || fail "server got no end of the connection ($how)"
	sent=$(cat "$T/sent.$how")
	[ "$sent" -gt 1000000 ] || fail "the job could write only $sent bytes ($how)"
	expect_eq "server got every byte the job wrote, then EOF ($how)" "$sent EOF" "$(cat "$T/res.$how")"
done
pass "bytes written before the job exited reach the peer, with or without close()"
