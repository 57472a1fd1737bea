file(REMOVE_RECURSE
  "libckvfs.a"
  "libckvfs.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang )
  include(CMakeFiles/ckvfs.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
