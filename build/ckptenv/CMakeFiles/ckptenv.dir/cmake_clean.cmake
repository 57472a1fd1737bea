file(REMOVE_RECURSE
  "CMakeFiles/ckptenv.dir/main.c.o"
  "CMakeFiles/ckptenv.dir/main.c.o.d"
  "ckptenv"
  "ckptenv.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/ckptenv.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
