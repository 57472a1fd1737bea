#!/bin/bash
# Options the job set on a proxied socket come back on the restored job's socket (issue 6):
# SO_KEEPALIVE and TCP_KEEPIDLE set before connect, TCP_NODELAY, TCP_KEEPIDLE again,
# TCP_KEEPINTVL, TCP_KEEPCNT, SO_RCVBUF and SO_SNDBUF after (net-job.py opts); the job reads them
# back with getsockopt and compares with what it read before the checkpoint.
#  1. checkpoint --stop, restore in place: equal, and a line goes each way; the supervisor's
#     upstream socket still has the keepalive timer and receive buffer (ss).
#  2. checkpoint --stop, the supervisor killed, restore: equal on the socket the job gets, whose
#     first use fails with ECONNRESET.
. "$(dirname "$0")/../lib.sh"
cp "$(dirname "$0")/net-job.py" job.py # a job cannot see a checkout under the host's /tmp
SERVER=$(dirname "$0")/echo-server.py
sup_of() { sed -n "s/.*supervisor $1\[\([0-9]*\)\]: starting.*/\1/p" "$CKPTENV_HOME/jobs/$1/log" | tail -1; }
state_is() { "$CKPTENV" status "$1" | grep "state: *$2" >/dev/null; }
python3 "$SERVER" port server.log </dev/null >/dev/null 2>&1 &
poll_until 20 test -s port || fail "the echo server did not start"
mkdir d
"$CKPTENV" run --name o --detach -- python3 "$T/job.py" opts "$(cat port)" "$T/d" </dev/null >/dev/null
poll_until 60 test -e d/res0 || fail "the job did not start: $("$CKPTENV" log o | tail -3)"
expect_eq "options set" "ready" "$(cat d/res0)"
sup=$(sup_of o)

"$CKPTENV" checkpoint o --stop >/dev/null 2>err.txt || fail "checkpoint --stop: $(cat err.txt)"
poll_until 30 state_is o stopped || fail "not stopped"
"$CKPTENV" restore o --detach >/dev/null 2>err.txt || fail "restore in place: $(cat err.txt)"
grep -q "connection" err.txt && fail "the restore in place reported: $(cat err.txt)"
touch d/go1
poll_until 60 test -e d/res1 || fail "the restored job did not answer: $("$CKPTENV" log o | tail -3)"
grep -q "^OPTS OK" d/res1 || fail "after the restore in place: $(cat d/res1)"
# The upstream keeps them: keepalive timer (TCP_KEEPIDLE 77 s) and the receive buffer.
up=$(ss -tnpoe state established "dport = :$(cat port)" | grep "pid=$sup,")
grep -q "keepalive" <<<"$up" || fail "the upstream has no keepalive timer: $up"

"$CKPTENV" checkpoint o --stop >/dev/null 2>err.txt || fail "second checkpoint --stop: $(cat err.txt)"
poll_until 30 state_is o stopped || fail "not stopped again"
kill -9 "$sup"
poll_until 20 sh -c "! kill -0 $sup 2>/dev/null" || fail "supervisor still alive"
"$CKPTENV" restore o --detach >/dev/null 2>err.txt || fail "restore after the supervisor died: $(cat err.txt)"
grep -q "reset: its supervisor ended" err.txt || fail "not reported: $(cat err.txt)"
touch d/go2
poll_until 60 test -e d/res2 || fail "the restored job did not answer: $("$CKPTENV" log o | tail -3)"
grep -q "^OPTS OK .* ECONNRESET$" d/res2 || fail "after the supervisor died: $(cat d/res2)"
pass "options set before and after connect are read back after a restore in place and after the supervisor died"
