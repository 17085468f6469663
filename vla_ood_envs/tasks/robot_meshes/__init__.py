"""Light render meshes of the robots the tasks load (`lod`: the Panda's decimated visual meshes in `panda_lod/`)."""
