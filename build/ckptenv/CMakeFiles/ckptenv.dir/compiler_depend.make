# Empty compiler generated dependencies file for ckptenv.
# This may be replaced when dependencies are built.
