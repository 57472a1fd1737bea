#!/bin/bash
# What is put in a store file's place is never followed out of the store nor waited for: a
# symlink in data/ to a file outside (the GC punched holes in it: 1 MiB of the user's data
# zeroed) or to /dev/zero (store open spun at 100 % CPU), a FIFO in data/ or in place of refs or
# FORMAT (store open blocked for good). Each `run` must end within its timeout, the outside
# file keep its bytes, and a refs or FORMAT that is no file be named in one line.
. "$(dirname "$0")/../lib.sh"
"$CKPTENV" run --name v -- sh -c 'head -c 3000000 /dev/urandom >/tmp/f; head -c 100000 /dev/urandom >/tmp/g' \
	</dev/null || fail "first run"
S=$CKPTENV_HOME/jobs/v/store
cp -a "$S" pristine
layer_of() { # the data file of SIZE bytes
	for f in pristine/data/*; do [ "$(stat -c %s "$f")" = "$1" ] && basename "$f"; done | head -1
}
F=$(layer_of 3000000) G=$(layer_of 100000)
[ -n "$F" ] && [ -n "$G" ] || fail "no layer files: $(ls -l pristine/data)"
head -c 1048576 /dev/zero | tr '\0' V >victim
cp victim victim.orig
for mut in victim zero fifo refs-fifo format-fifo; do
	rm -rf "$S" && cp -a pristine "$S"
	case $mut in
	victim) rm "$S/data/$G" && ln -s "$T/victim" "$S/data/$G" ;;
	zero) rm "$S/data/$F" && ln -s /dev/zero "$S/data/$F" ;;
	fifo) rm "$S/data/$F" && mkfifo "$S/data/$F" ;;
	refs-fifo) rm "$S/refs" && mkfifo "$S/refs" ;;
	format-fifo) rm "$S/FORMAT" && mkfifo "$S/FORMAT" ;;
	esac
	rc=0
	timeout 30 "$CKPTENV" run --name v -- sh -c 'cat /tmp/f /tmp/g >/dev/null' </dev/null >out.txt 2>err.txt || rc=$?
	[ "$rc" != 124 ] || fail "$mut: run still waiting after 30 s"
	case $mut in
	refs-fifo | format-fifo)
		[ "$rc" != 0 ] || fail "$mut: run exited 0"
		f=${mut%-fifo}; f=$(tr a-z A-Z <<<"$f" | sed 's/REFS/refs/')
		grep -q "store/$f" err.txt || fail "$mut: the file is not named: $(cat err.txt)" ;;
	esac
	cmp -s victim victim.orig || fail "$mut: the file outside the store changed"
done
pass "a symlink or FIFO in a store file's place is neither followed nor waited for"
