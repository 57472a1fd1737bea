#!/bin/bash
# checkpoint / kill -9 the supervisor / restore of a multi-threaded job (zdtm-threads: eight
# workers spinning on general, zmm and k registers, a token ring and a ping-pong under mutexes
# and condvars, a thread creating and joining short-lived ones, TLS, thread names, per-thread
# masks, a pending signal of one thread, rseq). The same checkpoint is restored twice; each time
# all 12 long-lived threads come back at their old tids (NSpid inside the job) with their names,
# the workers go on from the checkpoint, and on SIGUSR1 the job verifies itself and exits 0.
. "$(dirname "$0")/../lib.sh"
HELPER=$CK_HELPERS/zdtm-threads
[ -x "$HELPER" ] || fail "missing helper $HELPER"

sup_pid() { sed -n 's/.*supervisor t\[\([0-9]*\)\]: job started.*/\1/p' "$CKPTENV_HOME/jobs/t/log" | tail -1; }
job_pid() { "$CKPTENV" status t | sed -n 's/^pid: *\([0-9]*\) .*/\1/p'; }
cmd_pid() { cat "/proc/$(job_pid)/task/$(job_pid)/children" | tr -d ' '; }
# "NSPID COMM" of the long-lived threads (the helper's "tids" line; a transient one comes and
# goes), sorted.
threads() {
	local p t n keep; p=$(cmd_pid)
	keep=" $("$CKPTENV" log t | grep -a '^tids ' | tail -1 | cut -d' ' -f2-) "
	for t in /proc/"$p"/task/*; do
		n=$(awk '/^NSpid:/ {print $NF}' "$t/status")
		case "$keep" in *" $n "*) echo "$n $(cat "$t/comm")" ;; esac
	done | sort -n
}
ticks() { "$CKPTENV" log t | grep -a '^tick ' | awk '{print $2}'; }
tick_above() { [ "$(ticks | tail -1)" -gt "$1" ]; }
has_ready() { "$CKPTENV" log t | grep -aq '^ready$'; }
no_fail() { ! "$CKPTENV" log t | grep -a '^fail'; }
kill_all() { # as a reboot would: the supervisor with SIGKILL takes the job with it
	local s; s=$(sup_pid)
	kill -9 "$s"
	poll_until 10 sh -c "! kill -0 $s" || fail "supervisor $s survived SIGKILL"
	poll_until 10 sh -c "'$CKPTENV' status t | grep -q 'state: *died'" || fail "job still up"
}

"$CKPTENV" run --name t --detach -- "$HELPER" 1 </dev/null >/dev/null
poll_until 20 has_ready || fail "the helper never got ready: $("$CKPTENV" log t | tail -3)"
before=$(threads)
[ "$(echo "$before" | wc -l)" = 12 ] || fail "the job has not 12 threads: $before"
grep -q "worker7" <<<"$before" || fail "no thread names: $before"
id=$("$CKPTENV" checkpoint t 2>ckpt.txt) || fail "checkpoint: $(cat ckpt.txt)"
[ "$id" = 1 ] || fail "first checkpoint id is '$id'"
at=$(ticks | tail -1)
poll_until 10 tick_above $((at + 8)) || fail "the job does not go on after the checkpoint"
no_fail || fail "the job failed after the checkpoint"
kill_all

for round in 1 2; do
	"$CKPTENV" restore t --detach >/dev/null 2>err.txt || fail "restore $round: $(cat err.txt)"
	last=$(ticks | tail -1)
	poll_until 20 tick_above "$last" || fail "restore $round: no progress: $(tail -3 "$CKPTENV_HOME/jobs/t/log")"
	after=$(threads)
	[ "$after" = "$before" ] || fail "restore $round: threads $(echo $after) instead of $(echo $before)"
	no_fail || fail "restore $round: the job failed"
	kill -USR1 "$(cmd_pid)"
	poll_until 60 sh -c "[ \$('$CKPTENV' log t | grep -ac '^ok\$') -ge $round ]" ||
		fail "restore $round: no verdict: $("$CKPTENV" log t | grep -av '^tick' | tail -3)"
	no_fail || fail "restore $round: the job failed its verification"
	poll_until 10 sh -c "'$CKPTENV' status t | grep -q 'state: *exited 0'" ||
		fail "restore $round: $("$CKPTENV" status t | grep state)"
done
pass "12 threads checkpointed, restored twice at their old tids, verified themselves"
