#!/bin/bash
# An interactive python3 in tmux with a SQLite database in its /tmp (the issue's scenario,
# without the TCP connection that comes with the proxy): checkpointed twice, the second time
# with --stop, restored in place (supervisor alive: the same terminal, redrawn), changed again,
# then killed with its supervisor and restored from each checkpoint (supervisor dead). Each
# time python's own variable and the rows it reads from /tmp are those of the checkpoint, and
# the database seen from outside (sqlite3 on /proc/PID/root/tmp) agrees.
. "$(dirname "$0")/../lib.sh"
command -v tmux >/dev/null || skip "tmux missing"
command -v python3 >/dev/null || skip "python3 missing"
command -v sqlite3 >/dev/null || skip "sqlite3 missing"
TM="tmux -L ck-py-$$ -f /dev/null"
trap 'rc=$?; set +e; $TM kill-server 2>/dev/null; _cleanup $rc' EXIT
pane() { $TM capture-pane -p -S -200 -t "$1"; }
pane_has() { pane "$1" | grep -q -- "$2"; }
E="env CKPTENV_HOME=$CKPTENV_HOME TERM=xterm"
LOG=$CKPTENV_HOME/jobs/py/log
sup_pid() { sed -n 's/.*supervisor py\[\([0-9]*\)\]: starting.*/\1/p' "$LOG" | tail -1; }
py_pid() { local p; p=$("$CKPTENV" status py | sed -n 's/^pid: *\([0-9]*\) .*/\1/p'); cat "/proc/$p/task/$p/children" | tr -d ' '; }
# ask SESSION TAG: have python print its n and the rows of /tmp/t.db after TAG, typing again
# until it answers (keys typed while the restorer still runs can be lost).
ask() {
	for try in 1 2 3 4 5 6 7 8 9 10; do
		$TM send-keys -t "$1" "print('$2', n, db.execute('select group_concat(x) from t').fetchone()[0], sep='=')" Enter
		poll_until 1 sh -c "$TM capture-pane -p -S -200 -t $1 | grep -q '^$2='" && break
	done
	pane "$1" | grep "^$2=" | head -1
}
# (A copy: sqlite3 resolves the /proc/PID/root magic link to the host's /tmp. Python is idle
# at its prompt with everything committed.)
outside() {
	cp "/proc/$(py_pid)/root/tmp/t.db" outside.db && sqlite3 -readonly outside.db 'select group_concat(x) from t'
}
kill_all() {
	local s; s=$(sup_pid)
	kill -9 "$s"
	poll_until 10 sh -c "! kill -0 $s" || fail "supervisor $s survived SIGKILL"
	poll_until 10 sh -c "'$CKPTENV' status py | grep -q 'state: *died'" || fail "job still up"
}

$TM new-session -d -s a -x 120 -y 40 "$E $CKPTENV run --name py -- python3 -q -i; echo run-rc=\$?; sleep 60"
poll_until 10 pane_has a '>>>' || fail "no python prompt: $(pane a)"
$TM send-keys -t a "import sqlite3; db = sqlite3.connect('/tmp/t.db'); db.execute('create table t(x)'); db.execute('insert into t values (1)'); db.commit(); n = 1; print('one')" Enter
poll_until 10 pane_has a '^one' || fail "python: $(pane a)"
"$CKPTENV" checkpoint py >/dev/null 2>err.txt || fail "checkpoint 1: $(cat err.txt)"
$TM send-keys -t a "db.execute('insert into t values (2)'); db.commit(); n = 2; print('two')" Enter
poll_until 10 pane_has a '^two' || fail "python: $(pane a)"
"$CKPTENV" checkpoint py --stop >/dev/null 2>err.txt || fail "checkpoint 2 --stop: $(cat err.txt)"

# Supervisor alive: restore in place, on the same terminal.
sup=$(sup_pid)
"$CKPTENV" restore py --detach >/dev/null 2>err.txt || fail "restore in place: $(cat err.txt)"
expect_eq "supervisor" "$sup" "$(sup_pid)"
expect_eq "python after restore in place" "A=2=1,2" "$(ask a A)"
expect_eq "t.db from outside" "1,2" "$(outside)"
$TM send-keys -t a "db.execute('insert into t values (3)'); db.commit(); n = 3; print('three')" Enter
poll_until 10 pane_has a '^three' || fail "python after restore: $(pane a)"
expect_eq "t.db from outside after a change" "1,2,3" "$(outside)"

# Supervisor dead (a reboot): each checkpoint from a new supervisor, rolled back.
kill_all
$TM new-session -d -s b -x 120 -y 40 "$E $CKPTENV restore py 2; echo restore-rc=\$?; sleep 60"
poll_until 10 sh -c "'$CKPTENV' status py | grep -q 'state: *running'" || fail "restore 2: $(pane b)"
expect_eq "python restored from checkpoint 2" "B=2=1,2" "$(ask b B)"
expect_eq "t.db of checkpoint 2" "1,2" "$(outside)"
kill_all
$TM new-session -d -s c -x 120 -y 40 "$E $CKPTENV restore py 1; echo restore-rc=\$?; sleep 60"
poll_until 10 sh -c "'$CKPTENV' status py | grep -q 'state: *running'" || fail "restore 1: $(pane c)"
expect_eq "python restored from checkpoint 1" "C=1=1" "$(ask c C)"
expect_eq "t.db of checkpoint 1" "1" "$(outside)"
$TM send-keys -t c "exit(5)" Enter
poll_until 10 pane_has c "restore-rc=5" || fail "restore did not exit with python's status: $(pane c)"
pass "python3 + SQLite in /tmp: restore in place and after a reboot, from each checkpoint"
