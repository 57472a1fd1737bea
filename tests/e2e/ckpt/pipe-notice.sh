#!/bin/bash
# A `run` without a terminal (pipe mode) is told, on its own stderr, when its job is stopped
# for a restore in place (`checkpoint --stop`): one "ckptenv: ..." line, never mixed into the
# job's stdout (before, it waited without a word, up to the whole crash-keep time).
. "$(dirname "$0")/../lib.sh"
LOOP=$CK_HELPERS/zdtm-loop
[ -x "$LOOP" ] || fail "missing helper $LOOP"

"$CKPTENV" run --name pn -- "$LOOP" </dev/null >"$T/out" 2>"$T/err" &
RUN=$!
trap 'rc=$?; set +e; kill $RUN 2>/dev/null; _cleanup $rc' EXIT
poll_until 20 grep -q '^count 1' "$T/out" || fail "the job did not start: $(cat "$T/err")"
"$CKPTENV" checkpoint pn --stop >/dev/null 2>"$T/ck" || fail "checkpoint --stop: $(cat "$T/ck")"
poll_until 10 grep -q "^ckptenv: job pn stopped at checkpoint 1; 'ckptenv restore pn' resumes it here$" "$T/err" ||
	fail "no notice on the run client's stderr: $(cat "$T/err")"
grep -aq ckptenv "$T/out" && fail "the notice went into the job's stdout"
"$CKPTENV" rm --force pn
wait $RUN || true
pass "a pipe-mode run is told when its job is stopped"
