"""aprs's stand-in for ``azureml.core``: ``Model`` and ``Run`` (offline), ``Dataset``
(importable, any use fails), nothing else."""

from aprs._compat._dataset import Dataset
from aprs._compat._guard import unsupported_getattr
from aprs._compat._model import Model
from aprs._compat._run import Run

__all__ = ["VERSION", "Dataset", "Model", "Run"]
VERSION = "0.0.0+aprs"  # not azureml-core: aprs's offline stand-in
__getattr__ = unsupported_getattr("azureml.core")
