# Empty dependencies file for ck_common.
# This may be replaced when dependencies are built.
