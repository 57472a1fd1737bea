#!/bin/bash
# A connection still connecting at the checkpoint (issue 6): the job's non-blocking connect goes
# to a listener whose accept queue is full, so the upstream SYN is dropped; after netproxy's
# 500 ms wait the job has EINPROGRESS and a socket it writes a line into (net-job.py
# connecting). The checkpoint takes it (it used to be left out, and the restore failed at its
# fd); the server then starts accepting.
#  1. checkpoint --stop, restore in place: the session goes on connecting, completes, the line
#     written before the checkpoint reaches the server once, its echo and one more line come back.
#  2. checkpoint --stop, the supervisor killed: the new supervisor connects again (nothing had
#     reached the peer), nothing is reported, the same exchange completes.
#  3. and 4. the same with a blocking connect(), which the job is in at the checkpoint: the freeze
#     aborts its notification, the restored job's connect() is restarted and served anew.
. "$(dirname "$0")/../lib.sh"
cp "$(dirname "$0")/net-job.py" job.py # a job cannot see a checkout under the host's /tmp
SERVER=$(dirname "$0")/echo-server.py
sup_of() { sed -n "s/.*supervisor $1\[\([0-9]*\)\]: starting.*/\1/p" "$CKPTENV_HOME/jobs/$1/log" | tail -1; }
state_is() { "$CKPTENV" status "$1" | grep "state: *$2" >/dev/null; }
connecting() { local st; st=$("$CKPTENV" status "$1"); grep -q " connecting " <<<"$st"; }

for how in inplace killed blocking blocking-killed; do
	mkdir "$how"
	mode=connecting want="ready EINPROGRESS"
	case $how in blocking*) mode=connecting-blocking want="ready blocking" ;; esac
	python3 "$SERVER" "$how/port" "$how/server.log" --full </dev/null >/dev/null 2>&1 &
	poll_until 20 test -s "$how/port" || fail "$how: the echo server did not start"
	"$CKPTENV" run --name "$how" --detach -- python3 "$T/job.py" $mode "$(cat "$how/port")" "$T/$how" \
		</dev/null >/dev/null
	poll_until 60 test -e "$how/res0" || fail "$how: the job did not start: $("$CKPTENV" log "$how" | tail -3)"
	expect_eq "$how: connect" "$want" "$(cat "$how/res0")"
	poll_until 30 connecting "$how" || fail "$how: not connecting: $("$CKPTENV" status "$how" | tail -3)"
	sup=$(sup_of "$how")
	"$CKPTENV" checkpoint "$how" --stop >/dev/null 2>err.txt || fail "$how: checkpoint --stop: $(cat err.txt)"
	poll_until 30 state_is "$how" stopped || fail "$how: not stopped"
	if [ "${how%killed}" != "$how" ]; then
		kill -9 "$sup"
		poll_until 20 sh -c "! kill -0 $sup 2>/dev/null" || fail "$how: supervisor still alive"
	fi
	touch "$how/port.open" # the server accepts from now on
	"$CKPTENV" restore "$how" --detach >/dev/null 2>err.txt || fail "$how: restore: $(cat err.txt)"
	grep -q "connection" err.txt && fail "$how: the restore reported: $(cat err.txt)"
	touch "$how/go1"
	poll_until 120 test -e "$how/res1" || fail "$how: the restored job did not answer: $("$CKPTENV" log "$how" | tail -3)"
	expect_eq "$how: the job's side" "OK SO_ERROR 0" "$(cat "$how/res1")"
	poll_until 30 grep -q "^closed EOF" "$how/server.log" || fail "$how: the server saw no end"
	expect_eq "$how: the server's side" "closed EOF b'hello\\nagain\\n'" "$(cat "$how/server.log")"
done
pass "a connection still connecting at --stop (non-blocking, or a blocking connect()) completes after a restore in place and after the supervisor died"
