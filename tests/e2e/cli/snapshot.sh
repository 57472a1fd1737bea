#!/bin/bash
# snapshot, snapshots, --drop, and run --from-snapshot rolling /tmp back.
. "$(dirname "$0")/../lib.sh"

# step N: the job signals "at N" through a host file and waits for "go N".
job='echo v1 > /tmp/f; touch '$T'/at1; while [ ! -e '$T'/go1 ]; do sleep 0.05; done
echo v2 > /tmp/f; rm -f /tmp/gone; touch '$T'/at2; while [ ! -e '$T'/go2 ]; do sleep 0.05; done'
"$CKPTENV" run --name s -- sh -c 'echo keep > /tmp/gone'
"$CKPTENV" run --name s --detach -- sh -c "$job" >/dev/null
poll_until 20 test -e "$T/at1" || fail "job did not reach step 1"
id1=$("$CKPTENV" snapshot s 2>"$T/err") || fail "snapshot failed: $(cat "$T/err")"
[[ "$id1" =~ ^[0-9]+$ ]] || fail "snapshot id is not a number: '$id1'"
grep -q "^ckptenv: snapshot s: .* ms" "$T/err" || fail "no timing on stderr: $(cat "$T/err")"
touch "$T/go1"
poll_until 20 test -e "$T/at2" || fail "job did not reach step 2"
id2=$("$CKPTENV" snapshot s 2>/dev/null) || fail "second snapshot failed"
[ "$id2" -gt "$id1" ] || fail "snapshot ids not increasing: $id1 then $id2"
touch "$T/go2"
poll_until 20 sh -c "\"$CKPTENV\" list | grep -q '^s  *exited 0'" || fail "job did not end"

list=$("$CKPTENV" snapshots s)
grep -q "^$id1 " <<<"$list" || fail "snapshots lacks $id1: $list"
grep -q "^$id2 " <<<"$list" || fail "snapshots lacks $id2: $list"
! grep -qw head <<<"$list" || fail "snapshots shows head"
"$CKPTENV" status s | grep -q "^snapshots: *2$" || fail "status does not count 2 snapshots"

# Head is the newest state; --from-snapshot rolls back to the first one.
expect_eq "head" "v2" "$("$CKPTENV" run --name s -- cat /tmp/f)"
expect_eq "rolled back" "v1 keep" "$("$CKPTENV" run --name s --from-snapshot "$id1" -- sh -c 'echo $(cat /tmp/f /tmp/gone)')"
# The rollback's run committed its own head: it stays rolled back.
expect_eq "after rollback" "v1" "$("$CKPTENV" run --name s -- cat /tmp/f)"
# A rollback over changes no snapshot holds keeps them as a snapshot, and says which (they
# were lost, silently); one over a head a snapshot holds does not (the one above).
"$CKPTENV" run --name s -- sh -c 'echo v3 > /tmp/f'
out=$("$CKPTENV" run --name s --from-snapshot "$id1" -- cat /tmp/f 2>"$T/err") || fail "rollback: $(cat "$T/err")"
expect_eq "rolled back again" v1 "$out"
k=$(sed -n "s/^ckptenv: run s: \/tmp as the last run left it is kept as snapshot \([0-9]*\) ('ckptenv snapshot s --drop [0-9]*' frees it)$/\1/p" "$T/err")
[ -n "$k" ] || fail "no note of the kept state: $(cat "$T/err")"
expect_eq "the kept state" v3 "$("$CKPTENV" run --name s --from-snapshot "$k" -- cat /tmp/f 2>/dev/null)"
"$CKPTENV" snapshot s --drop "$k" || fail "drop of the kept snapshot"

# Drop while not running, then the id is unknown.
"$CKPTENV" snapshot s --drop "$id2" || fail "drop failed"
! "$CKPTENV" snapshots s | grep -q "^$id2 " || fail "dropped snapshot still listed"
rc=0; "$CKPTENV" run --name s --from-snapshot "$id2" -- true 2>"$T/err" || rc=$?
[ "$rc" -ne 0 ] || fail "run from a dropped snapshot succeeded"
expect_eq "one error line" 1 "$(wc -l <"$T/err")"
rc=0; "$CKPTENV" snapshot s --drop "$id2" 2>"$T/err" || rc=$?
[ "$rc" -ne 0 ] || fail "dropping twice succeeded"

# Drop while running goes through the supervisor.
rm -f "$T/at1" "$T/go1"
"$CKPTENV" run --name s --detach -- sh -c "touch $T/at1; while [ ! -e $T/go1 ]; do sleep 0.05; done" >/dev/null
poll_until 20 test -e "$T/at1" || fail "job did not start"
id3=$("$CKPTENV" snapshot s 2>/dev/null)
"$CKPTENV" snapshot s --drop "snap-$id3" || fail "drop of a running job's snapshot failed"
! "$CKPTENV" snapshots s | grep -q "^$id3 " || fail "dropped snapshot still listed"
touch "$T/go1"
pass "snapshots and rollback"
