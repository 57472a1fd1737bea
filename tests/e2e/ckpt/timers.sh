#!/bin/bash
# Timers and clocks across checkpoint / kill -9 of everything / restore (zdtm-timers, with two
# more threads that sleep, so timer signals may land on any of three threads): the job
# runs in a time namespace of its own from `run`; after 3 s of downtime the restored helper finds
# its POSIX timers at the same ids with the right si_value, time left consistent with its
# clocks, and CLOCK_MONOTONIC/BOOTTIME neither back nor forward by the downtime. Then the same
# as an ordinary user (user namespace), with alarm() instead of the itimers.
. "$(dirname "$0")/../lib.sh"
H=$CK_HELPERS/zdtm-timers
[ -x "$H" ] || fail "missing helper $H"
DOWN=3

sup_pid() { sed -n 's/.*supervisor j\[\([0-9]*\)\]: job started.*/\1/p' "$CKPTENV_HOME/jobs/j/log" | tail -1; }
job_pid() { "$CKPTENV" status j | sed -n 's/^pid: *\([0-9]*\) .*/\1/p'; }
cmd_pid() { cat "/proc/$(job_pid)/task/$(job_pid)/children" | tr -d ' '; }
logged() { "$CKPTENV" log j | grep -aq "$1"; }
verdicts() { "$CKPTENV" log j | grep -acE '^(ok|fail)'; }
verdicts_n() { [ "$(verdicts)" -ge "$1" ]; }
kill_all() {
	local s; s=$(sup_pid)
	kill -9 "$s"
	poll_until 10 sh -c "! kill -0 $s" || fail "supervisor $s survived SIGKILL"
	poll_until 10 sh -c "'$CKPTENV' status j | grep -q 'state: *\(died\|exited\)'" || fail "job still up"
}

"$CKPTENV" run --name j --detach -- "$H" itimer-threads $DOWN continuous 6 </dev/null >/dev/null
poll_until 10 logged '^ready' || fail "helper not ready: $("$CKPTENV" log j)"
pid=$(cmd_pid)
# `run` puts the job into a time namespace of its own (zero offsets): init and command alike.
[ "$(readlink /proc/$pid/ns/time)" != "$(readlink /proc/self/ns/time)" ] ||
	fail "the job is not in a time namespace of its own"
[ "$(readlink /proc/$pid/ns/time)" = "$(readlink /proc/$(job_pid)/ns/time)" ] ||
	fail "the job's init and command are in different time namespaces"
grep -q "^monotonic *0 *0" /proc/$pid/timens_offsets || fail "run: offsets $(cat /proc/$pid/timens_offsets)"
"$CKPTENV" checkpoint j >/dev/null 2>ckpt.txt || fail "checkpoint: $(cat ckpt.txt)"
kill_all
sleep $DOWN # the downtime the restored job must not see on its monotonic clock

for round in 1; do
	"$CKPTENV" restore j --detach >/dev/null 2>err.txt || fail "restore $round: $(cat err.txt)"
	poll_until 40 verdicts_n $round || fail "restore $round: no verdict: $("$CKPTENV" log j | tail -5)"
	"$CKPTENV" log j | grep -a '^restored' | tail -1
	"$CKPTENV" log j | grep -aE '^(ok|fail)' | tail -1 | grep -q '^ok' ||
		fail "restore $round: $("$CKPTENV" log j | grep -aE '^(restored|fail)' | tail -2 | tr '\n' ' ')"
	poll_until 10 sh -c "'$CKPTENV' status j | grep -q 'state: *exited'" || kill_all
done

# As an ordinary user: the init enters the time namespace inside the job's user namespace.
if [ "$(id -u)" = 0 ]; then
	id ckuser >/dev/null 2>&1 || useradd -m ckuser >/dev/null 2>&1 || fail "cannot create user ckuser"
	chmod 0666 /dev/fuse
	U="$T/ckuser"
	mkdir -p "$U" && chown ckuser: "$U"
	cp "$H" "$U/" && cp "$CKPTENV" "$U/ckptenv"
	as_user() {
		setpriv --reuid ckuser --regid ckuser --init-groups env -i PATH=/usr/bin:/bin HOME="$U" \
			CKPTENV_HOME="$U/home" "$U/ckptenv" "$@" </dev/null
	}
	trap 'rc=$?; set +e; as_user rm --force nt >/dev/null 2>&1; _cleanup $rc' EXIT
	ulog() { as_user log nt | grep -aq "$1"; }
	as_user run --name nt --detach -- "$U/zdtm-timers" alarm $DOWN continuous 6 >/dev/null
	poll_until 10 ulog '^ready' || fail "non-root helper not ready: $(as_user log nt)"
	as_user checkpoint nt --stop >/dev/null 2>err.txt || fail "non-root checkpoint: $(cat err.txt)"
	sleep $DOWN
	as_user restore nt --detach >/dev/null 2>err.txt || fail "non-root restore: $(cat err.txt)"
	poll_until 40 ulog '^\(ok\|fail\)' || fail "non-root: no verdict: $(as_user log nt | tail -3)"
	as_user log nt | grep -aq '^ok' || fail "non-root: $(as_user log nt | grep -aE '^(restored|fail)' | tr '\n' ' ')"
fi
pass "POSIX timers, itimers and alarm across restore; clocks continuous in the job's time namespace"
