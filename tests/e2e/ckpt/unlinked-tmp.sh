#!/bin/bash
# A job holding a /tmp file it unlinked (Python's tempfile.TemporaryFile, tmpfile(3)) restores,
# the file's content as at the checkpoint: the init reopens it by inode number
# (/tmp/.ckptenv/ino/N; the epoch kept the orphan). Before, the checkpoint succeeded and every
# restore of it failed ("fd 3 (regular file, /tmp/tmpXXXX (deleted)) cannot be restored yet"),
# after `checkpoint --stop` had already ended the job. Both ways: a new supervisor (after a
# kill -9 of the old one) and in place; the job checks the whole file every step itself.
. "$(dirname "$0")/../lib.sh"
cat >job.py <<'PY'
import tempfile, time
f = tempfile.TemporaryFile(dir="/tmp")
f.write(b"head,")
i = 0
while True:
    i += 1
    f.seek(0, 2)
    f.write(b"%d," % i)
    f.flush()
    f.seek(0)
    want = b"head," + b"".join(b"%d," % k for k in range(1, i + 1))
    if f.read() != want:
        print("BAD at", i, flush=True)
        raise SystemExit(1)
    print("ok", i, flush=True)
    time.sleep(0.02)
PY
sup_of() { "$CKPTENV" status "$1" | sed -n 's/^pid: .*(supervisor \([0-9]*\)).*/\1/p'; }
state_is() { "$CKPTENV" status "$1" | grep -Eq "state: *($2)"; }
last_ok() { "$CKPTENV" log "$1" | grep -a '^ok ' | tail -1 | cut -d' ' -f2; }
grown() { [ "$(last_ok "$1")" -gt "$2" ]; }

for way in new in-place; do
	j=u-$way
	"$CKPTENV" run --name "$j" --detach -- python3 "$T/job.py" </dev/null >/dev/null || fail "$j: run"
	poll_until 20 grown "$j" 3 || fail "$j: no progress: $("$CKPTENV" log "$j" | tail -2)"
	if [ $way = new ]; then
		"$CKPTENV" checkpoint "$j" >/dev/null 2>err.txt || fail "$j: checkpoint: $(cat err.txt)"
		at=$(last_ok "$j")
		poll_until 20 grown "$j" $((at + 5)) || fail "$j: no progress after the checkpoint"
		kill -9 "$(sup_of "$j")"
		poll_until 10 state_is "$j" died || fail "$j: survived its supervisor"
	else
		"$CKPTENV" checkpoint "$j" --stop >/dev/null 2>err.txt || fail "$j: checkpoint: $(cat err.txt)"
		poll_until 10 state_is "$j" stopped || fail "$j: not stopped"
		at=$(last_ok "$j")
	fi
	"$CKPTENV" restore "$j" --detach >/dev/null 2>err.txt || fail "$j: restore: $(cat err.txt)"
	poll_until 20 grown "$j" $((at + 10)) || fail "$j: the restored job does not go on: $("$CKPTENV" log "$j" | tail -3)"
	"$CKPTENV" log "$j" | grep -aq '^BAD' && fail "$j: $("$CKPTENV" log "$j" | grep -a '^BAD')"
	"$CKPTENV" rm --force "$j" >/dev/null
done
pass "a job holding an unlinked /tmp file restores with its content, both ways"
