#!/bin/bash
# The issue's scenario: an interactive python3 in tmux with an open TCP connection to a local
# server (line echo, every received line logged) and a SQLite database in its /tmp.
#  - checkpoint, more traffic, checkpoint --stop, restore in place: the same connection carries
#    on (the server has one connection and every line once);
#  - checkpoint, a line sent and its echo read, the python killed (SIGKILL, as by the OOM
#    killer), restore in place: python is back before that line; typing it again sends nothing
#    twice (the replay is compared and dropped) and the echo is read again, then traffic goes on;
#  - the supervisor killed too (a reboot), restore: reported on the terminal, python's socket
#    raises ConnectionResetError; its variable and the rows in /tmp are the checkpoint's.
. "$(dirname "$0")/../lib.sh"
command -v tmux >/dev/null || skip "tmux missing"
command -v python3 >/dev/null || skip "python3 missing"
TM="tmux -L ck-pytcp-$$ -f /dev/null"
trap 'rc=$?; set +e; $TM kill-server 2>/dev/null; [ -n "${srv:-}" ] && kill "$srv"; (exit $rc); _cleanup' EXIT
pane() { $TM capture-pane -p -S -300 -t "$1"; }
pane_has() { pane "$1" | grep -q -- "$2"; }
E="env CKPTENV_HOME=$CKPTENV_HOME TERM=xterm"
LOG=$CKPTENV_HOME/jobs/py/log
sup_pid() { sed -n 's/.*supervisor py\[\([0-9]*\)\]: starting.*/\1/p' "$LOG" | tail -1; }
py_pid() { local p; p=$("$CKPTENV" status py | sed -n 's/^pid: *\([0-9]*\) .*/\1/p'); cat "/proc/$p/task/$p/children" | tr -d ' '; }
state_is() { "$CKPTENV" status py | grep "state: *$1" >/dev/null; }
# say SESSION TAG CODE: run CODE in python, which prints TAG=result; type again until it
# answers (keys typed while the restorer still runs can be lost). Prints the answer.
say() {
	for try in 1 2 3 4 5 6 7 8 9 10; do
		$TM send-keys -t "$1" "print('$2', $3, sep='=')" Enter
		poll_until 2 sh -c "$TM capture-pane -p -S -300 -t $1 | grep -q '^$2='" && break
	done
	pane "$1" | grep "^$2=" | head -1
}
cat >server.py <<'PY'
import socket, sys, threading
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(4)
open("port.tmp", "w").write(str(ls.getsockname()[1]))
import os; os.rename("port.tmp", "port")
def serve(c, k):
    f = c.makefile("rb")
    try:
        for line in f:
            with open("lines", "a") as o:
                o.write("%d %s" % (k, line.decode()))
            c.sendall(b"echo " + line)
    except OSError:
        pass
    with open("lines", "a") as o:
        o.write("%d end\n" % k)
k = 0
while True:
    c, _ = ls.accept(); k += 1
    threading.Thread(target=serve, args=(c, k), daemon=True).start()
PY
python3 server.py </dev/null >/dev/null 2>&1 &
srv=$!
poll_until 10 test -s port || fail "server did not start"
PORT=$(cat port)
lines() { tr '\n' ',' <lines; }

$TM new-session -d -s a -x 150 -y 50 "$E $CKPTENV run --name py --checkpoint-every 1h -- python3 -q -i; echo run-rc=\$?; sleep 60"
poll_until 10 pane_has a '>>>' || fail "no python prompt: $(pane a)"
$TM send-keys -t a "import socket, sqlite3; s = socket.create_connection(('127.0.0.1', $PORT)); db = sqlite3.connect('/tmp/t.db'); db.execute('create table t(x)'); db.execute('insert into t values (1)'); db.commit(); n = 1; s.sendall(b'l1\n'); print('one', s.recv(100))" Enter
poll_until 10 pane_has a "^one b'echo l1" || fail "python: $(pane a)"
"$CKPTENV" checkpoint py >/dev/null 2>err.txt || fail "checkpoint 1: $(cat err.txt)"
$TM send-keys -t a "db.execute('insert into t values (2)'); db.commit(); n = 2; s.sendall(b'l2\n'); print('two', s.recv(100))" Enter
poll_until 10 pane_has a "^two b'echo l2" || fail "python: $(pane a)"
"$CKPTENV" checkpoint py --stop >/dev/null 2>err.txt || fail "checkpoint 2 --stop: $(cat err.txt)"

