"""aprs's stand-in for ``azureml_user`` (the package Azure's runtime puts next to scripts)."""

from aprs._compat._guard import install_finder

install_finder()
