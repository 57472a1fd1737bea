# CMake generated Testfile for 
# Source directory: /work/main/vfs
# Build directory: /work/main/build/vfs
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
