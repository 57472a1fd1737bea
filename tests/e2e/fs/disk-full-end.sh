#!/bin/bash
# The disk of CKPTENV_HOME fills up (something else writes it) while a job runs, and the job
# then ends: its /tmp is still saved, from the space the store sets aside for that last commit
# (store/reserve). Before, the commit failed, `run` said nothing and exited 0, and every change
# since the last epoch was gone (200 small files and a synced one here). When even that space
# is not enough (4000 new small files), `run` says in one line that /tmp could not be saved.
# A tmpfs in a private mount namespace is the small disk.
CK_SMALL_DISK=48m
. "$(dirname "$0")/../lib.sh"
trap 'rc=$?; set +e; "$CKPTENV" rm --force d >/dev/null 2>&1; umount -l "$CKPTENV_HOME"; _cleanup $rc' EXIT

# job N: writes N small files and /tmp/keep, syncs, then waits for $T/go before it exits
job() {
	rm -f "$T/ready" "$T/go"
	"$CKPTENV" run --name d -- sh -c "echo precious >/tmp/keep; i=0; while [ \$i -lt $1 ]; do i=\$((i+1)); echo \$i >/tmp/s\$i; done; sync
		touch '$T/ready'; while [ ! -e '$T/go' ]; do sleep 0.05; done" </dev/null >out.txt 2>err.txt &
	RUN=$!
	poll_until 60 test -e "$T/ready" || fail "the job did not get ready: $(cat err.txt)"
	dd if=/dev/zero of="$CKPTENV_HOME/filler" bs=64k 2>/dev/null || true
	[ "$(stat -f -c '%a' "$CKPTENV_HOME")" -lt 8 ] || fail "the tmpfs is not full"
	touch "$T/go"
	rc=0
	wait $RUN || rc=$?
	rm -f "$CKPTENV_HOME/filler"
}

job 200
expect_eq "run's exit status" 0 "$rc"
[ ! -s err.txt ] || fail "run complained: $(cat err.txt)"
out=$("$CKPTENV" run --name d -- sh -c 'ls /tmp | wc -l; cat /tmp/keep') || fail "the next run failed: $out"
expect_eq "/tmp after the disk was full at the end" "$(printf '201\nprecious')" "$out"

job 4000
expect_eq "run's exit status with /tmp lost" 0 "$rc"
expect_eq "run's line" "ckptenv: run d: the job's /tmp could not be saved (commit: No space left on device): what it changed there since the last checkpoint or snapshot is lost; the disk of CKPTENV_HOME is full" "$(cat err.txt)"
out=$("$CKPTENV" run --name d -- sh -c 'ls /tmp | wc -l') || fail "the run after the loss failed: $out"
expect_eq "/tmp is the last saved one" 201 "$out"
pass "a disk full at the job's end: /tmp saved from the reserve, else a clear line"
