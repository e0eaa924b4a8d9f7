"""``azureml.core.Dataset`` offline: importable, every use fails with a clear error.

Microsoft's own entry scripts import ``Dataset`` without using it (the batch-scoring
tutorial's ``from azureml.core.dataset import Dataset``, the AutoML forecasting scripts'
``from azureml.core import Dataset, Run``): the import must work. Datasets live in a
workspace, so ``Dataset.get_by_name(...)``, ``Dataset.Tabular...`` and ``Dataset()`` raise
``NotImplementedError`` naming the layer; ``run()`` gets its mini-batch data directly.
"""

from __future__ import annotations

from typing import Any, NoReturn

from ._guard import layer_message

__all__ = ("Dataset",)


def _refuse(what: str) -> NoReturn:
    raise NotImplementedError(
        layer_message(
            what,
            "Read the data run() receives (or pass a path in the script's arguments), "
            "or install the real package (pip install azureml-core) in the environment "
            "that runs the workers.",
            detail="; it lets scripts import azureml.core.Dataset but cannot reach a "
            "workspace's datasets",
        )
    )


class _DatasetType(type):
    def __getattr__(cls, name: str) -> Any:
        if name.startswith("_"):  # probes (hasattr, inspect, asyncio): not the API
            raise AttributeError(name)
        _refuse(f"azureml.core.Dataset.{name}")


class Dataset(metaclass=_DatasetType):
    """Importable stand-in; using it raises ``NotImplementedError``."""

    def __new__(cls, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("azureml.core.Dataset()")
