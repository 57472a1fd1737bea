file(REMOVE_RECURSE
  "libckvfs_store.a"
  "libckvfs_store.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang )
  include(CMakeFiles/ckvfs_store.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
