#!/bin/bash
# A slow reader of `run`'s output gets all of it. The job's stderr (600 KB) goes to a reader
# that starts after 3 s; the job ends long before. The supervisor waited 2 s at most after the
# job's end and then dropped the rest, with exit status 0 and no message (found by a testing
# helper). It waits as the job's own pipe would have. The same for stdout.
. "$(dirname "$0")/../lib.sh"
seq 1 100000 >want.txt
for fd in 2 1; do
	rm -f got.txt
	if [ $fd = 2 ]; then
		"$CKPTENV" run --name sr -- sh -c 'seq 1 100000 >&2' </dev/null 2>&1 >/dev/null |
			(sleep 3; cat >got.txt)
	else
		"$CKPTENV" run --name sr -- sh -c 'seq 1 100000' </dev/null | (sleep 3; cat >got.txt)
	fi
	expect_eq "run's status (fd $fd)" 0 "${PIPESTATUS[0]}"
	cmp want.txt got.txt || fail "fd $fd: $(wc -c <got.txt) of 588895 bytes"
done
"$CKPTENV" rm sr >/dev/null
pass "a slow reader gets all of stdout and stderr"
