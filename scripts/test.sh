#!/usr/bin/env bash
# The whole test suite, as CI runs it: install deps, build build/ with -Werror, ctest (unit + e2e),
# then build-asan/ (ASan+UBSan) and the suite again; prints "N passed, M failed" last.
exec bash "$(dirname "${BASH_SOURCE[0]}")/setup.sh" --test "$@"
