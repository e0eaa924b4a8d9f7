"""In-memory inputs for the Python API: any iterable or async iterable, consumed lazily."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from typing import Any

from .._errors import InputError
from ._files import FileDataset
from ._tabular import TabularDataset

__all__ = ("IterableInput", "as_input")


class IterableInput:
    """Wraps an iterable or async iterable; items reach run() as a list per mini-batch."""

    __slots__ = ("source",)

    def __init__(self, source: Iterable[Any] | AsyncIterable[Any]) -> None:
        self.source = source

    @property
    def is_async(self) -> bool:
        return hasattr(self.source, "__aiter__")

    def __repr__(self) -> str:
        return f"IterableInput({type(self.source).__name__})"


def as_input(obj: object, index: int) -> FileDataset | TabularDataset | IterableInput:
    """Classify one entry of ``inputs``."""
    if isinstance(obj, (FileDataset, TabularDataset, IterableInput)):
        return obj
    if isinstance(obj, (str, bytes)) or hasattr(obj, "__fspath__"):
        raise InputError(
            f"inputs[{index}] is the path {obj!r}; wrap paths in "
            f"FileDataset.from_files({obj!r}) so aprs knows to pass file paths to run()."
        )
    if hasattr(obj, "__aiter__") or hasattr(obj, "__iter__"):
        return IterableInput(obj)  # type: ignore[arg-type]
    raise InputError(
        f"inputs[{index}] is a {type(obj).__name__}, which aprs cannot split into "
        "mini-batches. Pass FileDataset.from_files(...) or an iterable of items."
    )
