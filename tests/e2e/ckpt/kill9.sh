#!/bin/bash
# kill -9 of the supervisor or of `ckptenv checkpoint` at random instants, a few dozen times:
# the previous checkpoints always stay listed and restorable, image and epoch never disagree,
# and what a kill left is swept (bench/ckpt-soak.sh, which runs 1000 of them, does the work).
. "$(dirname "$0")/../lib.sh"
export CKPTENV CK_HELPERS
SOAK_DIR=$T/soak bash "$(dirname "$0")/../../../bench/ckpt-soak.sh" "${CK_KILL9_N:-40}" ||
	fail "see above"
pass "kill -9 at random instants"
