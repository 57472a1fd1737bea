# Empty dependencies file for ckvfs.
# This may be replaced when dependencies are built.
