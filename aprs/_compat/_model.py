"""``azureml.core.Model`` for entry scripts: where is model NAME on this machine?

    Model.get_model_path(name, version)
      1. the job's models: --model NAME=PATH / models: in a job file   (env APRS_MODELS)
      2. $AZUREML_MODEL_DIR/<name>[/<version or highest>/<its one entry>]  (--model-dir)
      3. ./azureml-models/<name>/<version or highest>/<its one entry>   (azureml-core's cache)
      4. ./<name>                                                       (azureml-core's fallback)
      else ModelNotFoundException naming every place searched and the --model fix

Steps 3 and 4 follow azureml-core's offline lookup (``Model._get_model_path_local``); paths
are relative to the worker's working directory, as there.
"""

from __future__ import annotations

import json
import os
from typing import Any, NoReturn

from . import MODELS_ENV
from ._guard import unsupported
from ._registry import CACHE_DIR, find_cached

__all__ = ("Model", "ModelNotFoundException", "job_models")


class ModelNotFoundException(Exception):
    """No model of that name exists on this machine."""


def job_models() -> dict[str, str]:
    """The models the job was given: ``{name: absolute path}``."""
    raw = os.environ.get(MODELS_ENV)
    if not raw:
        return {}
    value = json.loads(raw)
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


class Model:
    """The offline part of ``azureml.core.Model``: ``get_model_path`` only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise unsupported("azureml.core.Model(workspace, ...) (a workspace model)")

    @staticmethod
    def get_model_path(
        model_name: str, version: int | None = None, _workspace: Any = None
    ) -> str:
        """The local path of model ``model_name`` (see the module docstring for the order).

        Raises:
            ModelNotFoundException: the model is in none of the places searched.
        """
        if not isinstance(model_name, str) or not model_name:
            raise ModelNotFoundException(
                f"model_name must be a non-empty str; got {model_name!r}"
            )
        if version is not None and (
            not isinstance(version, int) or isinstance(version, bool)
        ):
            raise ModelNotFoundException(f"version should be an int; got {version!r}")
        found = _lookup(model_name, version)
        if found is None:
            _not_found(model_name, version)
        return found

    @staticmethod
    def register(*args: Any, **kwargs: Any) -> NoReturn:
        raise unsupported(
            "azureml.core.Model.register (use Run.register_model offline)"
        )


def _lookup(name: str, version: int | None) -> str | None:
    models = job_models()
    if name in models:
        return models[name]
    model_dir = os.environ.get("AZUREML_MODEL_DIR")
    if model_dir and os.path.exists(os.path.join(model_dir, name)):
        try:  # a registry folder (<name>/<version>/<one entry>) ...
            found = find_cached(model_dir, name, version)
        except ValueError:  # ... or a model folder that has numbered parts of its own
            found = None
        return found or os.path.join(model_dir, name)
    try:
        found = find_cached(CACHE_DIR, name, version)
    except ValueError as exc:
        raise ModelNotFoundException(str(exc)) from exc
    if found is not None:
        return found
    return name if os.path.exists(name) else None


def _not_found(name: str, version: int | None) -> NoReturn:
    known = ", ".join(sorted(job_models())) or "none"
    where = f"version {version} of " if version is not None else ""
    raise ModelNotFoundException(
        f"Model {where}{name!r} was not found: the job's models ({known}), "
        f"$AZUREML_MODEL_DIR/{name}, ./{CACHE_DIR}/{name}/<version>/ and ./{name} "
        f"(in {os.getcwd()}) were searched. Give it to the job with --model {name}=PATH "
        "(or models: in the job file)."
    )
