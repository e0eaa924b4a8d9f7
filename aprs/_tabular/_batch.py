"""Worker side: turn a tabular mini-batch payload into the DataFrame run() receives.

    payload (pickled TableSlice, or a list of them for a partition spanning files)
        ──► read_slice per part ──► one DataFrame + partition_key_value + dataset name

Such payloads travel with ``KIND_TABLE`` (aprs._bridge._protocol) as their Attempt / RunBatch
kind.
"""

from __future__ import annotations

import pickle
from typing import Any

from ._read import read_slice
from ._slice import RowCount, RowWindow, TableSlice

__all__ = ("RowsRead", "describe", "read_table_batch")


class RowsRead:
    """What a ``RowCount`` payload decodes to: the slice's rows, and no DataFrame."""

    __slots__ = ("rows",)

    def __init__(self, rows: int) -> None:
        self.rows = rows


def read_table_batch(payload: bytes) -> tuple[Any, dict[str, Any], str]:
    """(DataFrame, partition_key_value, dataset name); raises TableReadError.

    A ``RowCount`` payload gives ``RowsRead`` instead of a DataFrame.
    """
    obj = pickle.loads(payload)
    if isinstance(obj, RowCount):  # isolate_failures: how many rows, nothing else
        table = obj.table
        return RowsRead(len(read_slice(table))), {}, table.dataset
    window = obj if isinstance(obj, RowWindow) else None
    if window is not None:
        obj = window.table
    parts: list[TableSlice] = obj if isinstance(obj, list) else [obj]
    frames = [read_slice(part) for part in parts]
    if len(frames) == 1:
        df = frames[0]
    else:
        import pandas as pd

        df = pd.concat(frames, ignore_index=True)
    if window is not None:  # a part of a failing mini-batch (isolate_failures)
        df = df.iloc[window.offset : window.offset + window.count]
    first = parts[0]
    return df, dict(first.key_value or {}), first.dataset


def describe(payload: bytes) -> list[str]:
    """The parts of a payload as "file, bytes a-b" strings (parent: failure records).

    A row window adds "rows a-b of the mini-batch" first.
    """
    obj = pickle.loads(payload)
    if isinstance(obj, RowCount):
        return [obj.where(), obj.table.where()]
    window = obj if isinstance(obj, RowWindow) else None
    if window is not None:
        obj = window.table
    parts: list[TableSlice] = obj if isinstance(obj, list) else [obj]
    where = [part.where() for part in parts]
    return [window.where(), *where] if window is not None else where
