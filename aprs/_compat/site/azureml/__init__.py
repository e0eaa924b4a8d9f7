"""aprs's stand-in for the ``azureml`` package (only used when no Azure ML SDK is installed)."""

from aprs._compat._guard import install_finder, unsupported_getattr

install_finder()
__getattr__ = unsupported_getattr("azureml")
