"""Wire formats shared by drivers and virtual devices: register maps, codecs, key sets (no I/O)."""
