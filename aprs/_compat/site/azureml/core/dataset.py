"""aprs's stand-in for ``azureml.core.dataset``: ``Dataset`` imports, any use fails."""

from aprs._compat._dataset import Dataset
from aprs._compat._guard import unsupported_getattr

__all__ = ["Dataset"]
__getattr__ = unsupported_getattr("azureml.core.dataset")
