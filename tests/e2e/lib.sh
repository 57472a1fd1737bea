# Shared harness for e2e scenarios: source it first thing.
#  - a private work directory ($T) and a private CKPTENV_HOME inside it,
#  - a time limit for the whole scenario (E2E_TIMEOUT seconds, default 240),
#  - a trap that kills the scenario's process group and removes the work dir,
#  - skip() exits 77, except in CI (CI=true) where a skip of a met need is a failure,
#  - poll_until for readiness with a deadline (never sleep-and-hope).
set -euo pipefail

# `producer | grep -q PATTERN` under pipefail: grep -q stops reading at the first match, and a
# producer still writing (bash's echo writes line by line; tmux capture-pane, ckptenv log)
# dies of SIGPIPE, which pipefail makes the pipeline's failure: a check that held failed
# (e2e/pty/attach in CI). This grep reads to the end: -q becomes output to /dev/null.
grep() {
	local a quiet=0 opts=1 args=()
	for a in "$@"; do
		if ((opts)) && [[ $a == -[A-Za-z]* && $a != *[efmABC]* ]]; then
			[[ $a == *q* ]] && quiet=1 && a=${a//q/}
			[[ $a == - ]] && continue
		else
			opts=0
		fi
		args+=("$a")
	done
	if ((quiet)); then
		command grep "${args[@]}" >/dev/null
	else
		command grep "$@"
	fi
}

# CK_SMALL_DISK=SIZE set before sourcing: the scenario runs again in a private mount namespace,
# with a tmpfs of that size as its CKPTENV_HOME (small_disk, below); skipped without root and
# unshare.
if [ -n "${CK_SMALL_DISK:-}" ] && [ -z "${CK_IN_MNTNS:-}" ] && [ "$(id -u)" = 0 ] &&
	command -v unshare >/dev/null; then
	exec unshare -m --propagation private env CK_IN_MNTNS=1 bash "$0" "$@"
fi

CKPTENV=${CKPTENV:?CKPTENV must point at the ckptenv binary (ctest sets it)}
CK_HELPERS=${CK_HELPERS:-$(dirname "$CKPTENV")/helpers}
_base=${CK_TEST_TMPDIR:-/var/tmp}
# A job's /tmp is its own: a work dir (or helper) under the host's /tmp is invisible in a job,
# so a checkout under /tmp runs its scenarios from /var/tmp.
case "$_base/" in /tmp/*) _base=/var/tmp/ckptenv-e2e ;; esac
mkdir -p "$_base"
# Unit suites may have created the shared scratch dir 0700 first; scenarios that run as
# another user must be able to traverse it.
chmod 755 "$_base"
T=$(mktemp -d "$_base/e2e.XXXXXX")
chmod 755 "$T"
export CKPTENV_HOME="$T/home"
E2E_NAME=$(basename "$0" .sh)
case "$CK_HELPERS/" in
/tmp/*)
	if [ -d "$CK_HELPERS" ]; then
		cp -a "$CK_HELPERS" "$T/helpers"
		CK_HELPERS=$T/helpers
	fi
	;;
esac
cd "$T"

# _cleanup [RC]: RC defaults to $?. Traps of scenarios that undo more pass their saved status
# (`trap 'rc=$?; ...; _cleanup $rc' EXIT`): `(exit $rc); _cleanup` would end the trap early under
# set -e when rc is not 0, skipping the cleanup of a failed scenario.
_cleanup() {
	local rc=${1:-$?}
	set +e
	trap - EXIT INT TERM
	# Stop supervisors this scenario started (their state lives under $T). A failed scenario
	# keeps each job's logs first (rm deletes the job's directory).
	if [ -d "$CKPTENV_HOME/jobs" ]; then
		for j in "$CKPTENV_HOME"/jobs/*/; do
			[ -d "$j" ] || continue
			if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
				mkdir -p "$T/kept-logs/$(basename "$j")"
				cp -a "$j/log" "$j/output" "$T/kept-logs/$(basename "$j")/" 2>/dev/null
			fi
			"$CKPTENV" rm --force "$(basename "$j")" >/dev/null 2>&1 || true
		done
	fi
	if [ -n "${_watchdog:-}" ]; then
		pkill -P "$_watchdog" 2>/dev/null || true
		kill "$_watchdog" 2>/dev/null || true
	fi
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
		echo "FAIL: $E2E_NAME (exit $rc); work dir kept at $T" >&2
	else
		rm -rf "$T" 2>/dev/null || true
	fi
	exit "$rc"
}
trap _cleanup EXIT
trap 'exit 130' INT
trap '[ -e "$T/.timeout" ] && echo "TIMEOUT: $E2E_NAME after ${E2E_TIMEOUT:-240} s" >&2; exit 124' TERM

