#!/bin/bash
# The last pieces of process state through `ckptenv`, each checkpointed, everything killed
# (supervisor too), restored twice from the same checkpoint in the job's pid namespace, and
# verified from inside on SIGUSR2: zdtm-thtimers (a SIGEV_THREAD_ID timer aimed at a worker
# thread and a glibc SIGEV_THREAD timer), zdtm-shmalias (one memfd, shared anon region and
# /dev/shm file mapped several times: writes seen through every alias), zdtm-rseq (a thread
# looping in an rseq critical section, moved to its abort handler by the dump).
. "$(dirname "$0")/../lib.sh"

sup_pid() { sed -n "s/.*supervisor $1\[\([0-9]*\)\]: job started.*/\1/p" "$CKPTENV_HOME/jobs/$1/log" | tail -1; }
job_pid() { "$CKPTENV" status "$1" | sed -n 's/^pid: *\([0-9]*\) .*/\1/p'; }
cmd_pid() { cat "/proc/$(job_pid "$1")/task/$(job_pid "$1")/children" | tr -d ' '; }
logged() { "$CKPTENV" log "$1" | grep -aq "$2"; }
verdicts_n() { [ "$("$CKPTENV" log "$1" | grep -acE '^(ok|fail)')" -ge "$2" ]; }
named() { [ "$(cat "/proc/$(cmd_pid "$1")/comm" 2>/dev/null)" = "$2" ]; }
kill_all() {
	local s; s=$(sup_pid "$1")
	kill -9 "$s"
	poll_until 10 sh -c "! kill -0 $s" || fail "$1: supervisor $s survived SIGKILL"
	poll_until 10 sh -c "'$CKPTENV' status $1 | grep -q 'state: *\(died\|exited\)'" || fail "$1: job still up"
}

SHM=/dev/shm/ckptenv-e2e-shmalias-$$
trap 'rc=$?; rm -f "$SHM"; _cleanup $rc' EXIT

# job helper [arg]
one() {
	local j=$1 h=$2
	"$CKPTENV" run --name "$j" --detach -- "$CK_HELPERS/$h" ${3:+"$3"} </dev/null >/dev/null
	poll_until 20 logged "$j" '^ready' || fail "$j: helper not ready: $("$CKPTENV" log "$j" | tail -3)"
	"$CKPTENV" checkpoint "$j" >/dev/null 2>ckpt.txt || fail "$j: checkpoint: $(cat ckpt.txt)"
	kill_all "$j"
	for round in 1 2; do
		"$CKPTENV" restore "$j" --detach >/dev/null 2>err.txt || fail "$j: restore $round: $(cat err.txt)"
		# SIGUSR2 asks for the verdict; sent once the blob named the process (signals
		# blocked there, the helper's handler installed), never to the restorer before.
		poll_until 20 named "$j" "$h" || fail "$j: restore $round: not restored: $("$CKPTENV" log "$j" | tail -3)"
		kill -USR2 "$(cmd_pid "$j")"
		poll_until 40 verdicts_n "$j" $round || fail "$j: restore $round: no verdict: $("$CKPTENV" log "$j" | tail -3)"
		"$CKPTENV" log "$j" | grep -aE '^(ok|fail)' | tail -1 | grep -q '^ok' ||
			fail "$j: restore $round: $("$CKPTENV" log "$j" | grep -aE '^fail' | tail -1)"
		poll_until 10 sh -c "'$CKPTENV' status $j | grep -q 'state: *exited'" || kill_all "$j"
	done
}

one tt zdtm-thtimers
one sm zdtm-shmalias "$SHM"
one rs zdtm-rseq
pass "thread-aimed timers, aliased shared memory and rseq sections across kill -9 and two restores"
