#!/bin/bash
# A connect error the job has not read yet survives a checkpoint: a non-blocking connect()
# refused (EINPROGRESS, then SO_ERROR says ECONNREFUSED, as asyncio and curl read it) and a
# connection its peer reset before the job read from it. Before, the restored socket was a
# fresh one: poll said writable without POLLERR, SO_ERROR 0, and the first send failed with
# EPIPE, so the client took the refused connect for a success. Three rounds, each with new
# sockets: a checkpoint the job runs on from (its errors must still be there), checkpoint
# --stop and a restore in place, and a checkpoint, kill -9 of the supervisor and a restore.
. "$(dirname "$0")/../lib.sh"
cat >server.py <<'PY'
import socket, struct, sys
closed = socket.socket(); closed.bind(("127.0.0.1", 0))  # bound, never listening: refuses
lst = socket.socket(); lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind(("127.0.0.1", 0)); lst.listen(8)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("%d %d\n" % (closed.getsockname()[1], lst.getsockname()[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:  # each connection is reset at once
    c, _ = lst.accept()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()
PY
cat >job.py <<'PY'
import errno, os, select, socket, sys, time
refused_port, reset_port = map(int, open(sys.argv[1]).read().split())
d = sys.argv[2]
for k in (1, 2, 3):
    a = socket.socket(); a.setblocking(False)
    r = a.connect_ex(("127.0.0.1", refused_port))
    b = socket.create_connection(("127.0.0.1", reset_port))
    time.sleep(0.5)  # the reset reaches the job's socket
    open("%s/ready%d" % (d, k), "w").close()
    while not os.path.exists("%s/go%d" % (d, k)):
        time.sleep(0.05)
    p = select.poll(); p.register(a, select.POLLOUT)
    ev = p.poll(2000)
    e = a.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    try:
        b.recv(10); got = "recv ok"
    except OSError as x:
        got = errno.errorcode.get(x.errno, x.errno)
    with open("%s/res%d" % (d, k), "w") as f:
        f.write("%s err=%s pollerr=%d reset=%s\n" % (errno.errorcode.get(r, r),
                errno.errorcode.get(e, e), bool(ev and ev[0][1] & select.POLLERR), got))
    a.close(); b.close()
PY
python3 server.py "$T/ports" </dev/null >/dev/null 2>&1 &
poll_until 20 test -s ports || fail "the server did not start"
mkdir d
sup_of() { "$CKPTENV" status "$1" | sed -n 's/^pid: .*(supervisor \([0-9]*\)).*/\1/p'; }
state_is() { "$CKPTENV" status "$1" | grep -Eq "state: *($2)"; }
want="EINPROGRESS err=ECONNREFUSED pollerr=1 reset=ECONNRESET"
"$CKPTENV" run --name p --detach -- python3 "$T/job.py" "$T/ports" "$T/d" </dev/null >/dev/null ||
	fail "run"
for k in 1 2 3; do
	poll_until 30 test -e "d/ready$k" || fail "round $k: the job is not ready: $("$CKPTENV" log p | tail -3)"
	case $k in
	1) "$CKPTENV" checkpoint p >/dev/null 2>err.txt || fail "checkpoint: $(cat err.txt)" ;;
	2) "$CKPTENV" checkpoint p --stop >/dev/null 2>err.txt || fail "checkpoint --stop: $(cat err.txt)"
	   "$CKPTENV" restore p --detach >/dev/null 2>err.txt || fail "restore in place: $(cat err.txt)" ;;
	3) "$CKPTENV" checkpoint p >/dev/null 2>err.txt || fail "checkpoint: $(cat err.txt)"
	   sup=$(sup_of p); kill -9 "$sup"
	   poll_until 10 state_is p died || fail "the job outlived its supervisor"
	   "$CKPTENV" restore p --detach >/dev/null 2>err.txt || fail "restore: $(cat err.txt)" ;;
	esac
	touch "d/go$k"
	poll_until 30 test -s "d/res$k" || fail "round $k: no result: $("$CKPTENV" log p | tail -3)"
	expect_eq "round $k" "$want" "$(cat "d/res$k")"
done
pass "a refused non-blocking connect and a reset connection keep their unread error across a checkpoint, a restore in place and a restore by a new supervisor"
