#!/bin/bash
# A restored job is under the job's filter too (the init installs it before it forks the
# restorer, so the restored process inherits it; its listener is the new supervisor's): its
# connects after a restore are proxied by the new supervisor. zdtm-connect connects when asked.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
H=$CK_HELPERS/zdtm-connect
[ -x "$H" ] || fail "missing helper $H"
[ -x $PY ] || skip "python3 missing"
cp "$(dirname "$0")"/npserver.py "$T/"
BG=()
trap 'rc=$?; set +e; kill "${BG[@]}" 2>/dev/null; _cleanup $rc' EXIT
$PY "$T/npserver.py" > "$T/port" 2>/dev/null </dev/null &
BG+=($!)
poll_until 20 test -s "$T/port" || fail "test server did not start"
PORT=$(cat "$T/port")

sup_pid() { sed -n 's/.*supervisor j\[\([0-9]*\)\]: job started.*/\1/p' "$CKPTENV_HOME/jobs/j/log" | tail -1; }
ask() { # ask the job to connect; expect it proxied
	rm -f "$T/ans"
	echo "$PORT" > "$T/req"
	poll_until 20 test -e "$T/ans" || fail "$1: no answer from the job"
	expect_eq "$1: echo through the proxy, real peer, filter on" "ok $PORT 2" "$(cat "$T/ans")"
	"$CKPTENV" status j | grep -Eq "^network: .* \(limit [0-9]+; $2 made," ||
		fail "$1: status does not count $2 proxied connection(s): $("$CKPTENV" status j)"
}

"$CKPTENV" run --name j --detach -- "$H" "$T/req" "$T/ans" </dev/null >/dev/null
ask "before the checkpoint" 1
"$CKPTENV" checkpoint j >/dev/null 2>"$T/ckpt.txt" || fail "checkpoint: $(cat "$T/ckpt.txt")"
s=$(sup_pid)
kill -9 "$s"
poll_until 10 sh -c "'$CKPTENV' status j | grep -q 'state: *died'" || fail "job still up"
"$CKPTENV" restore j --detach >/dev/null 2>"$T/err.txt" || fail "restore: $(cat "$T/err.txt")"
ask "after the restore" 1
pass "a restored job's connects go through the new supervisor's proxy"
