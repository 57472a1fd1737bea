#!/bin/bash
# A checkpoint whose pages.img has one flipped byte in its page data (structure intact, so only
# the page checksums can tell): `restore` refuses it with one line naming the file and the
# pages, exit 1, and the job's process never runs (the page check of the job's init answers
# before the restorer sets the final protections); with the byte repaired, the same checkpoint
# restores and the memory is intact. Both ways in: a new supervisor (after a kill -9 of the
# old one, as a reboot) and a restore in place (after `checkpoint --stop`), where the refused
# restore leaves the job stopped in its supervisor for another restore in place.
. "$(dirname "$0")/../lib.sh"
TOUCH=$CK_HELPERS/zdtm-touch
[ -x "$TOUCH" ] || fail "missing helper $TOUCH"

job_pid() { "$CKPTENV" status "$1" | sed -n 's/^pid: *\([0-9]*\) .*/\1/p'; }
cmd_pid() { local j; j=$(job_pid "$1"); [ -n "$j" ] && tr -d ' ' <"/proc/$j/task/$j/children"; }
has_cmd() { [ -n "$(cmd_pid "$1" 2>/dev/null)" ]; }
logged() { "$CKPTENV" log "$1" | grep -aq "$2"; }
state_is() { "$CKPTENV" status "$1" | grep -Eq "state: *($2)"; }

# flip FILE OFFSET: xor the byte at OFFSET with 0xff (twice restores it)
flip() {
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "$(printf '\\%03o' $((b ^ 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# refused JOB ID: the restore of checkpoint ID fails in one line naming the corrupt pages, and
# the job's command does not run (it would print "ready" again)
refused() {
	local readies rc=0
	readies=$("$CKPTENV" log "$1" | grep -ac '^ready')
	"$CKPTENV" restore "$1" --detach >out.txt 2>err.txt || rc=$?
	[ "$rc" = 1 ] || fail "$1: restore of corrupt pages: exit $rc: $(cat err.txt)"
	[ "$(wc -l <err.txt)" = 1 ] || fail "$1: not one line: $(cat err.txt)"
	grep -q "checkpoint $2 refused: $CKPTENV_HOME/jobs/$1/checkpoints/$2/image/pages.img is corrupt (checksum of pages at 0x[0-9a-f]*)" err.txt ||
		fail "$1: refusal: $(cat err.txt)"
	echo "refused: $(cat err.txt)"
	poll_until 10 state_is "$1" "died|exited|stopped" || fail "$1: something runs: $("$CKPTENV" status "$1")"
	sleep 0.3
	[ "$("$CKPTENV" log "$1" | grep -ac '^ready')" = "$readies" ] || fail "$1: the job ran"
}

# restored JOB: the restore succeeds and the restored process finds its memory intact
restored() {
	"$CKPTENV" restore "$1" --detach >/dev/null 2>err.txt || fail "$1: restore: $(cat err.txt)"
	local p
	poll_until 20 has_cmd "$1" || fail "$1: no restored process: $("$CKPTENV" log "$1" | tail -2)"
	p=$(cmd_pid "$1")
	poll_until 20 sh -c "! ls -l /proc/$p/fd | grep -q pages.img" || fail "$1: restore did not finish"
	kill -USR1 "$p"
	poll_until 10 logged "$1" "^verify" || fail "$1: restored job does not answer"
	logged "$1" "^verify ok 16" || fail "$1: $("$CKPTENV" log "$1" | grep -a verify)"
}

for way in new in-place; do
	j=j-$way
	"$CKPTENV" run --name "$j" --detach -- "$TOUCH" 16 </dev/null >/dev/null
	poll_until 10 logged "$j" "^ready 16" || fail "$j did not get ready: $("$CKPTENV" log "$j")"
	sup=$("$CKPTENV" status "$j" | sed -n 's/^pid: .*(supervisor \([0-9]*\)).*/\1/p')
	if [ "$way" = new ]; then
		"$CKPTENV" checkpoint "$j" >/dev/null 2>err.txt || fail "checkpoint $j: $(cat err.txt)"
		kill -9 "$sup"
		poll_until 10 state_is "$j" "died" || fail "$j survived its supervisor"
	else
		"$CKPTENV" checkpoint "$j" --stop >/dev/null 2>err.txt || fail "checkpoint $j: $(cat err.txt)"
		poll_until 10 state_is "$j" "stopped" || fail "--stop left $j running"
	fi
	img=$CKPTENV_HOME/jobs/$j/checkpoints/1/image/pages.img
	off=$(($(stat -c %s "$img") / 2))
	flip "$img" "$off"
	refused "$j" 1
	if [ "$way" = in-place ]; then # still the stopped job, in its own supervisor
		state_is "$j" stopped || fail "$j: not stopped after the refusal: $("$CKPTENV" status "$j")"
		kill -0 "$sup" || fail "$j: its supervisor ended with the refused restore"
	fi
	flip "$img" "$off"
	restored "$j"
	[ "$way" = new ] || "$CKPTENV" status "$j" | grep -q "(supervisor $sup)" ||
		fail "$j: not restored in place: $("$CKPTENV" status "$j")"
	"$CKPTENV" rm --force "$j" >/dev/null
done
pass "a flipped byte in pages.img refused in one line before the job runs, both ways; repaired, it restores"
