#!/bin/bash
# The fd kinds of zdtm-fds (see fds.sh) checkpointed and restored as an ordinary user (user
# namespace, unprivileged FUSE, sock_diag and syscall injection without privileges): the
# restored helper verifies itself on SIGUSR1.
. "$(dirname "$0")/../lib.sh"
use_ckuser copy nf "$CK_HELPERS/zdtm-fds"
said() { as_user log nf | grep -aq "$1"; }
cmd_pid() {
	local j; j=$(as_user status nf | sed -n 's/^pid: *\([0-9]*\) .*/\1/p')
	cat "/proc/$j/task/$j/children" 2>/dev/null | tr -d ' '
}
in_loop() { local p; p=$(cmd_pid) && [ -n "$p" ] && grep -Eq '^(232|281) ' "/proc/$p/syscall"; }

as_user run --name nf --detach -- "$U/zdtm-fds" 1 /tmp/zdtm-fds >/dev/null
poll_until 10 said '^ready' || fail "helper not ready: $(as_user log nf | tail -3)"
as_user checkpoint nf --stop >out.txt 2>err.txt || fail "checkpoint as ckuser: $(cat err.txt)"
as_user restore nf --detach >/dev/null 2>err.txt || fail "restore as ckuser: $(cat err.txt)"
poll_until 10 in_loop || fail "not restored: $(as_user log nf | tail -3; tail -2 "$U/home/jobs/nf/log")"
kill -USR1 "$(cmd_pid)"
verdict() { as_user log nf | grep -aEq '^(ok|fail)'; }
poll_until 15 verdict || fail "no verdict: $(as_user log nf | grep -av '^ticks' | tail -3)"
said '^fail' && fail "restored as ckuser: $(as_user log nf | grep -a '^fail')"
pass "fd kinds checkpointed and restored as ckuser"
