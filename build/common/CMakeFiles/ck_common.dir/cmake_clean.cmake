file(REMOVE_RECURSE
  "CMakeFiles/ck_common.dir/buf.c.o"
  "CMakeFiles/ck_common.dir/buf.c.o.d"
  "CMakeFiles/ck_common.dir/io.c.o"
  "CMakeFiles/ck_common.dir/io.c.o.d"
  "libck_common.a"
  "libck_common.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/ck_common.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
