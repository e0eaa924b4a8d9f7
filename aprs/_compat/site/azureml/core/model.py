"""aprs's stand-in for ``azureml.core.model``."""

from aprs._compat._guard import unsupported_getattr
from aprs._compat._model import Model, ModelNotFoundException

__all__ = ["Model", "ModelNotFoundException"]
__getattr__ = unsupported_getattr("azureml.core.model")
