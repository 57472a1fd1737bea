# Unpack a real source tree into the job's /tmp and compare it with the original: contents
# (diff -r), and per-entry type, mode, size, mtime and symlink target; then again in a second run.
. "$(dirname "$0")/../lib.sh"

SRCS=()
for d in /usr/include/linux /usr/share/doc/bash; do
	[ -d "$d" ] && SRCS+=("$d")
done
[ ${#SRCS[@]} -gt 0 ] || skip "neither /usr/include/linux nor /usr/share/doc/bash present"

cat >"$T/cmp.sh" <<'SH'
set -euo pipefail
mode=$1 tarball=$2; shift 2
# What tar preserves: name, type, permissions, size (files), mtime (seconds), link target.
meta() { (cd "$1" && find . -printf '%p %y %m %s %TY%Tm%Td%TH%TM%TS %l\n' |
	sed -E 's/^(\S+ d \S+) [0-9]+/\1 -/; s/(\.[0-9]+) / /' | LC_ALL=C sort); }
if [ "$mode" = unpack ]; then
	mkdir /tmp/tree
	tar -C /tmp/tree -xpf "$tarball"
fi
for src in "$@"; do
	dst=/tmp/tree/$(basename "$src")
	diff -r --no-dereference "$src" "$dst"
	diff <(meta "$src") <(meta "$dst")
done
echo "files=$(find /tmp/tree -type f | wc -l) bytes=$(du -sb /tmp/tree | cut -f1)"
SH

args=()
for s in "${SRCS[@]}"; do args+=(-C "$(dirname "$s")" "$(basename "$s")"); done
tar -cf "$T/src.tar" "${args[@]}"

out=$("$CKPTENV" run --name tree -- bash "$T/cmp.sh" unpack "$T/src.tar" "${SRCS[@]}" 2>&1) ||
	fail "unpack/compare: $out"
pass "tar x of ${SRCS[*]} matches ($out)"
out=$("$CKPTENV" run --name tree -- bash "$T/cmp.sh" verify "$T/src.tar" "${SRCS[@]}" 2>&1) ||
	fail "second run: $out"
pass "tree intact in a second run ($out)"
