#!/bin/bash
# The network half of the consistent cut (issue 6): a job streams a counted sequence to a local
# server and reads the server's (zdtm-netseq, netseq-server.py; both check every byte).
#  1. checkpoint --stop mid-stream, restore in place (the supervisor kept the connection): both
#     streams complete, no byte lost or repeated, checked at both ends.
#  2. the job checkpointed (and resumed) mid-stream, then killed a MiB later: restored in place,
#     both streams complete exactly (the replay of what it sent since is compared and dropped).
#  3. checkpoint --stop, then the supervisor dies (a reboot): `ckptenv restore` reports the
#     connection, the restored job gets ECONNRESET on first use.
. "$(dirname "$0")/../lib.sh"
HELPER=$CK_HELPERS/zdtm-netseq
SERVER=$(dirname "$0")/netseq-server.py
[ -x "$HELPER" ] || fail "missing $HELPER"
TOTAL=$((4 << 20))
sup_of() { sed -n "s/.*supervisor $1\[\([0-9]*\)\]: starting.*/\1/p" "$CKPTENV_HOME/jobs/$1/log" | tail -1; }
state_is() { "$CKPTENV" status "$1" | grep "state: *$2" >/dev/null; }
cmd_pid() { local p; p=$("$CKPTENV" status "$1" | sed -n 's/^pid: *\([0-9]*\) .*/\1/p'); cat "/proc/$p/task/$p/children" | tr -d ' '; }
jlog() { "$CKPTENV" log "$1" | tr -d '\r'; }
recv_at_least() { jlog "$1" | awk -v n="$2" '/^netseq progress/ && $6 >= n {f = 1} END {exit !f}'; }
start_server() { # NAME -> port in $NAME.port, verdict in $NAME.res
	python3 "$SERVER" "$1.port" "$1.res" "$TOTAL" &
	poll_until 20 test -s "$1.port" || fail "$1: server did not start"
}

# 1. --stop, restore in place.
start_server a
"$CKPTENV" run --name a --detach -- "$HELPER" "$(cat a.port)" "$TOTAL" </dev/null >/dev/null
poll_until 30 recv_at_least a $((1 << 20)) || fail "a: no progress: $(jlog a | tail -3)"
sup=$(sup_of a)
"$CKPTENV" checkpoint a --stop >/dev/null 2>err.txt || fail "a: checkpoint --stop: $(cat err.txt)"
poll_until 10 state_is a stopped || fail "a: not stopped: $("$CKPTENV" status a)"
[ -e a.res ] && fail "a: the server's connection ended at --stop: $(cat a.res)"
# A restore in place that fails before anything runs (net.cut corrupt) leaves the job stopped
# in the same supervisor, its connection held: a good restore follows.
cut=$(ls -d "$CKPTENV_HOME"/jobs/a/checkpoints/[0-9]* | tail -1)/net.cut
cp "$cut" cut.good
printf '\377' | dd of="$cut" bs=1 seek=12 conv=notrunc 2>/dev/null
"$CKPTENV" restore a --detach >/dev/null 2>err.txt && fail "a: restored from a corrupt net.cut"
grep -q "net.cut" err.txt || fail "a: corrupt net.cut not named: $(cat err.txt)"
[ "$(wc -l <err.txt)" = 1 ] || fail "a: more than one line: $(cat err.txt)"
state_is a stopped || fail "a: not stopped after a failed restore: $("$CKPTENV" status a)"
expect_eq "a: supervisor after a failed restore" "$sup" "$(sup_of a)"
[ -e a.res ] && fail "a: the server's connection ended at a failed restore: $(cat a.res)"
cp cut.good "$cut"
# One that fails once launched (the restorer refuses a corrupt page; it had the job's sockets):
# the same, the connection still held.
img=$(dirname "$cut")/image/pages.img
off=$(($(stat -c %s "$img") / 2))
cp "$img" pages.good
printf '\377\377\377\377' | dd of="$img" bs=1 seek="$off" conv=notrunc 2>/dev/null
cmp -s "$img" pages.good && fail "a: pages.img unchanged"
"$CKPTENV" restore a --detach >/dev/null 2>err.txt && fail "a: restored from a corrupt pages.img"
grep -q "pages.img is corrupt" err.txt || fail "a: corrupt pages.img not named: $(cat err.txt)"
state_is a stopped || fail "a: not stopped after a refused restore: $("$CKPTENV" status a)"
expect_eq "a: supervisor after a refused restore" "$sup" "$(sup_of a)"
[ -e a.res ] && fail "a: the server's connection ended at a refused restore: $(cat a.res)"
cp pages.good "$img"
"$CKPTENV" restore a --detach >/dev/null 2>err.txt || fail "a: restore in place: $(cat err.txt)"
expect_eq "a: supervisor after restore" "$sup" "$(sup_of a)"
grep -q "connection" err.txt && fail "a: the restore reported: $(cat err.txt)"
poll_until 60 sh -c "'$CKPTENV' log a | grep -aq '^netseq \(OK\|BAD\|ECONN\|ERROR\)'" ||
	fail "a: the restored job did not finish: $(jlog a | tail -3)"
