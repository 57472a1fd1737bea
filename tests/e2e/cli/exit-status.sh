#!/bin/bash
# The CLI exits with the job's exit status; 128+signal when the command is killed.
. "$(dirname "$0")/../lib.sh"

check() { # check EXPECTED CMD...
	local want=$1 rc=0; shift
	"$CKPTENV" run --name st -- "$@" </dev/null >/dev/null 2>"$T/err" || rc=$?
	expect_eq "exit status of '$*'" "$want" "$rc"
}
check 0 true
check 3 sh -c 'exit 3'
check 137 sh -c 'kill -9 $$'
check 143 sh -c 'kill -TERM $$'
check 127 /nonexistent/command
grep -q "^ckptenv: cannot run /nonexistent/command: " "$T/err" || fail "no exec error line: $(cat "$T/err")"
check 126 /etc/passwd
# stdio really is the CLI's: stdin in, stdout out, stderr err.
out=$(echo hello | "$CKPTENV" run --name st -- sh -c 'read x; echo "$x-out"; echo "$x-err" >&2' 2>"$T/err")
expect_eq "stdout" "hello-out" "$out"
expect_eq "stderr" "hello-err" "$(cat "$T/err")"
# The status file records the last exit.
"$CKPTENV" run --name st -- sh -c 'exit 7' || true
"$CKPTENV" status st | grep -q "^last exit: *7 " || fail "status does not show last exit 7"
# A reader that goes away ends the job as in a shell pipeline: SIGPIPE, 141 (the run client
# used to wait forever while `yes` went on writing into the supervisor).
for what in stdout stderr; do
	if [ $what = stdout ]; then
		timeout 30 bash -c '"$0" run --name pipe-$1 -- yes | head -1 >/dev/null; echo "${PIPESTATUS[0]}"' \
			"$CKPTENV" $what > "$T/ps" || fail "run -- yes | head -1 hung ($what)"
	else
		timeout 30 bash -c '"$0" run --name pipe-$1 -- sh -c "yes >&2" 2>&1 >/dev/null | head -1 >/dev/null; echo "${PIPESTATUS[0]}"' \
			"$CKPTENV" $what > "$T/ps" || fail "run -- yes | head -1 hung ($what)"
	fi
	expect_eq "exit status of run when its $what's reader left" "141" "$(cat "$T/ps")"
done
pass "exit statuses"
