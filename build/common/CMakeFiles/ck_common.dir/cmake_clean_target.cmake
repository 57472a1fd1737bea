file(REMOVE_RECURSE
  "libck_common.a"
)
