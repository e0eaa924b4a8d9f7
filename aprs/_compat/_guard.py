"""Clear errors for the parts of ``azureml`` the compatibility layer does not provide.

    import azureml.data  ──► real finders: not found ──► _UnsupportedFinder (last) ──► ImportError
    from azureml.core import Workspace ──► module __getattr__ ──► ImportError

Both messages name aprs's compatibility layer and list what it supports. The finder is
installed only by the layer's own ``azureml`` package, so a real install is never touched.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from types import FrameType, ModuleType
from typing import Any

__all__ = (
    "SUPPORTED",
    "install_finder",
    "layer_message",
    "unsupported",
    "unsupported_getattr",
)

SUPPORTED = (
    "azureml.core.Model (Model.get_model_path), azureml.core.Run (Run.get_context() with "
    "log, log_row, log_list, log_table, tag, upload_file, register_model, parent, id, "
    "experiment), azureml.core.model.Model, azureml.core.run.Run, "
    "azureml.core.Dataset (imported only) and azureml_user.parallel_run.EntryScript"
)
_PREFIXES = ("azureml.", "azureml_user.")


def layer_message(what: str, fix: str, detail: str = "") -> str:
    """``what`` is not available: the layer, what it covers (``detail`` after its first
    clause), and ``fix``; the one wording of every refusal of the compatibility layer."""
    return (
        f"{what} is not available: no Azure ML SDK is installed, so aprs's Azure ML "
        f"compatibility layer answers azureml imports{detail}, and it supports only "
        f"{SUPPORTED}. {fix}"
    )


def unsupported(
    what: str, error: type[ImportError] = ImportError, name: str | None = None
) -> ImportError:
    """The error for ``what`` (a module or a name), naming the layer and what it covers."""
    return error(
        layer_message(
            what,
            "Install the real package (pip install azureml-core) in the environment "
            "that runs the workers, or remove that import from the entry script.",
        ),
        name=name,
    )


def unsupported_getattr(module: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` that turns ``from module import Missing`` into our error."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        full = f"{module}.{name}"
        try:  # a submodule of ours not imported yet (``from azureml.core import model``)
            return importlib.import_module(full)
        except ModuleNotFoundError as exc:
            if exc.name != full:
                raise
        raise unsupported(full)

    return __getattr__


class _UnsupportedFinder:
    """Last on ``sys.meta_path``: every azureml module nobody else found fails clearly."""

    @classmethod
    def find_spec(
        cls,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname.startswith(_PREFIXES):
            if _probing():
                return None  # importlib.util.find_spec(...) asks; only an import fails
            raise unsupported(f"The module {fullname}", ModuleNotFoundError, fullname)
        return None


def _probing() -> bool:
    """Is this lookup an ``importlib.util.find_spec`` probe rather than an import?"""
    frame: FrameType | None = sys._getframe(2)  # 0: ours, 1: importlib._bootstrap
    for _ in range(3):
        if frame is None:
            return False
        if frame.f_globals.get("__name__") == "importlib.util":
            return True
        frame = frame.f_back
    return False


def install_finder() -> None:
    """Append the finder once (idempotent)."""
    if _UnsupportedFinder not in sys.meta_path:
        sys.meta_path.append(_UnsupportedFinder)
