#!/bin/bash
# Identity of files across a restore (zdtm-touch): a file outside /tmp that the job has open,
# touched after the checkpoint, refuses the restore with one line naming it and nothing runs;
# --allow-changed with a path the image does not have is a usage error; --allow-changed PATH
# restores, and the restored process finds its memory intact. A MAP_SHARED mapping of a file
# of the job's /tmp comes back as a shared mapping of the rolled-back file (a write through
# the mapping shows in a pread of the fd), as root and as an ordinary user (user namespace:
# there the vfs's stored mtime differed from the kernel's at checkpoint time). A mapped file
# outside /tmp that is gone: refused, and with --allow-changed the restorer's failure is
# reported by `restore` itself.
. "$(dirname "$0")/../lib.sh"
TOUCH=$CK_HELPERS/zdtm-touch
[ -x "$TOUCH" ] || fail "missing helper $TOUCH"
[ "$(id -u)" = 0 ] || skip "needs root (and a test user for the non-root part)"

job_pid() { "$CKPTENV" status "$1" | sed -n 's/^pid: *\([0-9]*\) .*/\1/p'; }
cmd_pid() { local j; j=$(job_pid "$1"); tr -d ' ' <"/proc/$j/task/$j/children"; }
logged() { "$CKPTENV" log "$1" | grep -aq "$2"; }
# Ended, or stopped by `checkpoint --stop` (its supervisor kept for a restore in place).
exited() { "$CKPTENV" status "$1" | grep -Eq "state: *(exited|died|stopped)"; }

# 1. A scratch file outside /tmp, open in the job, touched after the checkpoint. The checkpoint's
# progress line is shown at once (CKPTENV_PROGRESS_MS=0) rather than after a second (a restore's
# is not checked: 64 MiB are often in before the first look).
mkdir -p "$T/scratch"
echo data >"$T/scratch/f"
"$CKPTENV" run --name a --detach -- "$TOUCH" 64 "$T/scratch/f" </dev/null >/dev/null
poll_until 10 logged a "^ready 64" || fail "job a did not get ready: $("$CKPTENV" log a)"
CKPTENV_PROGRESS_MS=0 "$CKPTENV" checkpoint a --stop >/dev/null 2>err.txt ||
	fail "checkpoint a: $(cat err.txt)"
grep -q "^ckptenv: job a: checkpoint: .* of .*MiB" err.txt || fail "no progress line: $(cat err.txt)"
poll_until 10 exited a || fail "--stop left job a running"
# mtime one second later, so the change is seen whatever the file system's granularity
touch -d "@$(($(stat -c %Y "$T/scratch/f") + 1))" "$T/scratch/f"
"$CKPTENV" restore a --detach >out.txt 2>err.txt && fail "restore after the file changed"
[ "$(wc -l <err.txt)" = 1 ] || fail "not one line: $(cat err.txt)"
grep -q "$T/scratch/f changed since the checkpoint" err.txt || fail "does not name the file: $(cat err.txt)"
grep -q -- "--allow-changed $T/scratch/f" err.txt || fail "does not say what to do: $(cat err.txt)"
exited a || fail "something ran after the refusal: $("$CKPTENV" status a)"
echo "refused: $(cat err.txt)"
rc=0
"$CKPTENV" restore a --detach --allow-changed "$T/scratch/f" --allow-changed "$T/nothing" \
	>out.txt 2>err.txt || rc=$?
[ "$rc" = 2 ] || fail "unknown --allow-changed path: exit $rc: $(cat err.txt)"
grep -q "$T/nothing: not a file" err.txt || fail "unknown path: $(cat err.txt)"
# A relative path names the same file.
(cd "$T/scratch" && "$CKPTENV" restore a --detach --allow-changed ./f \
	>/dev/null 2>"$T/err.txt") || fail "restore --allow-changed: $(cat err.txt)"
poll_until 20 sh -c "[ -n \"\$(cat /proc/$(job_pid a)/task/$(job_pid a)/children 2>/dev/null)\" ]" ||
	fail "no restored process"
p=$(cmd_pid a)
poll_until 20 sh -c "! ls -l /proc/$p/fd | grep -q pages.img" || fail "restore of a did not finish"
kill -USR1 "$p"
poll_until 10 logged a "^verify" || fail "restored job a does not answer: $("$CKPTENV" log a)"
logged a "^verify ok 64" || fail "restored job a: $("$CKPTENV" log a | grep -a verify)"
[ "$(readlink "/proc/$p/fd/3")" = "$T/scratch/f" ] || fail "fd 3 of a: $(readlink "/proc/$p/fd/3")"
"$CKPTENV" rm --force a >/dev/null

