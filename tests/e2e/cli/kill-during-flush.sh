#!/bin/bash
# kill -9 of the supervisor while a snapshot flushes a /tmp full of dirty pages: the flush waits
# for WRITEs that the supervisor's own FUSE workers answer, so a supervisor that waited in
# syncfs itself could never exit (stuck in D state, its /dev/fuse held open). Every killed
# supervisor must be gone within seconds, with its job, and the store must reopen with what
# was committed before the kills (a kill may land before any snapshot of the loop commits, so
# only the file of the first, completed run is certain to be there).
. "$(dirname "$0")/../lib.sh"

"$CKPTENV" run --name f -- sh -c 'echo committed > /tmp/keep' >/dev/null 2>"$T/err" ||
	fail "first run: $(cat "$T/err")"

for i in 1 2 3 4 5 6 7 8; do
	rm -f "$T/r"
	"$CKPTENV" run --name f --detach -- sh -c "touch $T/r; while :; do
		dd if=/dev/zero of=/tmp/big bs=1M count=32 conv=notrunc 2>/dev/null; done" >/dev/null ||
		fail "run $i"
	poll_until 20 test -e "$T/r" || fail "job did not start ($i)"
	sup=$("$CKPTENV" status f | sed -n 's/.*(supervisor \([0-9]*\)).*/\1/p')
	[ -n "$sup" ] || fail "no supervisor pid ($i)"
	"$CKPTENV" snapshot f >/dev/null 2>&1 &
	snap=$!
	sleep "0.0$((RANDOM % 8))"
	kill -9 "$sup"
	poll_until 20 sh -c "! kill -0 $sup 2>/dev/null" ||
		fail "supervisor $sup still there after kill -9 ($i): $(ps -o stat=,wchan= -p "$sup")"
	wait "$snap" 2>/dev/null || true
done
out=$("$CKPTENV" run --name f -- cat /tmp/keep 2>"$T/err") ||
	fail "store did not reopen: $(cat "$T/err")"
expect_eq "store after the kills" "committed" "$out"
pass "supervisor killed during a flush exits"
