#!/bin/bash
# A job with more shared memory objects than its hard open-file limit allows the restore to
# hold at once (1100 MAP_SHARED|MAP_ANONYMOUS mappings under `ulimit -n 1024`): the restore is
# refused in one line that says so and what to raise, not a bare "Too many open files", and
# the job stays stopped. Under a soft limit alone (the usual 1024 of a hard 524288) it restores.
. "$(dirname "$0")/../lib.sh"
cat >job.py <<'PY'
import mmap, time
ms = [mmap.mmap(-1, 4096) for i in range(1100)]
for i, m in enumerate(ms):
    m[0:4] = b"%04d" % i
while True:
    time.sleep(0.05)
    bad = [i for i, m in enumerate(ms) if m[0:4] != b"%04d" % i]
    print("ok" if not bad else "bad %d" % len(bad), flush=True)
PY
state_is() { "$CKPTENV" status "$1" | grep -Eq "state: *($2)"; }
oks() { "$CKPTENV" log "$1" | grep -ac '^ok'; }
oks_above() { [ "$(oks "$1")" -gt "$2" ]; }
for lim in hard soft; do
	j=m-$lim
	(
		if [ $lim = hard ]; then ulimit -n 1024; else ulimit -Sn 1024; fi
		"$CKPTENV" run --name "$j" --detach -- python3 "$T/job.py" </dev/null >/dev/null
	) || fail "$j: run"
	poll_until 20 oks_above "$j" 2 || fail "$j: no progress: $("$CKPTENV" log "$j" | tail -2)"
	"$CKPTENV" checkpoint "$j" --stop >/dev/null 2>err.txt || fail "$j: checkpoint: $(cat err.txt)"
	rc=0
	"$CKPTENV" restore "$j" --detach >/dev/null 2>err.txt || rc=$?
	if [ $lim = hard ]; then
		expect_eq "$j: restore" 1 "$rc"
		grep -q "the image has 1100 shared memory objects and [0-9]* fds: the restore holds them all open at once, over the open file limit 1024 here (raise it: ulimit -n)" err.txt ||
			fail "$j: unclear: $(cat err.txt)"
		state_is "$j" stopped || fail "$j: not stopped after the refusal"
	else
		expect_eq "$j: restore ($(cat err.txt))" 0 "$rc"
		n=$(oks "$j")
		poll_until 20 oks_above "$j" $((n + 2)) || fail "$j: the restored job does not go on"
		"$CKPTENV" log "$j" | grep -aq '^bad' && fail "$j: shared memory lost"
	fi
	"$CKPTENV" rm --force "$j" >/dev/null
done
pass "more shared memory objects than the hard fd limit: a clear refusal; under a soft limit, restored"
