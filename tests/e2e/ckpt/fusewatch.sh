#!/bin/bash
# The FUSE watchdog pins the mount it watches. Then kill -9 of the supervisor while it waits on
# its own /tmp (a checkpoint's flush, with a job writing all the time): either its main thread
# waits in a request to that /tmp, which the FUSE watchdog answers by aborting the connection
# (sup-fusewatch.c), or the flush child waits in
# syncfs/fsync, which holds no /dev/fuse and so wakes when the supervisor's fds close
# (vfs/flush.c). Either way the supervisor dies at once instead of hanging in D state with the
# job's lock held, and the job can be started again. The kill is sent only once such a wait is
# seen, so the test hits that instant.
. "$(dirname "$0")/../lib.sh"
[ "$(id -u)" = 0 ] || skip "the watchdog needs root (fusectl)"
command -v python3 >/dev/null || skip "python3 missing"
LOG=$CKPTENV_HOME/jobs/w/log
"$CKPTENV" run --name w --detach -- python3 -c '
import os
f = os.open("/tmp/big", os.O_WRONLY | os.O_CREAT)
b = b"x" * (1 << 20)
while True:
    for i in range(64):
        os.pwrite(f, b, i << 20)
' </dev/null >/dev/null
sup=$(sed -n 's/.*supervisor w\[\([0-9]*\)\]: starting.*/\1/p' "$LOG" | tail -1)
poll_until 10 sh -c "grep -q 'job started' '$LOG'" || fail "job not started"
# The watchdog (a child of the supervisor) holds the job's /tmp itself: the device number it
# would abort by cannot be freed and given to another job's mount meanwhile.
pinned() {
	local c f
	for c in $(cat /proc/"$sup"/task/*/children); do
		for f in /proc/"$c"/fd/*; do
			[ "$(readlink "$f")" = /tmp ] && stat -L -f -c %T "$f" | grep -q fuse && return 0
		done
	done
	return 1
}
poll_until 10 pinned || fail "the FUSE watchdog holds no fd on the job's /tmp"
# A thread of the supervisor (the checkpoint's), or a child of one (the flush), waiting on the
# job's /tmp.
in_fuse() {
	local t c w
	for t in /proc/"$sup"/task/*; do
		for w in "$t/wchan" $(for c in $(cat "$t/children" 2>/dev/null); do echo "/proc/$c/wchan"; done); do
			case $(cat "$w" 2>/dev/null) in
			request_wait_answer | wb_wait_for_completion | fuse_*) return 0 ;;
			esac
		done
	done
	return 1
}
hit=0
for try in $(seq 1 20); do
	"$CKPTENV" checkpoint w >/dev/null 2>&1 &
	cli=$!
	if poll_until 5 in_fuse; then
		hit=1
		kill -9 "$sup"
		break
	fi
	wait "$cli" || true
done
[ "$hit" = 1 ] || fail "never saw the supervisor wait on its own /tmp in 20 checkpoints"
poll_until 10 sh -c "! kill -0 $sup 2>/dev/null || grep -q '^State:.*Z' /proc/$sup/status" ||
	fail "supervisor $sup stuck after SIGKILL: $(grep State /proc/$sup/status) $(cat /proc/$sup/task/*/wchan | tr '\n' ' ')"
wait "$cli" 2>/dev/null || true
poll_until 10 sh -c "'$CKPTENV' status w | grep -q 'state: *died'" || fail "the job's lock is still held"
"$CKPTENV" run --name w --detach -- true </dev/null >/dev/null 2>err.txt || fail "cannot run w again: $(cat err.txt)"
pass "a supervisor killed while waiting on its own /tmp dies (attempt $try)"
