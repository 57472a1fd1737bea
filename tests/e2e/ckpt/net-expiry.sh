#!/bin/bash
# How long the supervisor keeps a crashed job's connections (issue 6): a job started with a
# checkpoint policy, one connection to an echo server (net-job.py line), checkpointed (and
# resumed), then killed with SIGKILL as the OOM killer would.
#  1. CKPTENV_CRASH_KEEP_SECONDS=600: kept (the server sees no end), the notice says 10 minutes,
#     and a restore in place goes on with the connection exact.
#  2. CKPTENV_CRASH_KEEP_SECONDS=2: once it is over, the supervisor ends, the server sees the
#     connection end, and a restore (new supervisor) reports it reset; the job gets ECONNRESET.
#  A value that is not a number of seconds is refused by `run` with one line.
. "$(dirname "$0")/../lib.sh"
cp "$(dirname "$0")/net-job.py" job.py # a job cannot see a checkout under the host's /tmp
SERVER=$(dirname "$0")/echo-server.py
sup_of() { sed -n "s/.*supervisor $1\[\([0-9]*\)\]: starting.*/\1/p" "$CKPTENV_HOME/jobs/$1/log" | tail -1; }
state_is() { "$CKPTENV" status "$1" | grep "state: *$2" >/dev/null; }
cmd_pid() { local p; p=$("$CKPTENV" status "$1" | sed -n 's/^pid: *\([0-9]*\) .*/\1/p'); cat "/proc/$p/task/$p/children" | tr -d ' '; }

CKPTENV_CRASH_KEEP_SECONDS=soon "$CKPTENV" run --name bad --detach -- true </dev/null >/dev/null 2>err.txt &&
	fail "a bad CKPTENV_CRASH_KEEP_SECONDS was accepted"
expect_eq "refusal" 1 "$(wc -l <err.txt)"
grep -q "CKPTENV_CRASH_KEEP_SECONDS=soon is not a number of seconds in 1\.\." err.txt || fail "refusal: $(cat err.txt)"

for keep in 600 2; do
	mkdir "k$keep"
	python3 "$SERVER" "k$keep/port" "k$keep/server.log" </dev/null >/dev/null 2>&1 &
	poll_until 20 test -s "k$keep/port" || fail "$keep: the echo server did not start"
	CKPTENV_CRASH_KEEP_SECONDS=$keep "$CKPTENV" run --name "k$keep" --detach --checkpoint-on-term -- \
		python3 "$T/job.py" line "$(cat "k$keep/port")" "$T/k$keep" </dev/null >/dev/null
	poll_until 60 test -e "k$keep/res0" || fail "$keep: the job did not start: $("$CKPTENV" log "k$keep" | tail -3)"
	"$CKPTENV" checkpoint "k$keep" >/dev/null 2>err.txt || fail "$keep: checkpoint: $(cat err.txt)"
	sup=$(sup_of "k$keep")
	kill -9 "$(cmd_pid "k$keep")"
	poll_until 30 state_is "k$keep" stopped || fail "$keep: the crashed job is not kept: $("$CKPTENV" status "k$keep")"
	if [ $keep = 600 ]; then
		grep -aq "restarts it here from checkpoint 1 (within 10 minutes)" "$CKPTENV_HOME/jobs/k$keep/log" ||
			fail "$keep: no notice: $(tail -2 "$CKPTENV_HOME/jobs/k$keep/log")"
		[ -e "k$keep/server.log" ] && fail "$keep: the server saw the connection end: $(cat "k$keep/server.log")"
		"$CKPTENV" restore "k$keep" --detach >/dev/null 2>err.txt || fail "$keep: restore in place: $(cat err.txt)"
		expect_eq "$keep: supervisor after the restore" "$sup" "$(sup_of "k$keep")"
		grep -q "connection" err.txt && fail "$keep: the restore reported: $(cat err.txt)"
		touch "k$keep/go1"
		poll_until 60 test -e "k$keep/res1" || fail "$keep: the restored job did not answer"
		expect_eq "$keep: the connection after the restore in place" OK "$(cat "k$keep/res1")"
		continue
	fi
	poll_until 60 sh -c "! kill -0 $sup 2>/dev/null" || fail "$keep: the supervisor outlived the expiry"
	grep -aq "no restore within 2 seconds: the job and its connections end" "$CKPTENV_HOME/jobs/k$keep/log" ||
		fail "$keep: no expiry in the log: $(tail -2 "$CKPTENV_HOME/jobs/k$keep/log")"
	poll_until 30 test -s "k$keep/server.log" || fail "$keep: the server's connection outlived the expiry"
	grep -Eq "^closed (EOF|RESET) b'first\\\\n'$" "k$keep/server.log" || fail "$keep: server: $(cat "k$keep/server.log")"
	"$CKPTENV" restore "k$keep" --detach >/dev/null 2>err.txt || fail "$keep: restore: $(cat err.txt)"
	grep -q "ckptenv: restore k$keep: connection to 127.0.0.1:$(cat "k$keep/port") (fd [0-9]*) reset: its supervisor ended" err.txt ||
		fail "$keep: not reported: $(cat err.txt)"
	touch "k$keep/go1"
	poll_until 60 test -e "k$keep/res1" || fail "$keep: the restored job did not answer"
	expect_eq "$keep: the connection after the expiry" ECONNRESET "$(cat "k$keep/res1")"
done
pass "a crashed job's connections are kept until CKPTENV_CRASH_KEEP_SECONDS is over, then closed upstream and reported reset"
