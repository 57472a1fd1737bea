# Empty dependencies file for ckvfs_store.
# This may be replaced when dependencies are built.
