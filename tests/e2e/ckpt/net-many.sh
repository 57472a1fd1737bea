#!/bin/bash
# A checkpoint takes every proxied connection of the job (issue 6; was at most 64): a job holding
# 1000 connections to a local echo server, each with a line's echo unread in its socket at the
# checkpoint (net-job.py many).
#  1. checkpoint --stop, restore in place: every echo is read back exactly, and one more line
#     goes each way on every connection; nothing is reported.
#  2. checkpoint --stop, the supervisor killed: `restore` reports the connections (a few lines
#     and a count), and every one of the 1000 fails with ECONNRESET in the job.
. "$(dirname "$0")/../lib.sh"
cp "$(dirname "$0")/net-job.py" job.py # a job cannot see a checkout under the host's /tmp
JOB=$T/job.py
SERVER=$(dirname "$0")/echo-server.py
N=1000
sup_of() { sed -n "s/.*supervisor $1\[\([0-9]*\)\]: starting.*/\1/p" "$CKPTENV_HOME/jobs/$1/log" | tail -1; }
state_is() { "$CKPTENV" status "$1" | grep "state: *$2" >/dev/null; }
python3 "$SERVER" port server.log </dev/null >/dev/null 2>&1 &
poll_until 20 test -s port || fail "the echo server did not start"
mkdir d

"$CKPTENV" run --name m --detach -- python3 "$JOB" many "$(cat port)" $N "$T/d" </dev/null >/dev/null
poll_until 120 test -e d/res0 || fail "the job did not connect: $("$CKPTENV" log m | tail -3)"
expect_eq "connected" "ready $N" "$(cat d/res0)"
st=$("$CKPTENV" status m)
grep -q "network: *$N proxied connections" <<<"$st" || fail "status: $(grep network <<<"$st")"
sup=$(sup_of m)

# 1. in place.
"$CKPTENV" checkpoint m --stop >out.txt 2>err.txt || fail "checkpoint --stop: $(cat err.txt)"
poll_until 30 state_is m stopped || fail "not stopped: $("$CKPTENV" status m)"
"$CKPTENV" restore m --detach >/dev/null 2>err.txt || fail "restore in place: $(cat err.txt)"
expect_eq "supervisor after the restore" "$sup" "$(sup_of m)"
grep -q "connection" err.txt && fail "the restore in place reported: $(head -3 err.txt)"
touch d/go1
poll_until 120 test -e d/res1 || fail "the restored job did not answer: $("$CKPTENV" log m | tail -3)"
expect_eq "every echo exact after the restore in place" "OK $N" "$(cat d/res1)"
grep -q "^closed" server.log 2>/dev/null && fail "the server saw connections end: $(head -3 server.log)"

# 2. the supervisor dies after --stop.
"$CKPTENV" checkpoint m --stop >/dev/null 2>err.txt || fail "second checkpoint --stop: $(cat err.txt)"
poll_until 30 state_is m stopped || fail "not stopped again"
kill -9 "$sup"
poll_until 20 sh -c "! kill -0 $sup 2>/dev/null" || fail "supervisor still alive"
"$CKPTENV" restore m --detach >/dev/null 2>err.txt || fail "restore after the supervisor died: $(cat err.txt)"
lines=$(grep -c "ckptenv: restore m: connection to 127.0.0.1:$(cat port) (fd [0-9]*) reset: its supervisor ended" err.txt || true)
[ "$lines" -ge 1 ] || fail "not reported: $(head -3 err.txt)"
grep -q "and $((N - lines)) more connection(s) like these" err.txt ||
	fail "no count of the other $((N - lines)): $(tail -2 err.txt)"
touch d/go2
poll_until 120 test -e d/res2 || fail "the restored job did not answer: $("$CKPTENV" log m | tail -3)"
expect_eq "every connection reset" "ECONNRESET $N" "$(cat d/res2)"
pass "$N connections: exact across --stop and restore in place; reported and reset after the supervisor died"
