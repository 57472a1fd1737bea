# fsconform (tests/helpers/fsconform.c) against the job's /tmp: as root, then as a non-root user
# (ckuser, created if missing) with its own CKPTENV_HOME, through a user namespace.
. "$(dirname "$0")/../lib.sh"

[ -x "$CK_HELPERS/fsconform" ] || fail "no fsconform in $CK_HELPERS (build the helpers)"

# run_conform LABEL CMD...: run fsconform via CMD, require "0 failed".
run_conform() {
	local label=$1 out rc=0; shift
	out=$("$@" 2>&1) || rc=$?
	printf '%s\n' "$out" | sed "s/^/[$label] /"
	local last
	last=$(printf '%s\n' "$out" | tail -n1)
	[[ $last =~ ^[0-9]+\ passed,\ 0\ failed$ ]] || fail "$label: fsconform: $last (exit $rc)"
	[ "$rc" -eq 0 ] || fail "$label: exit $rc"
	# It ran on the vfs, not on the host's disk: the mount of /tmp is FUSE.
	[ "${CK_E2E_ALLOW_NONFUSE:-0}" = 1 ] || printf '%s\n' "$out" | grep -q '^# fsconform in /tmp/.*f_type 0x65735546' ||
		fail "$label: /tmp inside the job is not a FUSE mount"
}

run_conform root "$CKPTENV" run -- "$CK_HELPERS/fsconform" /tmp
pass "fsconform as root"

# ---- the same as a non-root user ----
[ "$(id -u)" -eq 0 ] || skip "non-root pass needs root to create the user"
id ckuser >/dev/null 2>&1 || useradd -m ckuser >/dev/null 2>&1 || skip "cannot create user ckuser"
chmod 0666 /dev/fuse
UHOME="$T/home-ckuser"
mkdir -p "$UHOME"
chown ckuser: "$UHOME"
chmod 700 "$UHOME"
as_user() { setpriv --reuid=ckuser --regid=ckuser --init-groups env -u CKPTENV_HOME \
	HOME="$(getent passwd ckuser | cut -d: -f6)" CKPTENV_HOME="$UHOME" "$@"; }
_user_cleanup() {
	local j
	for j in "$UHOME"/jobs/*/; do
		[ -d "$j" ] && as_user "$UCK" rm --force "$(basename "$j")" >/dev/null 2>&1 || true
	done
}
trap 'rc_=$?; set +e; _user_cleanup; _cleanup $rc_' EXIT

# The binaries must be reachable by ckuser; copy them when the build tree is not.
UCK=$CKPTENV
UHELP=$CK_HELPERS
if ! as_user test -x "$CKPTENV" || ! as_user test -x "$CK_HELPERS/fsconform"; then
	mkdir -p "$T/bin"
	cp "$CKPTENV" "$CK_HELPERS/fsconform" "$T/bin/"
	UCK=$T/bin/ckptenv
	UHELP=$T/bin
fi
as_user unshare -U true 2>/dev/null || skip "unprivileged user namespaces are disabled"
run_conform ckuser as_user "$UCK" run -- "$UHELP/fsconform" /tmp
pass "fsconform as ckuser"