# Supervisor alive, after --stop: the same connection goes on.
sup=$(sup_pid)
"$CKPTENV" restore py --detach >/dev/null 2>err.txt || fail "restore in place: $(cat err.txt)"
[ -s err.txt ] && fail "restore in place reported: $(cat err.txt)"
expect_eq "supervisor" "$sup" "$(sup_pid)"
expect_eq "python after restore in place" "A=2=1,2" "$(say a A "n, db.execute('select group_concat(x) from t').fetchone()[0]")"
expect_eq "after restore in place" "B=b'echo l3\\n'" "$(say a B "s.sendall(b'l3\n') or s.recv(100)")"
expect_eq "server lines" "1 l1,1 l2,1 l3," "$(lines)"

# Killed after a checkpoint, supervisor alive: the line sent since is not sent twice.
"$CKPTENV" checkpoint py >/dev/null 2>err.txt || fail "checkpoint 3: $(cat err.txt)"
expect_eq "before the kill" "C=b'echo l4\\n'" "$(say a C "s.sendall(b'l4\n') or s.recv(100)")"
kill -9 "$(py_pid)"
poll_until 10 state_is stopped || fail "killed python not kept: $("$CKPTENV" status py)"
"$CKPTENV" restore py --detach >/dev/null 2>err.txt || fail "restore after kill: $(cat err.txt)"
[ -s err.txt ] && fail "restore after the kill reported: $(cat err.txt)"
pane_has a '^D=' && fail "tag D seen early"
expect_eq "the same line again" "D=b'echo l4\\n'" "$(say a D "s.sendall(b'l4\n') or s.recv(100)")"
expect_eq "and on" "E=b'echo l5\\n'" "$(say a E "s.sendall(b'l5\n') or s.recv(100)")"
expect_eq "server lines after the kill" "1 l1,1 l2,1 l3,1 l4,1 l5," "$(lines)"

# The supervisor dies too (a reboot): the restore reports the connection; python gets a reset.
s=$(sup_pid)
kill -9 "$s" "$(py_pid)"
poll_until 10 sh -c "! kill -0 $s" || fail "supervisor $s survived SIGKILL"
poll_until 10 sh -c "grep -q '1 end' lines" || fail "the server's connection outlived the supervisor"
$TM new-session -d -s b -x 150 -y 50 "$E $CKPTENV restore py 3 2>restore.err; echo restore-rc=\$?; sleep 60"
poll_until 10 grep -q "ckptenv: restore py: connection to 127.0.0.1:$PORT (fd [0-9]*) reset: its supervisor ended" restore.err ||
	fail "not reported: $(cat restore.err) $(pane b)"
expect_eq "python from checkpoint 3" "F=2=1,2" "$(say b F "n, db.execute('select group_concat(x) from t').fetchone()[0]")"
$TM send-keys -t b "try: s.recv(100)
except Exception as e: print('G', type(e).__name__, sep='=')
" Enter
poll_until 10 pane_has b '^G=' || fail "no answer: $(pane b)"
pane_has b '^G=ConnectionResetError' || fail "python's socket: $(pane b | grep '^G=')"
$TM send-keys -t b "exit(5)" Enter
poll_until 10 pane_has b "restore-rc=5" || fail "restore did not exit with python's status: $(pane b)"
pass "python3 with a TCP connection and SQLite in /tmp: kept across --stop and a kill, reported after a reboot"
