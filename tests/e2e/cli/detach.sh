#!/bin/bash
# --detach returns at once and the job keeps running; a killed CLI leaves the supervisor and
# the job running; a job started without a name gets one.
. "$(dirname "$0")/../lib.sh"

t0=$(date +%s%N)
name=$("$CKPTENV" run --detach --name det -- sh -c "touch $T/d1; while [ ! -e $T/go ]; do sleep 0.05; done; echo out; echo kept > /tmp/k")
expect_eq "detach prints the name" "det" "$name"
[ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 5000 ] || fail "--detach did not return at once"
poll_until 20 test -e "$T/d1" || fail "detached job did not start"
"$CKPTENV" list | grep -Eq '^det +running' || fail "detached job not running"
touch "$T/go"
poll_until 20 sh -c "\"$CKPTENV\" list | grep -Eq '^det +exited 0'" || fail "detached job did not end"
"$CKPTENV" log det | grep -qx out || fail "detached output not in the output log"
expect_eq "detached job's /tmp persisted" "kept" "$("$CKPTENV" run --name det -- cat /tmp/k)"

# The supervisor survives the CLI being killed -9, and so does the job.
rm -f "$T/go"
"$CKPTENV" run --name cli9 -- sh -c "touch $T/c1; while [ ! -e $T/go ]; do sleep 0.05; done; echo 5 > $T/c2; exit 5" </dev/null >/dev/null &
cli=$!
poll_until 20 test -e "$T/c1" || fail "job did not start"
kill -9 "$cli"; wait "$cli" 2>/dev/null || true
"$CKPTENV" list | grep -Eq '^cli9 +running' || fail "job gone with the CLI"
touch "$T/go"
poll_until 20 test -e "$T/c2" || fail "job did not continue after the CLI died"
poll_until 20 sh -c "\"$CKPTENV\" list | grep -Eq '^cli9 +exited 5'" || fail "supervisor did not record the end"

# No name: a short random one, announced on stderr.
"$CKPTENV" run -- true 2>"$T/err" || fail "unnamed run failed"
grep -Eq '^ckptenv: job [a-z0-9]{6}$' "$T/err" || fail "no job name announced: $(cat "$T/err")"
n=$(sed -n 's/^ckptenv: job //p' "$T/err")
[ -d "$CKPTENV_HOME/jobs/$n" ] || fail "no state dir for $n"
[ "$(stat -c %a "$CKPTENV_HOME/jobs/$n")" = 700 ] || fail "job dir not 0700"
[ "$(stat -c %a "$CKPTENV_HOME/jobs/$n/job")" = 600 ] || fail "job file not 0600"
pass "detach and CLI death"
