"""Inputs: FileDataset (files, folders, globs) and in-memory (async) iterables, read lazily."""

from __future__ import annotations

from ._files import FileDataset
from ._iterables import IterableInput, as_input

__all__ = ("FileDataset", "IterableInput", "as_input")
