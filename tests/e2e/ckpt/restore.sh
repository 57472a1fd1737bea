#!/bin/bash
# checkpoint / kill -9 the supervisor / restore of a single-process job (zdtm-loop): the counter
# goes on from the checkpoint, not from 0, at the old pid; /tmp is rolled back to the
# checkpoint's epoch; the same checkpoint restores twice; a truncated image is refused with one
# line naming the file and nothing runs; restore refuses while the job runs.
. "$(dirname "$0")/../lib.sh"
LOOP=$CK_HELPERS/zdtm-loop
[ -x "$LOOP" ] || fail "missing helper $LOOP"

sup_pid() { sed -n 's/.*supervisor j\[\([0-9]*\)\]: job started.*/\1/p' "$CKPTENV_HOME/jobs/j/log" | tail -1; }
job_pid() { "$CKPTENV" status j | sed -n 's/^pid: *\([0-9]*\) .*/\1/p'; }
cmd_pid() { cat "/proc/$(job_pid)/task/$(job_pid)/children" | tr -d ' '; }
counts() { "$CKPTENV" log j | grep -a '^count ' | awk '{print $2}'; }
# Where the counter went back to (one line per restore): the value after the checkpoint's.
jumps() { counts | awk 'NR > 1 && $1 != p + 1 {print $1} {p = $1}'; }
jumps_n() { [ "$(jumps | wc -l)" -ge "$1" ]; }
last_count() { counts | tail -1; }
count_above() { [ "$(last_count)" -gt "$1" ]; }
kill_all() { # as a reboot would: the supervisor with SIGKILL takes the job with it
	local s; s=$(sup_pid)
	kill -9 "$s"
	poll_until 10 sh -c "! kill -0 $s" || fail "supervisor $s survived SIGKILL"
	poll_until 10 sh -c "'$CKPTENV' status j | grep -q 'state: *died'" || fail "job still up"
}

"$CKPTENV" run --name j --detach -- "$LOOP" </dev/null >/dev/null
poll_until 10 count_above 20 || fail "the counter does not run"
"$CKPTENV" restore j 2>err.txt && fail "restore of a running job was accepted"
grep -q "running" err.txt || fail "restore of a running job: $(cat err.txt)"

before=$(last_count) # printed before the freeze: the checkpoint is after it
id=$("$CKPTENV" checkpoint j 2>ckpt.txt) || fail "checkpoint: $(cat ckpt.txt)"
[ "$id" = 1 ] || fail "first checkpoint id is '$id'"
grep -q "frozen [0-9.]* ms" ckpt.txt || fail "no frozen time: $(cat ckpt.txt)"
# The job runs on after the checkpoint, so a count read now may already come from after it:
# it only serves to see the job go on.
at=$(last_count)
root=/proc/$(cmd_pid)/root/tmp
[ -e "$root/zdtm-loop.dat" ] || fail "no /tmp/zdtm-loop.dat in the job"
echo after >"$root/after-ckpt"
"$CKPTENV" checkpoints j | grep -q "^1 " || fail "checkpoints: $("$CKPTENV" checkpoints j)"
poll_until 10 count_above $((at + 50)) || fail "the job does not go on after the checkpoint"
kill_all

for round in 1 2; do
	"$CKPTENV" restore j --detach >/dev/null 2>err.txt || fail "restore $round: $(cat err.txt)"
	poll_until 10 jumps_n $round || { tail -5 "$CKPTENV_HOME/jobs/j/log" >&2; "$CKPTENV" log j | grep -av "^count" >&2; }
	jumps_n $round || fail "restore $round: no output after the restore: $(counts | tail -3 | tr "\n" " ") jumps $(jumps)"
	to=$(jumps | sort -u)
	[ "$(echo "$to" | wc -l)" = 1 ] || fail "restore $round: went on from different values: $to"
	[ "$to" -gt "$before" ] ||
		fail "restore $round: went on from $to, before the checkpoint (after $before)"
	pid=$(cmd_pid)
	grep -q "^NSpid:.*[[:space:]]2$" "/proc/$pid/status" || fail "restored process is not pid 2"
	[ -e "/proc/$pid/root/tmp/zdtm-loop.dat" ] || fail "restore $round: /tmp lost zdtm-loop.dat"
	[ ! -e "/proc/$pid/root/tmp/after-ckpt" ] || fail "restore $round: /tmp not rolled back"
	readlink "/proc/$pid/fd/3" | grep -q "/tmp/zdtm-loop.dat" || fail "fd 3 not restored"
	poll_until 10 count_above $((at + 30)) || fail "restore $round: the counter stopped"
	# The log says where each restored run begins (it keeps the old run's output after the
	# checkpoint too).
	expect_eq "restore markers in the log" "$round" \
		"$("$CKPTENV" log j | grep -ac '^\[ckptenv: restored from checkpoint 1 at ')"
	kill_all
done
# The counter after each restore starts right after the checkpoint's value, never at 0 again.
[ "$(counts | grep -c '^0$')" = 1 ] || fail "the counter restarted from 0"

