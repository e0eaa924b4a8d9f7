"""aprs's stand-in for ``azureml.core.run``."""

from aprs._compat._guard import unsupported_getattr
from aprs._compat._run import Run

__all__ = ["Run"]
__getattr__ = unsupported_getattr("azureml.core.run")
