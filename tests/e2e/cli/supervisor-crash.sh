#!/bin/bash
# kill -9 of the supervisor: the job goes with it, no mount is left on the host, and the store
# reopens with the last committed state.
. "$(dirname "$0")/../lib.sh"

"$CKPTENV" run --name c -- sh -c 'echo committed > /tmp/a'
"$CKPTENV" run --name c --detach -- sh -c "echo snap > /tmp/b; touch $T/r; while :; do sleep 0.05; done" >/dev/null
poll_until 20 test -e "$T/r" || fail "job did not start"
"$CKPTENV" snapshot c >/dev/null 2>&1 || fail "snapshot failed"
st=$("$CKPTENV" status c)
sup=$(echo "$st" | sed -n 's/.*(supervisor \([0-9]*\)).*/\1/p')
init=$(echo "$st" | sed -n 's/^pid: *\([0-9]*\) .*/\1/p')
[ -n "$sup" ] && [ -n "$init" ] || fail "no pids in status: $st"
kill -9 "$sup"
poll_until 20 sh -c "! kill -0 $init 2>/dev/null" || fail "job's init $init outlived its supervisor"
! grep -q fuse.ckptenv /proc/self/mountinfo || fail "fuse.ckptenv mount left on the host"
"$CKPTENV" list | grep -Eq '^c +died' || fail "list does not show the crash: $("$CKPTENV" list)"
out=$("$CKPTENV" run --name c -- sh -c 'cat /tmp/a /tmp/b')
expect_eq "state after the crash" "committed
snap" "$out"
pass "supervisor crash"
