# CMake generated Testfile for 
# Source directory: /work/main/ckptenv
# Build directory: /work/main/build/ckptenv
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