# 3 (first, as root). A MAP_SHARED mapping of a file outside /tmp that is gone at restore time:
# refused; with --allow-changed the restorer itself cannot map it, and `restore` reports that
# with the restorer's own words instead of returning as if all went well.
echo data >"$T/scratch/g"
"$CKPTENV" run --name d --detach -- "$TOUCH" 1 "$T/scratch/g" shared </dev/null >/dev/null
poll_until 10 logged d "^ready 1" || fail "job d did not get ready: $("$CKPTENV" log d)"
"$CKPTENV" checkpoint d --stop >/dev/null 2>err.txt || fail "checkpoint d: $(cat err.txt)"
poll_until 10 exited d || fail "--stop left job d running"
rm "$T/scratch/g"
"$CKPTENV" restore d --detach >/dev/null 2>err.txt && fail "restore with a mapped file gone"
grep -q "$T/scratch/g, which the job had open or mapped, is gone" err.txt || fail "gone: $(cat err.txt)"
"$CKPTENV" restore d --detach --allow-changed "$T/scratch/g" >/dev/null 2>err.txt &&
	fail "restore without the mapped file claimed success"
[ "$(wc -l <err.txt)" = 1 ] || fail "not one line: $(cat err.txt)"
grep -q "could not be rebuilt: cannot open $T/scratch/g" err.txt || fail "restorer failure: $(cat err.txt)"
echo "reported: $(cat err.txt)"
"$CKPTENV" rm --force d >/dev/null

# 2. A MAP_SHARED mapping of a /tmp file, across a kill -9 of the supervisor and a restore.
shared_round() { # RUNNER NAME: RUNNER runs ckptenv (as root or as the test user)
	local run=$1 n=$2 s p j
	$run run --name "$n" --detach -- "$3" 2 /tmp/shared.dat shared >/dev/null
	poll_until 10 sh -c "$run log $n | grep -aq '^ready 2'" || fail "$n did not get ready"
	$run checkpoint "$n" >/dev/null 2>err.txt || fail "checkpoint $n: $(cat err.txt)"
	s=$($run status "$n" | sed -n 's/^pid: .*(supervisor \([0-9]*\)).*/\1/p')
	kill -9 "$s"
	poll_until 10 sh -c "$run status $n | grep -q 'state: *died'" || fail "$n still up"
	$run restore "$n" --detach >/dev/null 2>err.txt || fail "restore $n: $(cat err.txt)"
	j=$($run status "$n" | sed -n 's/^pid: *\([0-9]*\) .*/\1/p')
	poll_until 20 sh -c "[ -n \"\$(cat /proc/$j/task/$j/children 2>/dev/null)\" ]" ||
		fail "$n: no restored process: $($run log "$n" | tail -2)"
	p=$(tr -d ' ' <"/proc/$j/task/$j/children")
	poll_until 20 sh -c "! ls -l /proc/$p/fd 2>/dev/null | grep -q pages.img" ||
		fail "restore of $n did not finish"
	grep -q "rw-s .*/tmp/shared.dat" "/proc/$p/maps" ||
		fail "$n: no shared mapping of /tmp/shared.dat: $($run log "$n" | tail -2)"
	kill -USR1 "$p"
	poll_until 10 sh -c "$run log $n | grep -aq '^verify'" || fail "$n does not answer"
	$run log "$n" | grep -aq "^verify ok 2" || fail "$n: $($run log "$n" | grep -a verify)"
	$run rm --force "$n" >/dev/null
}
shared_round "$CKPTENV" b "$TOUCH"

id ckuser >/dev/null 2>&1 || useradd -m ckuser >/dev/null 2>&1 || fail "cannot create user ckuser"
chmod 0666 /dev/fuse
U="$T/ckuser"
mkdir -p "$U" && chown ckuser: "$U"
cp "$TOUCH" "$U/" && cp "$CKPTENV" "$U/ckptenv"
cat >"$U/as-user" <<EOF
#!/bin/sh
exec setpriv --reuid ckuser --regid ckuser --init-groups env -i PATH=/usr/bin:/bin HOME="$U" \
	CKPTENV_HOME="$U/home" "$U/ckptenv" "\$@" </dev/null
EOF
chmod 755 "$U/as-user"
trap 'rc=$?; set +e; "$U/as-user" rm --force c >/dev/null 2>&1 || true; _cleanup $rc' EXIT
shared_round "$U/as-user" c "$U/zdtm-touch"
pass "changed file refused with one line, --allow-changed restores; MAP_SHARED /tmp file restored as root and as a user"
