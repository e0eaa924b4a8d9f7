"""aprs's stand-in for ``azureml.core``: ``Model`` and ``Run`` (offline), nothing else."""

from aprs._compat._guard import unsupported_getattr
from aprs._compat._model import Model
from aprs._compat._run import Run

__all__ = ["Model", "Run"]
__getattr__ = unsupported_getattr("azureml.core")
