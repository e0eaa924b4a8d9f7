"""Inputs: FileDataset (files, folders, globs), TabularDataset (tables read as DataFrames)
and in-memory (async) iterables, all read lazily. ``Dataset`` is Azure's spelling of both."""

from __future__ import annotations

from ._files import FileDataset
from ._iterables import IterableInput, as_input
from ._tabular import TabularDataset

__all__ = ("Dataset", "FileDataset", "IterableInput", "TabularDataset", "as_input")


class Dataset:
    """Azure ML's spelling: ``Dataset.File.from_files(...)``,
    ``Dataset.Tabular.from_delimited_files(...)``."""

    File = FileDataset
    Tabular = TabularDataset
