#!/bin/bash
# A job whose command has a child process is refused with the message, and keeps running; so is
# a job that installed a seccomp filter of its own (a restore would come back without it).
. "$(dirname "$0")/../lib.sh"
LOOP=$CK_HELPERS/zdtm-loop
"$CKPTENV" run --name k --detach -- sh -c "'$LOOP' 1000000 & exec '$LOOP'" </dev/null >/dev/null
has_count() { "$CKPTENV" log k | grep -aq '^count 100000[0-9]'; }
poll_until 10 has_count || fail "the job's child does not run"
"$CKPTENV" checkpoint k >out.txt 2>err.txt && fail "a two-process job was checkpointed"
grep -q "job k has [0-9]* processes; only single-process jobs can be checkpointed yet" err.txt ||
	fail "message: $(cat err.txt)"
[ ! -s out.txt ] || fail "an id was printed: $(cat out.txt)"
"$CKPTENV" checkpoints k | grep -q "^[0-9]" && fail "a checkpoint was listed"
"$CKPTENV" status k | grep -q "state: *running" || fail "the job did not survive the refusal"

"$CKPTENV" run --name f --detach -- "$CK_HELPERS/zdtm-seccomp" </dev/null >/dev/null
poll_until 10 sh -c "'$CKPTENV' log f | grep -aq '^filtered'" || fail "the filtered job did not start"
"$CKPTENV" checkpoint f >out.txt 2>err.txt && fail "a job with its own seccomp filter was checkpointed"
grep -q "job f installed 1 seccomp filter of its own; a restore could not put it back" err.txt ||
	fail "message: $(cat err.txt)"
[ "$(wc -l <err.txt)" = 1 ] || fail "more than one line: $(cat err.txt)"
"$CKPTENV" status f | grep -q "state: *running" || fail "the filtered job did not survive the refusal"
pass "multi-process job and job with its own seccomp filter refused"
