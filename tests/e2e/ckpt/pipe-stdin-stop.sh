#!/bin/bash
# A job on pipes (`producer | ckptenv run -- consumer`) stopped with `checkpoint --stop` and
# restored in place loses no stdin: neither what sat unread in its stdin pipe at the stop (the
# supervisor moves it back into its queue before the process ends) nor what the producer wrote
# while it was stopped (held, not written into the dead job's pipe). Before, both were dropped
# without a word. The job reads fixed-size records slowly and echoes their numbers.
. "$(dirname "$0")/../lib.sh"
cat >job.py <<'PY'
import os, sys, time
while True:
    rec = b""
    while len(rec) < 6:
        b = os.read(0, 6 - len(rec))
        if not b:
            print("EOF", flush=True)
            sys.exit(0)
        rec += b
    print("got", int(rec), flush=True)
    time.sleep(0.004)
PY
mkfifo in.fifo
"$CKPTENV" run --name p -- python3 "$T/job.py" <in.fifo >out.txt 2>err.txt &
RUN=$!
exec 9>in.fifo
seq -f '%05g' 1 500 >&9 # 3000 bytes: in the pipe at once, read 6 bytes at a time
got() { grep -c '^got' out.txt; }
poll_until 20 sh -c "[ \$(grep -c '^got' out.txt) -ge 50 ]" || fail "no progress: $(cat err.txt)"
"$CKPTENV" checkpoint p --stop >/dev/null 2>ck.txt || fail "checkpoint --stop: $(cat ck.txt)"
[ "$(got)" -lt 450 ] || fail "the job had read nearly everything: nothing left to keep"
seq -f '%05g' 501 600 >&9 # while it is stopped
grep -q "bytes of stdin the job had not read are kept" "$CKPTENV_HOME/jobs/p/log" ||
	fail "nothing unread was kept: $(grep -a stdin "$CKPTENV_HOME/jobs/p/log")"
"$CKPTENV" restore p --detach >/dev/null 2>ck.txt || fail "restore: $(cat ck.txt)"
seq -f '%05g' 601 700 >&9
exec 9>&-
rc=0
wait $RUN || rc=$?
expect_eq "run's exit status" 0 "$rc"
{ seq -f 'got %g' 1 700; echo EOF; } >want.txt
cmp -s want.txt out.txt || fail "stdin lost or repeated: $(diff want.txt out.txt | head -5)"

# The producer already finished (EOF sent, the supervisor's end of the pipe closed): what the
# job had not read yet still reaches the restored job, then the EOF.
"$CKPTENV" run --name q -- python3 "$T/job.py" < <(seq -f '%05g' 1 500) >out2.txt 2>err2.txt &
RUN=$!
poll_until 20 sh -c "[ \$(grep -c '^got' out2.txt) -ge 50 ]" || fail "q: no progress: $(cat err2.txt)"
"$CKPTENV" checkpoint q --stop >/dev/null 2>ck.txt || fail "q: checkpoint --stop: $(cat ck.txt)"
[ "$(grep -c '^got' out2.txt)" -lt 450 ] || fail "q: the job had read nearly everything"
"$CKPTENV" restore q --detach >/dev/null 2>ck.txt || fail "q: restore: $(cat ck.txt)"
rc=0
wait $RUN || rc=$?
expect_eq "q: run's exit status" 0 "$rc"
{ seq -f 'got %g' 1 500; echo EOF; } >want2.txt
cmp -s want2.txt out2.txt || fail "q: stdin lost after an EOF: $(diff want2.txt out2.txt | head -5)"
pass "stdin unread at the stop and written while stopped reaches the restored job, also after an EOF"
