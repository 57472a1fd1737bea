#!/bin/bash
# Every bad input: exactly one line "ckptenv: ..." on stderr and a non-zero exit (2 for usage).
. "$(dirname "$0")/../lib.sh"

expect_err() { # expect_err EXIT PATTERN ARGS...
	local want=$1 pat=$2 rc=0; shift 2
	"$CKPTENV" "$@" </dev/null >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" -ne 0 ] || fail "'$*' succeeded"
	[ "$want" = any ] || expect_eq "exit of '$*'" "$want" "$rc"
	expect_eq "stderr lines of '$*'" 1 "$(wc -l <"$T/err")"
	grep -Eq "^ckptenv: $pat" "$T/err" || fail "'$*' said: $(cat "$T/err")"
}
expect_err 2 "run a/b: invalid job name" run --name a/b -- true
expect_err 2 "run \.hidden: invalid job name" run --name .hidden -- true
expect_err 2 "run x y: invalid job name" run --name "x y" -- true
# A leading '-' read as an option in every later command; control characters of a name were
# printed raw (a second line, or an escape sequence for the terminal).
expect_err 2 "run -lead: invalid job name; .* not starting with '.' or '-'" run --name -lead -- true
expect_err 2 'run x\\x0ay: invalid job name' run --name $'x\ny' -- true
expect_err 2 'status \\x1b\[2Jz: invalid job name' status $'\e[2Jz'
expect_err 2 "run $(printf 'a%.0s' $(seq 65)): invalid" run --name "$(printf 'a%.0s' $(seq 65))" -- true
expect_err 2 "checkpoint: option '--stop' given twice" checkpoint x --stop --stop
expect_err 2 "run: option '--name' given twice" run -n a --name b -- true # b won, silently
# The option named is the bad one ("status -xyz" named 'status'; "--force=yes" was unknown).
expect_err 2 "status: unknown option '-x'" status -xyz
expect_err 2 "rm: option '--force' takes no value" rm --force=yes x
expect_err 2 "run: option '--log-size' given twice" run --log-size 1M --log-size 2M -- true
expect_err 2 "restore: option '--detach' given twice" restore x --detach --detach
expect_err 2 "restore: invalid detach key 'bogus'" restore x --detach-key bogus
expect_err 2 "status \.\./x: invalid job name" status ../x
expect_err 2 "run: missing command" run --name ok
expect_err 2 "run: missing command" run --name ok --
expect_err 2 "run: unknown option '--frobnicate'" run --frobnicate -- true
expect_err 2 "run: option '--name' needs a value" run --name
expect_err 2 "run ok: invalid snapshot id" run --name ok --from-snapshot abc -- true
expect_err 2 "list: unknown option" list --bogus
expect_err 2 "rm: missing job name" rm
expect_err 2 "rm: --checkpoint given twice" rm ok --checkpoint 5 --checkpoint 6
expect_err 2 "rm: --force and --checkpoint do not go together" rm ok --force --checkpoint 3
expect_err 2 "frob: unknown command" frob
expect_err 2 "unknown option '--bogus'" --bogus
expect_err 2 "missing command \(run,"
expect_err 2 "--version takes no arguments" --version extra
CKPTENV_SPIN_US=abc expect_err 2 "run sp: CKPTENV_SPIN_US=abc is not a number" run --name sp -- true
expect_err 1 "status nosuch: no such job" status nosuch
expect_err 1 "rm nosuch: no such job" rm nosuch
expect_err 1 "snapshot nosuch: no such job" snapshot nosuch
expect_err 1 "snapshots nosuch: no such job" snapshots nosuch
"$CKPTENV" run --name ok -- true
expect_err 1 "snapshot ok: the job is not running" snapshot ok
expect_err 2 "snapshot ok: invalid snapshot id" snapshot ok --drop x1
# A missing snapshot, named as one (it said "store: no epoch N"); a new job has none, so
# --from-snapshot needs an existing job's name and creates no job on the way to failing.
expect_err 1 "run ok: no snapshot 999999 of job ok; see 'ckptenv snapshots ok'\$" \
	run --name ok --from-snapshot 999999 -- true
expect_err 1 "snapshot ok: cannot drop snap-99: no such snapshot; see 'ckptenv snapshots ok'" \
	snapshot ok --drop 99
jobs_before=$(ls "$CKPTENV_HOME/jobs")
expect_err 1 "run newjob: no such job" run --name newjob --from-snapshot 1 -- true
expect_err 2 "run: --from-snapshot needs the --name" run --from-snapshot 1 -- true
expect_eq "jobs after a failed --from-snapshot" "$jobs_before" "$(ls "$CKPTENV_HOME/jobs")"

# A store that vfs_open refuses.
printf 'garbage' >"$CKPTENV_HOME/jobs/ok/store/FORMAT"
expect_err any "run ok: .*FORMAT" run --name ok -- true

# The same name while it runs.
"$CKPTENV" run --name busy --detach -- sh -c "touch $T/busy; while [ ! -e $T/stop ]; do sleep 0.05; done" >/dev/null
poll_until 20 test -e "$T/busy" || fail "job did not start"
expect_err 1 "run busy: the job is already running" run --name busy -- true
# A malformed control message closes that client (one log line); the job runs on.
python3 - "$CKPTENV_HOME/jobs/busy/control.sock" <<'PY' || fail "supervisor kept a bad client"
import socket, sys
for junk in (b"garbage", b"CKCT" + bytes(8) + b"x" * 100):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(sys.argv[1])
    s.send(junk)
    s.settimeout(10)
    assert s.recv(100) == b""
PY
expect_eq "bad-message log lines" 2 "$(grep -c 'bad message; closing' "$CKPTENV_HOME/jobs/busy/log")"
"$CKPTENV" list | grep -Eq '^busy +running' || fail "job died after a bad client"
# A bad checkpoint id is named first, also for a running job (it said "the job is running").
expect_err 2 "restore busy: invalid checkpoint id 'abc'" restore busy abc
# Output that cannot be written is an error: a snapshot's id lost to a full disk was exit 0.
for args in "list" "--version" "snapshots busy" "snapshot busy"; do
	rc=0
	"$CKPTENV" $args </dev/null >/dev/full 2>"$T/err" || rc=$?
	expect_eq "exit of '$args >/dev/full'" 1 "$rc"
	grep -Eqx "ckptenv: cannot write to standard output: (No space left on device|write error)" "$T/err" ||
		fail "'$args >/dev/full' said: $(cat "$T/err")"
done
touch "$T/stop"

# --help and --version everywhere.
for c in run list status rm snapshot snapshots attach log; do
	"$CKPTENV" $c --help | grep -q "^Usage: ckptenv $c" || fail "$c --help"
done
"$CKPTENV" --help | grep -q "^Usage: ckptenv" || fail "--help"
"$CKPTENV" --version | grep -Eq "^ckptenv [0-9]" || fail "--version"

pass "bad inputs"
