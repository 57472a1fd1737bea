#!/bin/bash
# A hard open-file limit too low for the proxy's session limit (HPC nodes set 1024-4096): the
# supervisor takes the limit it can keep ((1024 - 256) / 4 = 192 under `ulimit -n 1024`), says
# so in its log, and the connect past it gets EAGAIN with its log line. Before, the proxy ran
# out of fds at about 500 connections and the job's connect got ECONNABORTED, unexplained.
. "$(dirname "$0")/../lib.sh"
cat >srv.py <<'PY'
import os, socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(512)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1])); os.rename(sys.argv[1] + ".tmp", sys.argv[1])
def echo(c):
    while True:
        b = c.recv(100)
        if not b: return
        c.sendall(b)
while True:
    c, _ = s.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()
PY
cat >job.py <<'PY'
import errno, socket, sys, time
cs = []
for i in range(300):
    try:
        cs.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10))
    except OSError as e:
        print("failed", i, errno.errorcode.get(e.errno, e.errno), flush=True); break
ok = sum(1 for c in cs if c.sendall(b"x") is None and c.recv(1) == b"x")
print("connected", len(cs), "echo", ok, flush=True)
time.sleep(600)
PY
ulimit -n 4096 # the test's own fds for the server
python3 srv.py "$T/port" </dev/null >/dev/null 2>&1 &
poll_until 20 test -s port || fail "the server did not start"
(ulimit -n 1024 && "$CKPTENV" run --name n --detach -- python3 "$T/job.py" "$(cat port)" </dev/null >/dev/null) ||
	fail "run"
poll_until 60 sh -c "'$CKPTENV' log n | grep -q '^connected'" || fail "the job did not finish: $("$CKPTENV" log n | tail -3)"
expect_eq "the job" "failed 192 EAGAIN
connected 192 echo 192" "$("$CKPTENV" log n | grep -a '^failed\|^connected')"
grep -q "the open-file limit allows 192 proxied connections, not 1024; raise the hard limit" \
	"$CKPTENV_HOME/jobs/n/log" || fail "not logged: $(tail -3 "$CKPTENV_HOME/jobs/n/log")"
# The refusal's line names the fix that applies (it named CKPTENV_NET_MAX_SESSIONS, which the
# open-file limit would have lowered again).
poll_until 20 grep -q "connect() failed with EAGAIN 1 time(s): 192 proxied connections is the limit; close some, or start the job from a shell with a higher hard open-file limit" \
	"$CKPTENV_HOME/jobs/n/log" || fail "refusal line: $(grep EAGAIN "$CKPTENV_HOME/jobs/n/log")"
"$CKPTENV" rm --force n >/dev/null
pass "a hard open-file limit lowers the connection limit, logged, and the connect past it gets EAGAIN"