jlog a | grep -q "^netseq OK sent $TOTAL recv $TOTAL" || fail "a: job side: $(jlog a | grep -a '^netseq' | tail -2)"
# the refused one's marker is followed by its refusal
expect_eq "a: restore markers in the log" 2 "$(jlog a | grep -ac '^\[ckptenv: restored from checkpoint 1 at ')"
jlog a | grep -aq '^ckptenv: image refused: .*pages.img is corrupt' || fail "a: no refusal in the log"
poll_until 20 test -s a.res || fail "a: the server has no verdict"
expect_eq "a: server side" "OK recv $TOTAL" "$(cat a.res)"

# 2. checkpointed and resumed, then killed (as by the OOM killer) well after: the supervisor held
#    the connection when the job's socket closed, the restored job re-reads what it had read
#    since, and what it sends again is compared with what went up and dropped: exact again.
start_server b
"$CKPTENV" run --name b --detach --checkpoint-every 1h -- "$HELPER" "$(cat b.port)" "$TOTAL" </dev/null >/dev/null
poll_until 30 recv_at_least b $((1 << 20)) || fail "b: no progress: $(jlog b | tail -3)"
"$CKPTENV" checkpoint b >/dev/null 2>err.txt || fail "b: checkpoint: $(cat err.txt)"
poll_until 30 recv_at_least b $((2 << 20)) || fail "b: no progress after the checkpoint"
kill -9 "$(cmd_pid b)"
poll_until 10 state_is b stopped || fail "b: crashed job not kept: $("$CKPTENV" status b)"
[ -e b.res ] && fail "b: the server's connection ended with the job: $(cat b.res)"
"$CKPTENV" restore b --detach >/dev/null 2>err.txt || fail "b: restore: $(cat err.txt)"
grep -q "connection" err.txt && fail "b: the restore reported: $(cat err.txt)"
poll_until 60 sh -c "'$CKPTENV' log b | grep -aq '^netseq \(OK\|BAD\|ECONN\|ERROR\)'" ||
	fail "b: the restored job did not finish: $(jlog b | tail -3)"
jlog b | grep -q "^netseq OK sent $TOTAL recv $TOTAL" || fail "b: job side: $(jlog b | grep -a '^netseq' | tail -2)"
poll_until 20 test -s b.res || fail "b: the server has no verdict"
expect_eq "b: server side" "OK recv $TOTAL" "$(cat b.res)"

# 3. the supervisor dies after --stop: reported, ECONNRESET.
start_server c
"$CKPTENV" run --name c --detach -- "$HELPER" "$(cat c.port)" "$TOTAL" </dev/null >/dev/null
poll_until 30 recv_at_least c $((1 << 20)) || fail "c: no progress: $(jlog c | tail -3)"
"$CKPTENV" checkpoint c --stop >/dev/null 2>err.txt || fail "c: checkpoint --stop: $(cat err.txt)"
poll_until 10 state_is c stopped || fail "c: not stopped"
csup=$(sup_of c)
kill -9 "$csup"
poll_until 10 sh -c "! kill -0 $csup" || fail "c: supervisor still alive"
poll_until 20 test -s c.res || fail "c: the server's connection outlived the supervisor"
grep -Eq '^(RESET|SHORT) recv [0-9]+$' c.res || fail "c: server side: $(cat c.res)"
"$CKPTENV" restore c --detach >/dev/null 2>err.txt || fail "c: restore: $(cat err.txt)"
grep -q "ckptenv: restore c: connection to 127.0.0.1:$(cat c.port) (fd [0-9]*) reset: its supervisor ended" err.txt ||
	fail "c: not reported: $(cat err.txt)"
poll_until 30 sh -c "'$CKPTENV' log c | grep -aq '^netseq \(OK\|BAD\|ECONN\|ERROR\)'" || fail "c: no end"
jlog c | grep -q '^netseq ECONNRESET' || fail "c: job side: $(jlog c | grep -a '^netseq' | tail -2)"
pass "restore in place keeps a live stream exact (after --stop and after a kill); a lost supervisor's connection is reported and reset"
