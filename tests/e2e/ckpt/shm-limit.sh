#!/bin/bash
# A job with more shared memory objects than the hard open-file limit lets a restore hold at
# once (1100 MAP_SHARED|MAP_ANONYMOUS mappings; the restorer keeps one fd per object):
#  - under `ulimit -n 1024` (hard) the checkpoint is refused in one line and the job runs on
#    (it used to succeed, and every restore then failed);
#  - checkpointed under a soft limit alone (the usual 1024 of a high hard one), then restored
#    by a new supervisor under a hard 1024 (a reboot into other limits): the restore is refused
#    in one line that says what to raise, before anything runs (it failed half way, "Too many
#    open files", and the job was left "exited 127");
#  - under a soft limit alone it checkpoints and restores in place.
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
oks() { "$CKPTENV" log "$1" | grep -ac '^ok'; }
oks_above() { [ "$(oks "$1")" -gt "$2" ]; }
sup() { "$CKPTENV" status "$1" | sed -n 's/.*(supervisor \([0-9]*\)).*/\1/p'; }
start() { # NAME hard|soft
	(
		if [ "$2" = hard ]; then ulimit -n 1024; else ulimit -Sn 1024; fi
		"$CKPTENV" run --name "$1" --detach -- python3 "$T/job.py" </dev/null >/dev/null
	) || fail "$1: run"
	poll_until 20 oks_above "$1" 2 || fail "$1: no progress: $("$CKPTENV" log "$1" | tail -2)"
}

start m-hard hard
rc=0
"$CKPTENV" checkpoint m-hard >/dev/null 2>err.txt || rc=$?
lift=$(( (0x$(sed -n 's/^CapEff:\t//p' /proc/self/status) >> 24) & 1 ))
if [ "$lift" = 0 ]; then
	expect_eq "m-hard: checkpoint" 1 "$rc"
	grep -q "^ckptenv: checkpoint m-hard: the job has [0-9]* fds open, up to fd [0-9]*, and 11[0-9][0-9] mapped files or shared memory objects: a restore would need about [0-9]* fds at once, over the open-file limit 1024" err.txt ||
		fail "m-hard: said: $(cat err.txt)"
	n=$(oks m-hard)
	poll_until 20 oks_above m-hard "$n" || fail "m-hard: the job did not run on"
else # the supervisor may lift the limit: so may its restorer
	expect_eq "m-hard: checkpoint ($(cat err.txt))" 0 "$rc"
fi
"$CKPTENV" rm --force m-hard >/dev/null

start m-reboot soft
"$CKPTENV" checkpoint m-reboot >/dev/null 2>err.txt || fail "m-reboot: checkpoint: $(cat err.txt)"
kill -9 "$(sup m-reboot)"
poll_until 10 sh -c "'$CKPTENV' status m-reboot | grep -Eq 'state: *died'" || fail "m-reboot: not died"
rc=0
(ulimit -n 1024 && "$CKPTENV" restore m-reboot --detach) >/dev/null 2>err.txt || rc=$?
[ "$lift" = 1 ] || expect_eq "m-reboot: restore under a hard 1024" 1 "$rc"
if [ "$rc" != 0 ]; then # refused by restore before anything runs, the job left as it was
	grep -q "^ckptenv: restore m-reboot: checkpoint 1 refused: the job has [0-9]* fds open, up to fd [0-9]*, and 11[0-9][0-9] mapped files or shared memory objects: a restore would need about [0-9]* fds at once, over the open-file limit 1024; restore from a shell with a higher hard limit (ulimit -Hn)$" err.txt ||
		fail "m-reboot: unclear: $(cat err.txt)"
	"$CKPTENV" status m-reboot | grep -Eq 'state: *died' || fail "m-reboot: the refused restore changed the job: $("$CKPTENV" status m-reboot)"
fi
"$CKPTENV" rm --force m-reboot >/dev/null

start m-soft soft
"$CKPTENV" checkpoint m-soft --stop >/dev/null 2>err.txt || fail "m-soft: checkpoint: $(cat err.txt)"
"$CKPTENV" restore m-soft --detach >/dev/null 2>err.txt || fail "m-soft: restore: $(cat err.txt)"
n=$(oks m-soft)
poll_until 20 oks_above m-soft $((n + 2)) || fail "m-soft: the restored job does not go on"
"$CKPTENV" log m-soft | grep -aq '^bad' && fail "m-soft: shared memory lost"
"$CKPTENV" rm --force m-soft >/dev/null
pass "more shared memory objects than the hard fd limit: refused at checkpoint, or at a restore in one line; under a soft limit, restored"
