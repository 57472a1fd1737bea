#!/bin/bash
# The job's /tmp is its own (not the host's, both ways) and persists across runs of one name;
# the command gets the caller's umask (not the supervisor's 0077), so its files are made as
# they would be outside.
. "$(dirname "$0")/../lib.sh"

tag=ck-e2e-$$-$RANDOM
echo host > "/tmp/$tag.host"
out=$("$CKPTENV" run --name p1 -- sh -c "test ! -e /tmp/$tag.host && echo job > /tmp/$tag.job && cat /tmp/$tag.job")
expect_eq "job sees its own /tmp" "job" "$out"
[ ! -e "/tmp/$tag.job" ] || { rm -f "/tmp/$tag.job" "/tmp/$tag.host"; fail "job's file leaked into the host /tmp"; }
rm -f "/tmp/$tag.host"

# The /tmp the job sees is the vfs mount, and nothing of it shows on the host.
fstype=$("$CKPTENV" run --name p1 -- sh -c 'grep " /tmp " /proc/self/mountinfo | sed "s/.* - //" | cut -d" " -f1')
expect_eq "job /tmp fs type" "fuse.ckptenv" "$fstype"
! grep -q fuse.ckptenv /proc/self/mountinfo || fail "a ckptenv mount is visible on the host"

# Persistence: a second run of the same name finds /tmp as it was; another name does not.
out=$("$CKPTENV" run --name p1 -- cat "/tmp/$tag.job")
expect_eq "second run sees the first run's file" "job" "$out"
"$CKPTENV" run --name p2 -- test ! -e "/tmp/$tag.job" || fail "another job sees p1's /tmp"

# Directory trees persist too.
"$CKPTENV" run --name p1 -- sh -c 'mkdir -p /tmp/d/e && echo deep > /tmp/d/e/f'
out=$("$CKPTENV" run --name p1 -- cat /tmp/d/e/f)
expect_eq "tree persisted" "deep" "$out"
# The caller's umask, as if the command ran directly.
out=$(umask 022; "$CKPTENV" run --name p1 -- sh -c 'umask; : > /tmp/um; mkdir /tmp/umd; stat -c %a /tmp/um /tmp/umd' | tr '\n' ' ')
expect_eq "umask 022 in the job, modes of a new file and directory" "0022 644 755 " "$out"
out=$(umask 027; "$CKPTENV" run --name p3 -- sh -c umask)
expect_eq "umask 027 in the job" "0027" "$out"
# A relative CKPTENV_HOME is taken from where the command runs, the store included (it went
# to /REL/jobs/N/store, outside the state directory, where rm did not reach it).
rel=ck-rel-$$-$RANDOM
(cd "$T" && CKPTENV_HOME=$rel "$CKPTENV" run --name r1 -- sh -c 'echo rel > /tmp/f') || fail "run with a relative CKPTENV_HOME failed"
[ -d "$T/$rel/jobs/r1/store" ] || fail "the store is not in the relative state directory"
[ ! -e "/$rel" ] || { rm -rf "/${rel:?}"; fail "a relative CKPTENV_HOME wrote to /$rel"; }
out=$(CKPTENV_HOME=$T/$rel "$CKPTENV" run --name r1 -- cat /tmp/f)
expect_eq "the relative home's job /tmp, seen by its absolute path" "rel" "$out"
pass "private and persistent /tmp, the caller's umask, a relative CKPTENV_HOME"
