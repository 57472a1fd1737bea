#!/bin/bash
# A job holding a /tmp file it unlinked (Python's tempfile.TemporaryFile, tmpfile(3)) restores,
# the file's content as at the checkpoint, also one it maps MAP_SHARED (the restorer reopens
# that by inode too; it refused it): the init reopens it by inode number
# (/tmp/.ckptenv/ino/N; the epoch kept the orphan). Before, the checkpoint succeeded and every
# restore of it failed ("fd 3 (regular file, /tmp/tmpXXXX (deleted)) cannot be restored yet"),
# after `checkpoint --stop` had already ended the job. Both ways: a new supervisor (after a
# kill -9 of the old one) and in place; the job checks the whole file every step itself.
. "$(dirname "$0")/../lib.sh"
cat >job.py <<'PY'
import mmap, os, tempfile, time
f = tempfile.TemporaryFile(dir="/tmp")
f.write(b"head,")
g = tempfile.TemporaryFile(dir="/tmp")  # unlinked and mapped MAP_SHARED
g.truncate(4096)
m = mmap.mmap(g.fileno(), 4096)
i = 0
while True:
    if int.from_bytes(m[0:8], "little") != i or \
       int.from_bytes(os.pread(g.fileno(), 8, 0), "little") != i:
        print("BAD mapping at", i, flush=True)
        raise SystemExit(1)
    i += 1
    m[0:8] = i.to_bytes(8, "little")
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
# The same outside /tmp: nothing can open that file again, so the checkpoint is refused in one
# line (before, it "succeeded" and no restore ever accepted it).
cat >outside.py <<PY
import mmap, os, time
fd = os.open("$T/gone", os.O_RDWR | os.O_CREAT, 0o600)
os.ftruncate(fd, 4096)
m = mmap.mmap(fd, 4096)
os.unlink("$T/gone")
print("mapped", flush=True)
while True:
    time.sleep(0.1)
PY
"$CKPTENV" run --name o --detach -- python3 "$T/outside.py" </dev/null >/dev/null || fail "o: run"
poll_until 20 sh -c "'$CKPTENV' log o | grep -q mapped" || fail "o: did not start"
rc=0
"$CKPTENV" checkpoint o >/dev/null 2>err.txt || rc=$?
expect_eq "o: checkpoint of a shared mapping of a deleted file" 1 "$rc"
grep -q "maps the deleted file $T/gone (deleted) shared (at 0x[0-9a-f]*): a restore could not map it again, so it cannot be checkpointed yet" err.txt ||
	fail "o: unclear: $(cat err.txt)"
[ -z "$("$CKPTENV" checkpoints o | awk 'NR > 1')" ] || fail "o: a checkpoint was kept"
"$CKPTENV" rm --force o >/dev/null
pass "a job holding an unlinked /tmp file (also mapped) restores with its content, both ways; one mapped outside /tmp is refused"
