#!/bin/bash
# checkpoint --stop / restore as an ordinary user (user namespace, unprivileged FUSE): the
# counter goes on where it stopped; `restore` without --detach waits for the job's status.
. "$(dirname "$0")/../lib.sh"
use_ckuser copy nr "$CK_HELPERS/zdtm-loop"
counts() { as_user log nr | grep -a '^count ' | awk '{print $2}'; }
count_above() { [ "$(counts | tail -1)" -gt "$1" ]; }

as_user run --name nr --detach -- "$U/zdtm-loop" >/dev/null
poll_until 10 count_above 10 || fail "the counter does not run"
as_user checkpoint nr --stop >out.txt 2>err.txt || fail "checkpoint as ckuser: $(cat err.txt)"
at=$(counts | tail -1)
as_user restore nr >rout.txt 2>rerr.txt &
rpid=$!
diag() { # where the restored process is when it does not count
	local j c
	j=$(as_user status nr | sed -n 's/^pid: *\([0-9]*\) .*/\1/p')
	c=$(cat "/proc/$j/task/$j/children" 2>/dev/null | tr -d ' ')
	echo "status: $(as_user status nr | tr '\n' ' ')"
	[ -n "$c" ] && echo "pid $c: $(cat /proc/$c/syscall) $(grep -E 'State|SigPnd|ShdPnd|SigBlk' /proc/$c/status | tr '\n' ' ')"
	tail -3 "$U/home/jobs/nr/log"
	echo "job output: $(as_user log nr | grep -av '^count ' | tail -5)"
}
poll_until 10 count_above $((at + 20)) || fail "restored counter: $(cat rerr.txt; counts | tail -2; diag)"
# --stop ended the job right after the checkpoint: the restored one goes on without a gap.
gaps=$(counts | awk 'NR > 1 && $1 != p + 1 {print p "->" $1} {p = $1}')
[ -z "$gaps" ] || fail "the counter jumped: $gaps"
job=$(as_user status nr | sed -n 's/^pid: *\([0-9]*\) .*/\1/p')
kill -TERM "$(cat "/proc/$job/task/$job/children")"
rc=0; wait "$rpid" || rc=$?
[ "$rc" = 143 ] || fail "restore exited $rc, not the job's 143: $(cat rerr.txt)"
pass "checkpoint and restore as ckuser"
