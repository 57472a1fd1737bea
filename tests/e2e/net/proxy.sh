#!/bin/bash
# A job's TCP through netproxy, with python clients inside the job against a python server on
# the host's loopback: 4 MiB echo both ways with a checksum, real addresses from getpeername/
# getsockname, options set after connect reaching the real connection (read with ss from the
# host: the supervisor's socket has the keepalive timer and buffer), peer reset (then connect
# again: EISCONN), half-close, refused connect (blocking and non-blocking, each connected again
# after it, as Linux allows), writes to a peer that closed (EPIPE), connect(AF_UNSPEC) then
# connect again, addresses checked as the kernel does (AF_INET on AF_INET6, v4-mapped on
# V6ONLY, 0.0.0.0), python asyncio (non-blocking connects, 20 at
# once), UDP and unix sockets unproxied, io_uring refused; `status` lists the sessions.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
[ -x $PY ] || skip "python3 missing"
command -v ss >/dev/null || skip "ss (iproute2) missing"
cp "$(dirname "$0")"/npserver.py "$(dirname "$0")"/npclient.py "$T/"

BG=()
trap 'rc=$?; set +e; kill "${BG[@]}" 2>/dev/null; _cleanup $rc' EXIT
$PY "$T/npserver.py" > "$T/port" 2>"$T/server.err" </dev/null &
BG+=($!)
poll_until 20 test -s "$T/port" || fail "test server did not start"
PORT=$(cat "$T/port")
# A port nothing listens on: bound (so nobody else takes it), never listening.
$PY -c 'import socket,sys,time; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1],flush=True); time.sleep(600)' > "$T/closed" 2>/dev/null </dev/null &
BG+=($!)
poll_until 20 test -s "$T/closed" || fail "closed-port holder did not start"
CLOSED=$(cat "$T/closed")
mkdir "$T/sync"

"$CKPTENV" run --name np --detach -- sh -c "exec $PY $T/npclient.py $PORT $CLOSED $T/sync > $T/sync/log 2>&1" \
	> "$T/out" 2>&1 </dev/null || fail "run failed: $(cat "$T/out")"
poll_until 60 test -e "$T/sync/opts" || fail "job did not reach the options check: $(cat "$T/sync/log")"
LP=$(cat "$T/sync/opts")
st=$("$CKPTENV" status np)
sup=$(echo "$st" | sed -n 's/^pid: .*(supervisor \([0-9]*\))/\1/p')
grep -Eq "^  [0-9]+ +established +127\.0\.0\.1:$PORT +127\.0\.0\.1:$LP " <<<"$st" ||
	fail "status does not list the session 127.0.0.1:$LP -> $PORT: $st"
# The real connection is the supervisor's socket with the job's local port.
s=$(ss -tnmoHp state established "( sport = :$LP )")
grep -q "pid=$sup," <<<"$s" || fail "upstream socket :$LP not held by the supervisor ($sup): $s"
grep -q "timer:(keepalive," <<<"$s" || fail "SO_KEEPALIVE not applied upstream: $s"
grep -q "rb196608" <<<"$s" || fail "SO_RCVBUF not applied upstream: $s"
# keepalive timer runs from TCP_KEEPIDLE=777 s: 12 min and some seconds left.
grep -Eq "timer:\(keepalive,1[23]min" <<<"$s" || fail "TCP_KEEPIDLE not applied upstream: $s"
touch "$T/sync/opts-go"

poll_until 120 sh -c "\"$CKPTENV\" list | grep -Eq '^np +exited'" || fail "job did not end: $(cat "$T/sync/log")"
rc=$("$CKPTENV" list | awk '$1 == "np" {print $3}')
for c in echo-4MiB-both-ways options-after-connect peer-reset half-close refused closed-peer addresses asyncio udp-unix io_uring-refused; do
	grep -qx "ok $c" "$T/sync/log" || fail "check $c did not pass: $(cat "$T/sync/log")"
done
grep -qx "all done" "$T/sync/log" || fail "client did not finish: $(cat "$T/sync/log")"
expect_eq "job exit status" 0 "$rc"
pass "echo, names, options, reset, half-close, refused, asyncio, udp/unix, io_uring"
