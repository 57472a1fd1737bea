#!/bin/bash
# A checkpoint asked for right after `run --detach` returns is of the job's command: it waits
# until the command has exec'd. Before, it raced the init's fork and exec, and either failed
# ("has no process to checkpoint", seen in CI) or saved the init's own copy in the middle of
# execvp. A PATH of thousands of missing directories in the job's /tmp makes that exec take
# a few hundred milliseconds here, so the race is lost every time on the old code.
. "$(dirname "$0")/../lib.sh"
SLEEP=$(readlink -f "$(command -v sleep)")
slow_path=$(seq -f '/tmp/m%g' 1 9000 | paste -sd:)

for mode in detach attached; do
	if [ $mode = detach ]; then
		PATH=$slow_path:$PATH "$CKPTENV" run --name js --detach -- sleep 100 </dev/null >/dev/null ||
			fail "run --detach"
	else # a `run` that stays attached (pipes, in the background), asked from elsewhere
		PATH=$slow_path:$PATH "$CKPTENV" run --name js -- sleep 100 </dev/null >/dev/null 2>&1 &
		RUN=$!
		poll_until 10 sh -c "'$CKPTENV' status js 2>/dev/null | grep -q 'state: *running'" ||
			fail "the attached run did not start"
	fi
	"$CKPTENV" checkpoint js >/dev/null 2>err.txt || fail "$mode: checkpoint: $(cat err.txt)"
	core=$CKPTENV_HOME/jobs/js/checkpoints/1/image/core.img
	grep -aq "$SLEEP" "$core" || fail "$mode: the checkpoint is not of $SLEEP (the init's copy before its exec?)"
	"$CKPTENV" checkpoint js --stop >/dev/null 2>err.txt || fail "$mode: checkpoint --stop: $(cat err.txt)"
	"$CKPTENV" restore js 1 --detach >/dev/null 2>err.txt || fail "$mode: restore: $(cat err.txt)"
	"$CKPTENV" status js | grep -q 'state: *running' || fail "$mode: not running after the restore"
	"$CKPTENV" rm --force js >/dev/null
	[ $mode = detach ] || wait $RUN || true
done
pass "a checkpoint right after the start waits for the command's exec"
