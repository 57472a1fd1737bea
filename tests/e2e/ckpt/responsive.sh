#!/usr/bin/env bash
# The supervisor stays responsive while it checkpoints (issue 5): the checkpoint runs on its own
# thread, the main loop keeps serving. The job prints a numbered line every 20 ms on its
# terminal (a tmux client attached) and holds a proxied connection to a server on the host.
# CKPTENV_TEST_CKPT_HOLD keeps the checkpoint at its frozen point while a file exists, so the
# test looks at the supervisor during the freeze without guessing how long a dump takes. While
# frozen: `status` answers, a second checkpoint waits (it runs after the first), a new attach is
# drawn the screen of the frozen moment and the attached client shows the same last line (the
# output printed just before the freeze reached it), and the 512 KiB the server sends are all
# read by the supervisor (nothing left in its socket's receive queue nor the server's send
# queue), and a snapshot waits. Only then the hold ends: the checkpoint completes, the snapshot
# follows, and the job goes on printing.
source "$(dirname "$0")/../lib.sh"
command -v tmux >/dev/null || skip "tmux missing"
command -v ss >/dev/null || skip "ss (iproute2) missing"
PY=/usr/bin/python3
[ -x $PY ] || skip "python3 missing"
TM="tmux -L ck-resp-$$ -f /dev/null"
BG=()
trap 'rc=$?; set +e; rm -f "$T/hold"; $TM kill-server 2>/dev/null; kill "${BG[@]}" 2>/dev/null; _cleanup $rc' EXIT
CK=$CKPTENV
SIZE=$((512 << 10))

cat >"$T/server.py" <<'EOF'
import os, socket, sys, time
d, size = sys.argv[1], int(sys.argv[2])
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
with open(d + "/port.tmp", "w") as f:
    f.write(str(ls.getsockname()[1]))
os.rename(d + "/port.tmp", d + "/port")
c, _ = ls.accept()
while not os.path.exists(d + "/go"):
    time.sleep(0.05)
c.sendall(b"d" * size)
open(d + "/sent", "w").close()
time.sleep(600)
EOF
cat >"$T/job.py" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
n = 0
while True:
    n += 1
    print("line %d" % n, flush=True)
    time.sleep(0.02)
EOF
$PY "$T/server.py" "$T" $SIZE </dev/null >/dev/null 2>"$T/server.err" &
BG+=($!)
poll_until 20 test -s "$T/port" || fail "test server did not start: $(cat "$T/server.err")"
PORT=$(cat "$T/port")

last_line() { pane "$1" | grep -o '^line [0-9]*' | tail -1; }
export CKPTENV_TEST_CKPT_HOLD=$T/hold CKPTENV_PROGRESS_MS=0 # the tmux server passes it on
$TM new-session -d -s s -x 80 -y 24 "$CK run --name r -- $PY $T/job.py $PORT; echo RC=\$?; sleep 120"
poll_until 30 has s:0 '^line 5' || fail "job output: $(pane s:0)"
poll_until 20 sh -c "'$CK' status r | grep -q ' established .*:$PORT '" || fail "no proxied session: $("$CK" status r)"

touch "$T/hold"
"$CK" checkpoint r >"$T/ck.out" 2>"$T/ck.err" </dev/null &
ck=$!
BG+=($ck)
poll_until 60 grep -q 'test hold' "$CKPTENV_HOME/jobs/r/log" ||
	fail "the checkpoint did not reach its hold: $(cat "$T/ck.err"; tail -3 "$CKPTENV_HOME/jobs/r/log")"
frozen() { [ -e "$T/hold" ] && kill -0 "$ck" 2>/dev/null; }

# The control socket: status (with the session), and a second checkpoint that waits (it used
# to be refused, and a user's checkpoint failed whenever a periodic one was running).
st=$(timeout 30 "$CK" status r </dev/null) || fail "status did not answer during the checkpoint"
grep -q '^state: *running' <<<"$st" || fail "status during the checkpoint: $st"
grep -Eq "^  [0-9]+ +detached +127.0.0.1:$PORT " <<<"$st" || fail "status lacks the supervisor's answer (the detached session): $st"
"$CK" checkpoint r </dev/null >"$T/ck2.out" 2>"$T/ck2.err" &
ck2=$!
BG+=($ck2)
# Another that is interrupted while it waits is never taken.
"$CK" checkpoint r </dev/null >/dev/null 2>&1 &
ck3=$!
sleep 0.5
kill -TERM $ck3 # (a background job of a script ignores SIGINT)
wait $ck3 && fail "the interrupted checkpoint succeeded"
# A snapshot (the store's epochs) waits for the checkpoint's end instead.
"$CK" snapshot r </dev/null >"$T/snap.out" 2>&1 &
snap=$!
BG+=($snap)
frozen || fail "the checkpoint ended before the checks (ordering lost)"

# The proxy: the server's bytes are all read by the supervisor while the job is frozen.
touch "$T/go"
poll_until 60 test -e "$T/sent" || fail "the server's send blocked during the checkpoint"
queues_empty() {
	local q
	q=$(ss -tnH state established "( sport = :$PORT or dport = :$PORT )" | awk '{print $1 + $2}' | sort -u)
	[ "$q" = 0 ]
}
poll_until 60 queues_empty || fail "bytes left unread during the checkpoint: $(ss -tn "( sport = :$PORT or dport = :$PORT )")"
frozen || fail "the checkpoint ended before the proxy check (ordering lost)"

# The terminal: a new attach gets the frozen moment's screen; the attached client has it too.
$TM new-window -t s: -n w2 "$CK attach r; sleep 120"
poll_until 30 has s:w2 '^line ' || fail "attach during the checkpoint not drawn: $(pane s:w2)"
want=$(last_line s:w2)
poll_until 30 sh -c "$TM capture-pane -p -t s:0 | grep -qx '$want'" ||
	fail "the attached client lacks '$want', printed before the freeze: $(pane s:0 | tail -3)"
frozen || fail "the checkpoint ended before the terminal checks (ordering lost)"
n_frozen=${want#line }
kill -0 "$snap" 2>/dev/null || fail "a snapshot ran during the checkpoint: $(cat "$T/snap.out")"
kill -0 "$ck2" 2>/dev/null || fail "a second checkpoint ended during the first: $(cat "$T/ck2.err")"

rm "$T/hold"
wait "$ck" || fail "checkpoint failed: $(cat "$T/ck.err")"
BG=("${BG[@]/$ck}")
wait "$snap" || fail "the snapshot that waited failed: $(cat "$T/snap.out")"
BG=("${BG[@]/$snap}")
grep -Eq '^[0-9]+$' "$T/ck.out" || fail "checkpoint printed no id: $(cat "$T/ck.out")"
wait "$ck2" || fail "the second checkpoint, which waited, failed: $(cat "$T/ck2.err")"
BG=("${BG[@]/$ck2}")
[ "$(cat "$T/ck2.out")" -gt "$(cat "$T/ck.out")" ] || fail "second checkpoint id: $(cat "$T/ck2.out") after $(cat "$T/ck.out")"
ids=$("$CK" checkpoints r | awk 'NR > 1 {print $1}' | tr '\n' ' ')
[ "$ids" = "$(cat "$T/ck.out") $(cat "$T/ck2.out") " ] || fail "checkpoints: $ids (the interrupted one was taken?)"
resumed() { local l; l=$(last_line s:0); [ "${l#line }" -gt "$n_frozen" ]; }
poll_until 30 resumed || fail "the job did not go on after the checkpoint: $(pane s:0 | tail -2)"
pass "status, a second checkpoint that waits, a new attach, the client's output and the proxy served while frozen"