# Watchdog: kill this scenario if it outlives its time limit. Its output goes nowhere so that a
# leftover sleep never holds ctest's output pipe open. bash runs the TERM trap only once its
# foreground command returns, so that command (and its siblings) get TERM too.
( exec >/dev/null 2>&1 </dev/null; sleep "${E2E_TIMEOUT:-240}"; touch "$T/.timeout"
  kill -TERM $$; pkill -TERM -P $$ ) &
_watchdog=$!

fail() { echo "FAIL: $E2E_NAME: $*" >&2; exit 1; }
pass() { echo "ok: $E2E_NAME: $*"; }

skip() {
	if [ "${CI:-}" = "true" ]; then
		fail "would skip in CI: $*"
	fi
	echo "SKIP: $E2E_NAME: $*" >&2
	exit 77
}

# poll_until SECONDS CMD...: run CMD until it succeeds or the deadline passes.
poll_until() {
	local limit=$1; shift
	local end=$(( $(date +%s%N) / 1000000 + limit * 1000 ))
	while ! "$@" >/dev/null 2>&1; do
		[ $(( $(date +%s%N) / 1000000 )) -lt "$end" ] || return 1
		sleep 0.05
	done
}

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() { [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"; }

# use_ckuser MODE JOB [FILE...]: run this scenario's ckptenv as the ordinary user ckuser (needs
# root to create it: skips otherwise). Lets the user open /dev/fuse, gives it U=$T/ckuser (FILEs
# are copied there) and defines
#  - as_user ARGS: ckptenv ARGS as ckuser, stdin from /dev/null, in a clean environment (HOME=$U,
#    CKPTENV_HOME=$U/home and the VAR=value words of the array CK_USER_ENV, set before the call),
#  - cleanup_user: `rm --force JOB` as ckuser, run by the EXIT trap this sets before _cleanup
#    (a scenario with more to undo sets its own trap and calls cleanup_user from it).
# MODE copy: the user runs a copy of $CKPTENV in $U; MODE reach: it runs $CKPTENV itself, and the
# scenario skips when ckuser cannot traverse every directory above it.
use_ckuser() {
	local mode=$1 d; CK_USER_JOB=$2; shift 2
	[ "$(id -u)" = 0 ] || skip "needs root to create the test user"
	# Other scenarios create the same user, maybe at the same time (ctest -j): then it exists.
	id ckuser >/dev/null 2>&1 || useradd -m ckuser >/dev/null 2>&1 || poll_until 10 id ckuser ||
		skip "cannot create user ckuser"
	chmod 0666 /dev/fuse
	case "$mode" in
	copy) CK_USER_BIN=$T/ckuser/ckptenv ;;
	reach)
		# The user must reach the binary and its own state directory.
		CK_USER_BIN=$CKPTENV
		d=$(dirname "$CKPTENV")
		while [ "$d" != / ]; do
			setpriv --reuid ckuser --regid ckuser --init-groups test -x "$d" ||
				skip "ckuser cannot reach $d"
			d=$(dirname "$d")
		done
		;;
	*) fail "use_ckuser: mode '$mode' is neither copy nor reach" ;;
	esac
	U="$T/ckuser"
	mkdir -p "$U" && chown ckuser: "$U"
	[ $# = 0 ] || cp "$@" "$U/"
	[ "$mode" != copy ] || cp "$CKPTENV" "$U/ckptenv"
	trap 'rc=$?; set +e; cleanup_user; _cleanup $rc' EXIT
}
as_user() {
	setpriv --reuid ckuser --regid ckuser --init-groups env -i PATH=/usr/bin:/bin HOME="$U" \
		CKPTENV_HOME="$U/home" ${CK_USER_ENV[@]+"${CK_USER_ENV[@]}"} "$CK_USER_BIN" "$@" </dev/null
}
cleanup_user() { as_user rm --force "$CK_USER_JOB" >/dev/null 2>&1 || true; }

# tmux_start: a private tmux server as $TM (skipped without tmux; killed at exit), for
# scenarios through a real terminal; pane SESSION prints its screen, has SESSION RE greps it.
tmux_start() {
	command -v tmux >/dev/null || skip "tmux missing"
	TM="tmux -L ck-e2e-$$ -f /dev/null"
	trap 'rc=$?; set +e; $TM kill-server 2>/dev/null || true; _cleanup $rc' EXIT
}
pane() { $TM capture-pane -p -t "$1"; }
has() { pane "$1" | grep -q -- "$2"; }

# The small disk of a CK_SMALL_DISK scenario (see the top): mounted on $CKPTENV_HOME. The
# scenario's own EXIT trap unmounts it (umount -l "$CKPTENV_HOME") before _cleanup.
if [ -n "${CK_SMALL_DISK:-}" ]; then
	[ -n "${CK_IN_MNTNS:-}" ] || skip "needs root and unshare -m for a small tmpfs"
	mkdir -p "$CKPTENV_HOME"
	mount -t tmpfs -o "size=$CK_SMALL_DISK,mode=0700" ckptenv-full "$CKPTENV_HOME" ||
		fail "cannot mount a tmpfs"
fi
