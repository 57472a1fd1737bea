#!/bin/bash
# The same as an ordinary user: a user namespace, an unprivileged FUSE mount.
. "$(dirname "$0")/../lib.sh"

use_ckuser reach nr

tag=ck-nr-$$
out=$(as_user run --name nr -- sh -c "id -u; echo mine > /tmp/$tag; cat /tmp/$tag")
expect_eq "job runs as ckuser with its /tmp" "$(id -u ckuser)
mine" "$out"
[ ! -e "/tmp/$tag" ] || { rm -f "/tmp/$tag"; fail "user job wrote the host /tmp"; }
expect_eq "persistence" "mine" "$(as_user run --name nr -- cat /tmp/$tag)"
rc=0; as_user run --name nr -- sh -c 'exit 3' || rc=$?
expect_eq "exit status" 3 "$rc"
rc=0; as_user run --name nr -- sh -c 'kill -9 $$' || rc=$?
expect_eq "killed status" 137 "$rc"
[ "$(stat -c %U "$U/home/jobs/nr/job")" = ckuser ] || fail "state not owned by ckuser"

as_user run --name nr --detach -- sh -c "echo v1 > /tmp/v; touch $U/r; while [ ! -e $U/go ]; do sleep 0.05; done; echo v2 > /tmp/v" >/dev/null
poll_until 20 test -e "$U/r" || fail "detached user job did not start"
id1=$(as_user snapshot nr 2>/dev/null) || fail "snapshot as ckuser failed"
touch "$U/go"
poll_until 20 sh -c "setpriv --reuid ckuser --regid ckuser --init-groups env CKPTENV_HOME=$U/home $CKPTENV list | grep -Eq '^nr +exited 0'" || fail "job did not end"
expect_eq "rollback as ckuser" "v1" "$(as_user run --name nr --from-snapshot "$id1" -- cat /tmp/v)"
! grep -q fuse.ckptenv /proc/self/mountinfo || fail "mount left on the host"
pass "non-root user"
