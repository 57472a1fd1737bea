#!/bin/bash
# Every fd kind across checkpoint / kill -9 of the supervisor / restore (zdtm-fds): an epoll
# loop with a timerfd, an eventfd, a pipe to itself with bytes in flight, a signalfd, inotify
# watches on /tmp directories, unix listeners in /tmp and abstract, a TCP listener on
# loopback, socketpairs, a FIFO in /tmp. The restored helper verifies itself on SIGUSR1 (it
# connects to its own listeners: the TCP one through the proxy). Restored twice from the same
# checkpoint. Then: a job holding a TCP connection it accepted is refused, naming the fd.
. "$(dirname "$0")/../lib.sh"
FDS=$CK_HELPERS/zdtm-fds
[ -x "$FDS" ] || fail "missing helper $FDS"

sup_pid() { sed -n 's/.*supervisor j\[\([0-9]*\)\]: job started.*/\1/p' "$CKPTENV_HOME/jobs/j/log" | tail -1; }
job_pid() { "$CKPTENV" status "$1" | sed -n 's/^pid: *\([0-9]*\) .*/\1/p'; }
cmd_pid() { cat "/proc/$(job_pid "$1")/task/$(job_pid "$1")/children" | tr -d ' '; }
said() { "$CKPTENV" log "$1" | grep -aq "$2"; }
# The restored helper is back in its loop: in epoll_wait (232) or epoll_pwait (281), which
# the restorer's process never calls. Only then may SIGUSR1 come (the init's child starts
# with signals at their defaults).
in_loop() {
	local p; p=$(cmd_pid j) && [ -n "$p" ] && grep -Eq '^(232|281) ' "/proc/$p/syscall"
}
kill_all() { # as a reboot would: the supervisor with SIGKILL takes the job with it
	local s; s=$(sup_pid)
	kill -9 "$s"
	poll_until 10 sh -c "! kill -0 $s" || fail "supervisor $s survived SIGKILL"
	poll_until 10 sh -c "'$CKPTENV' status j | grep -q 'state: *died'" || fail "job still up"
}

"$CKPTENV" run --name j --detach -- "$FDS" 1 /tmp/zdtm-fds </dev/null >/dev/null
poll_until 10 said j '^ready' || fail "helper not ready: $("$CKPTENV" log j | tail -3)"
said j '^fail' && fail "helper: $("$CKPTENV" log j | grep -a '^fail')"
"$CKPTENV" checkpoint j >id.txt 2>ckpt.txt || fail "checkpoint: $(cat ckpt.txt)"
kill_all

for round in 1 2; do
	"$CKPTENV" restore j --detach >/dev/null 2>err.txt || fail "restore $round: $(cat err.txt)"
	poll_until 10 in_loop || fail "restore $round: $("$CKPTENV" log j | tail -3)"
	kill -USR1 "$(cmd_pid j)"
	n_ok=$round
	poll_until 15 sh -c "[ \$('$CKPTENV' log j | grep -ac '^ok') -ge $n_ok ] ||
		'$CKPTENV' log j | grep -aq '^fail'" ||
		fail "restore $round: no verdict: $("$CKPTENV" log j | grep -av '^ticks' | tail -3 |
			tr '\n' ' ') $("$CKPTENV" status j | grep state) $(tail -2 "$CKPTENV_HOME/jobs/j/log")"
	said j '^fail' && fail "restore $round: $("$CKPTENV" log j | grep -a '^fail')"
	kill_all
done

"$CKPTENV" run --name k --detach -- "$FDS" 1 /tmp/zdtm-fds accept </dev/null >/dev/null
poll_until 10 said k '^ready' || fail "accept helper not ready: $("$CKPTENV" log k | tail -3)"
afd=$("$CKPTENV" log k | sed -n 's/^ready [0-9]* \([0-9]*\).*/\1/p')
"$CKPTENV" checkpoint k >out.txt 2>err.txt && fail "a job with an accepted connection was checkpointed"
[ "$(wc -l <err.txt)" = 1 ] || fail "not one line: $(cat err.txt)"
grep -q "fd $afd is a connected TCP socket the job accepted" err.txt || fail "message: $(cat err.txt)"
"$CKPTENV" status k | grep -q "state: *running" || fail "the job did not survive the refusal"
pass "fd kinds restored twice and verified from inside; accepted connection refused: $(cat err.txt)"
