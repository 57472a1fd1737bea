#!/bin/bash
# `ckptenv checkpoints NAME` names every checkpoint that cannot be restored, one line each with
# the file and how to drop it, exit 1: a directory whose manifest is corrupt (it used to be left
# out of the table without a word, while `restore` pointed at that table) and one whose image
# fails the structure check `restore` makes first (a truncated pages.img). The good one is
# listed and still restores; after `rm --checkpoint` of the bad ones the listing is clean.
. "$(dirname "$0")/../lib.sh"
LOOP=$CK_HELPERS/zdtm-loop
[ -x "$LOOP" ] || fail "missing helper $LOOP"

"$CKPTENV" run --name cc --detach -- "$LOOP" >/dev/null 2>&1 || fail "run failed"
for i in 1 2 3; do
	poll_until 20 "$CKPTENV" checkpoint cc >/dev/null 2>&1 || fail "checkpoint $i failed"
done
D=$CKPTENV_HOME/jobs/cc/checkpoints
: >"$D/2/manifest"
truncate -s 100 "$D/3/image/pages.img"

rc=0
"$CKPTENV" checkpoints cc >"$T/out" 2>"$T/err" || rc=$?
expect_eq "exit status of checkpoints with two unusable" 1 "$rc"
grep -q '^1 ' "$T/out" || fail "the good checkpoint 1 is not listed: $(cat "$T/out")"
grep -q "checkpoint 2 cannot be restored: $D/2/manifest: truncated or corrupt; 'ckptenv rm cc --checkpoint 2' drops it" "$T/err" ||
	fail "no line for the corrupt manifest: $(cat "$T/err")"
grep -q "checkpoint 3 cannot be restored: $D/3/image/pages.img is truncated" "$T/err" ||
	fail "no line for the truncated pages.img: $(cat "$T/err")"
expect_eq "lines on stderr" 2 "$(wc -l <"$T/err")"

"$CKPTENV" rm cc --checkpoint 2 || fail "rm --checkpoint 2 (corrupt manifest) failed"
"$CKPTENV" rm cc --checkpoint 3 || fail "rm --checkpoint 3 failed"
"$CKPTENV" checkpoints cc >"$T/out" 2>"$T/err" || fail "checkpoints still fails: $(cat "$T/err")"
[ ! -s "$T/err" ] || fail "checkpoints still complains: $(cat "$T/err")"
"$CKPTENV" rm --force cc
pass "checkpoints names the unusable ones"
