file(REMOVE_RECURSE
  "libckvfs_store.a"
)
