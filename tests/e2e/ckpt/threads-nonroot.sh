#!/bin/bash
# A multi-threaded job (zdtm-threads) checkpointed with --stop and restored as an ordinary user
# (user namespace: the threads get their old tids through the job's own pid namespace): the
# 12 long-lived threads come back with their old tids and names, and the job verifies itself.
. "$(dirname "$0")/../lib.sh"
use_ckuser copy tn "$CK_HELPERS/zdtm-threads"
ticks() { as_user log tn | grep -a '^tick ' | awk '{print $2}'; }
tick_above() { [ "$(ticks | tail -1)" -gt "$1" ]; }
has_ready() { as_user log tn | grep -aq '^ready$'; }
has_ok() { as_user log tn | grep -aq '^ok$'; }
cmd_pid() {
	local j; j=$(as_user status tn | sed -n 's/^pid: *\([0-9]*\) .*/\1/p')
	cat "/proc/$j/task/$j/children" | tr -d ' '
}
threads() {
	local p t n keep; p=$(cmd_pid)
	keep=" $(as_user log tn | grep -a '^tids ' | tail -1 | cut -d' ' -f2-) "
	for t in /proc/"$p"/task/*; do
		n=$(awk '/^NSpid:/ {print $NF}' "$t/status")
		case "$keep" in *" $n "*) echo "$n $(cat "$t/comm")" ;; esac
	done | sort -n
}

as_user run --name tn --detach -- "$U/zdtm-threads" 1 >/dev/null
poll_until 20 has_ready || fail "the helper never got ready: $(as_user log tn | tail -3)"
before=$(threads)
[ "$(echo "$before" | wc -l)" = 12 ] || fail "the job has not 12 threads: $before"
as_user checkpoint tn --stop >out.txt 2>err.txt || fail "checkpoint as ckuser: $(cat err.txt)"
at=$(ticks | tail -1)
as_user restore tn --detach >/dev/null 2>err.txt || fail "restore as ckuser: $(cat err.txt)"
poll_until 20 tick_above "$at" || fail "restored job does not go on: $(as_user log tn | tail -3)"
after=$(threads)
[ "$after" = "$before" ] || fail "threads $(echo $after) instead of $(echo $before)"
kill -USR1 "$(cmd_pid)"
poll_until 60 has_ok || fail "no verdict: $(as_user log tn | grep -av '^tick' | tail -3)"
as_user log tn | grep -aq '^fail' && fail "the job failed: $(as_user log tn | grep -a '^fail')"
pass "multi-threaded checkpoint and restore as ckuser"
