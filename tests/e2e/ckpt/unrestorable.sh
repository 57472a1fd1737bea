#!/bin/bash
# What no restore could rebuild is refused by the checkpoint, in one line, and the job runs on:
# a memfd, a file outside /tmp deleted while open, a working directory deleted (outside /tmp
# and inside it), a unix stream socket connected to a server outside the job, a pty the job
# opened itself (script, expect, pty.openpty). Before, `checkpoint --stop` succeeded (ending the job), `checkpoints` listed
# the checkpoint as good, and every restore failed: the job was lost.
. "$(dirname "$0")/../lib.sh"
state_is() { "$CKPTENV" status "$1" | grep -Eq "state: *($2)"; }
mkdir -p "$T/out"
n=0
check() { # check NAME PYTHON-SETUP WANT
	n=$((n + 1))
	"$CKPTENV" run --name "$1" --detach -- python3 -c "$2
import time
open('$T/out/ready-$1', 'w').close()
time.sleep(60)" </dev/null >/dev/null || fail "$1: run"
	poll_until 20 test -e "$T/out/ready-$1" || fail "$1: the job did not start: $("$CKPTENV" log "$1" | tail -3)"
	rc=0
	"$CKPTENV" checkpoint "$1" --stop >/dev/null 2>err.txt || rc=$?
	expect_eq "$1: checkpoint --stop exit status" 1 "$rc"
	expect_eq "$1: lines" 1 "$(wc -l <err.txt)"
	grep -q "$3" err.txt || fail "$1: not said: $(cat err.txt)"
	state_is "$1" running || fail "$1: the job did not run on: $("$CKPTENV" status "$1" | grep state)"
	expect_eq "$1: checkpoints" "" "$("$CKPTENV" checkpoints "$1" | tail -n +2)"
	"$CKPTENV" rm --force "$1" >/dev/null
}
check memfd 'import os; fd = os.memfd_create("scratch")' \
	"fd 3 is a memfd (/memfd:scratch (deleted)); a restore cannot make it again yet"
check unlinked "import os; f = open('$T/out/gone', 'w+'); os.unlink('$T/out/gone')" \
	"fd 3 is $T/out/gone, a regular file deleted while open; only files of the job's /tmp are kept"
check cwd-out "import os; os.mkdir('$T/out/wd'); os.chdir('$T/out/wd'); os.rmdir('$T/out/wd')" \
	"the job's working directory $T/out/wd was deleted; a restore could not enter it"
check cwd-tmp "import os; os.mkdir('/tmp/wd'); os.chdir('/tmp/wd'); os.rmdir('/tmp/wd')" \
	"the job's working directory /tmp/wd was deleted"
python3 -c "
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind('$T/out/srv.sock'); s.listen(1)
c, _ = s.accept(); time.sleep(120)" </dev/null >/dev/null 2>&1 &
poll_until 20 test -S out/srv.sock || fail "the unix server did not start"
check unix "import socket; s = socket.socket(socket.AF_UNIX); s.connect('$T/out/srv.sock')" \
	"fd 3 is a unix socket connected outside the job (socket:\[[0-9]*\]); a restore cannot connect it again"
check pty "import os; m, s = os.openpty()" \
	"fd 3 is the terminal /dev/ptmx, not the job's own; a restore cannot open it again"
pass "a memfd, a deleted file outside /tmp, a deleted cwd, a unix socket to outside and a pty of the job's own are refused at checkpoint time; the job runs on"