# A truncated image is refused, naming the file, and nothing runs.
"$CKPTENV" restore j --detach >/dev/null 2>/dev/null || fail "third restore"
poll_until 10 count_above $((at + 10)) || fail "third restore: no counter"
id2=$("$CKPTENV" checkpoint j --stop 2>ckpt.txt) || fail "checkpoint --stop: $(cat ckpt.txt)"
[ "$id2" = 2 ] || fail "second checkpoint id is '$id2'"
# --stop ends the job; its supervisor stays for a restore in place (restore-in-place.sh).
poll_until 10 sh -c "'$CKPTENV' status j | grep -q 'state: *stopped'" || fail "--stop left the job"
pid=$(cmd_pid 2>/dev/null || true)
[ -z "$pid" ] || fail "the job's process $pid is still there after --stop"
img=$CKPTENV_HOME/jobs/j/checkpoints/2/image/pages.img
truncate -s $(($(stat -c %s "$img") / 2)) "$img"
"$CKPTENV" restore j 2 >out.txt 2>err.txt && fail "a truncated image was restored"
[ "$(wc -l <err.txt)" = 1 ] || fail "not one line: $(cat err.txt)"
grep -q "pages.img" err.txt || fail "error does not name the file: $(cat err.txt)"
echo "refused: $(cat err.txt)"
"$CKPTENV" status j | grep -q "state: *stopped" || fail "something ran: $("$CKPTENV" status j)"
# A corrupt manifest: refused, naming it.
printf 'X' | dd of="$CKPTENV_HOME/jobs/j/checkpoints/1/manifest" bs=1 seek=20 conv=notrunc 2>/dev/null
"$CKPTENV" restore j 1 >out.txt 2>err.txt && fail "a corrupt manifest was accepted"
grep -q "checkpoints/1/manifest: truncated or corrupt" err.txt || fail "manifest: $(cat err.txt)"
"$CKPTENV" checkpoints j | grep -q "^1 " && fail "a corrupt checkpoint is listed"
# A checkpoint's /tmp, as 'snapshots' lists it (ckpt-N), starts a fresh run of the job; an
# unknown one is refused in one line and nothing runs.
"$CKPTENV" run --name j3 --detach -- sh -c "echo y > /tmp/y; exec '$LOOP'" </dev/null >/dev/null
poll_until 10 sh -c "'$CKPTENV' log j3 | grep -aq '^count 5'" || fail "j3 does not count"
"$CKPTENV" checkpoint j3 >/dev/null 2>err.txt || fail "j3 checkpoint: $(cat err.txt)"
"$CKPTENV" snapshots j3 | grep -q "^ckpt-1 " || fail "ckpt-1 not listed: $("$CKPTENV" snapshots j3)"
p3=$("$CKPTENV" status j3 | sed -n 's/^pid: *\([0-9]*\) .*/\1/p')
echo after >"/proc/$p3/root/tmp/after"
s3=$("$CKPTENV" status j3 | sed -n 's/.*(supervisor \([0-9]*\)).*/\1/p')
kill -9 "$s3"
poll_until 10 sh -c "'$CKPTENV' status j3 | grep -q 'state: *died'" || fail "j3 still up"
"$CKPTENV" run --name j3 --from-snapshot ckpt-9 -- true >/dev/null 2>err.txt &&
	fail "ran from an unknown ckpt-9"
expect_eq "ckpt-9 refused" "ckptenv: run j3: no snapshot ckpt-9; see 'ckptenv snapshots j3'" "$(cat err.txt)"
out=$("$CKPTENV" run --name j3 --from-snapshot ckpt-1 -- sh -c 'cat /tmp/y; ls /tmp' 2>err.txt) ||
	fail "run from ckpt-1: $(cat err.txt)"
grep -qx y <<<"$out" || fail "ckpt-1's /tmp/y missing: $out"
grep -qx after <<<"$out" && fail "a file written after the checkpoint is in ckpt-1's /tmp: $out"
# A checkpoint carries the job's command: after another `run` of the name (here `true`), a
# restore brings back the checkpointed command, and list/status say so.
"$CKPTENV" run --name jr --detach -- "$LOOP" </dev/null >/dev/null
"$CKPTENV" checkpoint jr >/dev/null 2>err.txt || fail "checkpoint jr: $(cat err.txt)"
s=$("$CKPTENV" status jr | sed -n 's/^pid: .*(supervisor \([0-9]*\))/\1/p')
kill -9 "$s"
poll_until 10 sh -c "'$CKPTENV' status jr | grep -q 'state: *died'" || fail "jr still up"
"$CKPTENV" run --name jr -- true || fail "run jr -- true"
"$CKPTENV" restore jr 1 --detach >/dev/null 2>err.txt || fail "restore jr: $(cat err.txt)"
"$CKPTENV" status jr | grep -q "^command: *$LOOP\$" ||
	fail "the restored job's command: $("$CKPTENV" status jr | grep command)"
"$CKPTENV" rm --force jr
pass "checkpoint, kill, restore twice, rollback, truncated image and corrupt manifest refused, a fresh run from ckpt-1, the command restored"
