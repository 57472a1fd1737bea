#!/bin/bash
# A file unlinked while open stays usable through its descriptor.
. "$(dirname "$0")/../lib.sh"
out=$("$CKPTENV" run --name u -- sh -c 'exec 3<>/tmp/f; rm /tmp/f; echo x >&3; test ! -e /tmp/f && cat /proc/self/fd/3')
expect_eq "unlinked-open file content" "x" "$out"
out=$("$CKPTENV" run --name u -- sh -c 'ls -A /tmp | wc -l')
expect_eq "nothing left in /tmp" "0" "$out"
pass "unlinked-open file"
