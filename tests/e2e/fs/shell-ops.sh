# Everyday shell file operations in the job's /tmp: mktemp, write, mv over an existing file, hard
# and symbolic links, checked with stat %h/%i, then again in a second run of the same job.
. "$(dirname "$0")/../lib.sh"

mark="ckptenv-e2e-$$-$RANDOM"
cat >"$T/ops.sh" <<'SH'
set -euo pipefail
mark=$1
check() { [ "$2" = "$3" ] || { echo "FAIL $1: expected '$2', got '$3'"; exit 1; }; }
cd /tmp
f=$(mktemp /tmp/ops.XXXXXX)
check "mktemp mode" 600 "$(stat -c %a "$f")"
echo one >"$f"
echo old >/tmp/target
ino=$(stat -c %i "$f")
old_ino=$(stat -c %i /tmp/target)
mv "$f" /tmp/target
check "mv content" one "$(cat /tmp/target)"
check "mv keeps inode" "$ino" "$(stat -c %i /tmp/target)"
[ ! -e "$f" ] || { echo "FAIL: $f still there after mv"; exit 1; }
[ "$old_ino" != "$ino" ] || { echo "FAIL: distinct files share inode $ino"; exit 1; }
ln /tmp/target /tmp/hard
check "hard link count" 2 "$(stat -c %h /tmp/target)"
check "hard link inode" "$ino" "$(stat -c %i /tmp/hard)"
echo two >>/tmp/hard
check "write through hard link" "$(printf 'one\ntwo')" "$(cat /tmp/target)"
ln -s target /tmp/soft
check "readlink" target "$(readlink /tmp/soft)"
check "symlink type" "symbolic link" "$(stat -c %F /tmp/soft)"
check "through symlink" "$(printf 'one\ntwo')" "$(cat /tmp/soft)"
check "symlink not counted" 2 "$(stat -c %h /tmp/target)"
ln /tmp/target /tmp/hard2
rm /tmp/hard2
check "after rm of a link" 2 "$(stat -c %h /tmp/target)"
mkdir -p /tmp/d/a/b /tmp/d/c
check "dir links" 4 "$(stat -c %h /tmp/d)"
d=$(mktemp -d)
check "mktemp -d mode" 700 "$(stat -c %a "$d")"
cp -a /tmp/target "$d/copy"
mv "$d" /tmp/moved
check "moved dir" "$(printf 'one\ntwo')" "$(cat /tmp/moved/copy)"
touch "/tmp/$mark"
echo "ino=$ino"
SH
cat >"$T/verify.sh" <<'SH'
set -euo pipefail
check() { [ "$2" = "$3" ] || { echo "FAIL $1: expected '$2', got '$3'"; exit 1; }; }
check "links persist" "2 2" "$(stat -c %h /tmp/target) $(stat -c %h /tmp/hard)"
check "same inode" "$(stat -c %i /tmp/target)" "$(stat -c %i /tmp/hard)"
check "symlink persists" target "$(readlink /tmp/soft)"
check "content" "$(printf 'one\ntwo')" "$(cat /tmp/soft)"
check "dir links" 4 "$(stat -c %h /tmp/d)"
echo "ino=$(stat -c %i /tmp/target)"
SH

out=$("$CKPTENV" run --name ops -- bash "$T/ops.sh" "$mark") || fail "$out"
[ ! -e "/tmp/$mark" ] || { rm -f "/tmp/$mark"; fail "the job's /tmp is the host's /tmp"; }
pass "mktemp, mv over a file, ln, ln -s ($out)"
out2=$("$CKPTENV" run --name ops -- bash "$T/verify.sh") || fail "second run: $out2"
pass "links and inodes after a second run ($out2)"
