#!/bin/bash
# More files in use than the supervisor may have fds (a tarball, a git clone, node_modules):
# under `ulimit -n 1024` a job writes 1500 files, and the next run reads them all. Before, the
# vfs kept each cached inode's layer files open: past the limit every open in the job failed
# with EMFILE (the job held 3 fds) and the commit at the job's end failed with "Too many open
# files", losing all of the run's /tmp while `run` exited 0. Found by a testing helper.
. "$(dirname "$0")/../lib.sh"
out=$(ulimit -n 1024 && "$CKPTENV" run --name mf -- bash -c 'mkdir /tmp/d && cd /tmp/d &&
	for i in $(seq 1500); do head -c 70000 /dev/zero | tr "\0" x > f$i || exit 1; done;
	ls | wc -l' </dev/null 2>err.txt) || fail "the writing run: $(cat err.txt)"
expect_eq "files written" 1500 "$out"
[ ! -s err.txt ] || fail "the writing run said: $(cat err.txt)"
out=$(ulimit -n 1024 && "$CKPTENV" run --name mf -- bash -c 'n=0; for f in /tmp/d/*; do
	[ "$(wc -c < $f)" = 70000 ] && n=$((n + 1)); done; echo $n' </dev/null 2>err.txt) ||
	fail "the reading run: $(cat err.txt)"
expect_eq "files read back whole" 1500 "$out"
"$CKPTENV" rm mf >/dev/null
pass "1500 files written and read under ulimit -n 1024, all kept"
