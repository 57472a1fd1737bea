#!/bin/bash
# The job's state stays its user's alone:
#  - a state directory another user made first (a shared /scratch path) is refused in one line,
#    before anything is written there: it gave that user the job's output and sockets;
#  - one writable by others is refused too;
#  - root may reach a user's job (status), but not start a supervisor for it (restore): that
#    ran the user's program as root and left root's files in the user's directory;
#  - an unwritable HOME names the directory and CKPTENV_HOME;
#  - a /dev/fuse the user cannot open is named, with the fix (it said only "cannot mount"), and
#    a first run so refused leaves no job behind.
. "$(dirname "$0")/../lib.sh"

use_ckuser reach so
S=$T/shared && mkdir -p "$S" && chmod 1777 "$S"
# Another user (nobody) made the job's directory first.
setpriv --reuid 65534 --regid 65534 --clear-groups sh -c "mkdir -p $S/ck/jobs/j && chmod -R 0777 $S/ck"
CK_USER_ENV=(CKPTENV_HOME="$S/ck")
rc=0
err=$(as_user run --name j -- sh -c 'echo SECRET' 2>&1 >/dev/null) || rc=$?
expect_eq "run in another user's directory" 1 "$rc"
expect_eq "lines" 1 "$(echo "$err" | wc -l)"
grep -q "$S/ck belongs to uid 65534; a job's state is its user's alone" <<<"$err" || fail "said: $err"
[ -z "$(ls -A "$S/ck/jobs/j")" ] || fail "something was written there: $(ls -A "$S/ck/jobs/j")"
# Writable by others, though the user's own.
setpriv --reuid ckuser --regid ckuser --init-groups sh -c "mkdir -p $S/mine && chmod 0777 $S/mine"
CK_USER_ENV=(CKPTENV_HOME="$S/mine")
rc=0
err=$(as_user run --name j -- true 2>&1) || rc=$?
expect_eq "run in a directory writable by others" 1 "$rc"
grep -q "$S/mine is writable by others (mode 777); chmod go-w it" <<<"$err" || fail "said: $err"
# A state directory of root's, writable by all (1777): refused before anything is made in it
# (run made jobs/NAME there first), and list refuses it too (it listed it).
CK_USER_ENV=(CKPTENV_HOME="$S")
rc=0
err=$(as_user run --name j -- true 2>&1) || rc=$?
expect_eq "run in root's 1777 directory" 1 "$rc"
grep -q "$S belongs to uid 0; a job's state is its user's alone" <<<"$err" || fail "said: $err"
[ ! -e "$S/jobs" ] || fail "run made $S/jobs"
rc=0
err=$(as_user list 2>&1) || rc=$?
expect_eq "list of root's 1777 directory" 1 "$rc"
grep -q "$S belongs to uid 0" <<<"$err" || fail "list said: $err"
CK_USER_ENV=()

# Root and a user's ended job: status works, restore does not start a root supervisor.
as_user run --name so --detach -- sleep 100000 >/dev/null || fail "run as ckuser"
as_user checkpoint so --stop >/dev/null 2>&1 || fail "checkpoint --stop as ckuser"
CKPTENV_HOME=$U/home "$CKPTENV" status so | grep -q 'state: *stopped' || fail "root cannot see the job"
as_user rm --force so >/dev/null
as_user run --name so --detach -- sleep 100000 >/dev/null || fail "second run"
as_user checkpoint so >/dev/null 2>&1 || fail "checkpoint as ckuser"
kill -9 "$(as_user status so | sed -n 's/^pid: .*(supervisor \([0-9]*\)).*/\1/p')"
poll_until 10 sh -c "CKPTENV_HOME=$U/home '$CKPTENV' status so | grep -q 'state: *died'" || fail "not died"
rc=0
err=$(CKPTENV_HOME=$U/home "$CKPTENV" restore so --detach 2>&1 </dev/null) || rc=$?
expect_eq "root's restore of a user's job" 1 "$rc"
grep -q "belongs to uid $(id -u ckuser): a supervisor started by uid 0 would run the job as uid 0" <<<"$err" ||
	fail "said: $err"
# Nor does root's run make a job there: it ran the command as root and left a directory the
# user could not remove (found by a non-root testing helper); with or without a --name.
for args in "--name rootx" ""; do
	rc=0
	err=$(CKPTENV_HOME=$U/home "$CKPTENV" run $args -- true 2>&1 </dev/null) || rc=$?
	expect_eq "root's run $args in a user's state directory" 1 "$rc"
	grep -q "$U/home belongs to uid $(id -u ckuser); a job's state is its user's alone" <<<"$err" ||
		fail "said: $err"
done
[ -z "$(find "$U/home" -uid 0)" ] || fail "root left files: $(find "$U/home" -uid 0 | head -3)"
as_user restore so --detach >/dev/null 2>&1 || fail "the user's own restore"
as_user rm --force so >/dev/null

# A HOME the user cannot write, and no CKPTENV_HOME.
mkdir -p "$T/rohome" && chmod 0555 "$T/rohome"
rc=0
err=$(setpriv --reuid ckuser --regid ckuser --init-groups env -i PATH=/usr/bin:/bin HOME="$T/rohome" \
	"$CKPTENV" run --name h -- true 2>&1 </dev/null) || rc=$?
expect_eq "run with an unwritable HOME" 1 "$rc"
grep -q "cannot create $T/rohome/.local/state/ckptenv/jobs: Permission denied; set CKPTENV_HOME" <<<"$err" ||
	fail "said: $err"

# /dev/fuse not open to the user (as on this machine before use_ckuser opened it up), in a private
# mount namespace so that the other scenarios keep theirs: the line names /dev/fuse and the fix.
mknod -m 0600 "$T/fuse" c 10 229
rc=0
err=$(unshare -m sh -c "mount --bind '$T/fuse' /dev/fuse && setpriv --reuid ckuser --regid ckuser \
	--init-groups env -i PATH=/usr/bin:/bin HOME='$U' CKPTENV_HOME='$U/home' '$CKPTENV' run --name f -- true" \
	2>&1 </dev/null) || rc=$?
expect_eq "run without /dev/fuse" 1 "$rc"
grep -q "cannot open /dev/fuse (Permission denied); it must be readable and writable by you" <<<"$err" ||
	fail "said: $err"
# That first run leaves no job behind (it showed as 'never started' until an rm); a job that
# ran before keeps its state, /tmp included.
[ ! -e "$U/home/jobs/f" ] || fail "the refused first run left a job: $(as_user list 2>&1)"
as_user run --name g -- sh -c 'echo kept > /tmp/g' || fail "first run of g"
rc=0
unshare -m sh -c "mount --bind '$T/fuse' /dev/fuse && setpriv --reuid ckuser --regid ckuser \
	--init-groups env -i PATH=/usr/bin:/bin HOME='$U' CKPTENV_HOME='$U/home' '$CKPTENV' run --name g -- true" \
	>/dev/null 2>&1 </dev/null || rc=$?
expect_eq "second run of g without /dev/fuse" 1 "$rc"
expect_eq "g's /tmp after the refused run" kept "$(as_user run --name g -- cat /tmp/g)"
as_user rm g >/dev/null
pass "state directories of another user or writable by others refused; /dev/fuse named; root does not restore a user's job"
