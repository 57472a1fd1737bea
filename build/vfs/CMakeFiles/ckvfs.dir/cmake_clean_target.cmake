file(REMOVE_RECURSE
  "libckvfs.a"
)
