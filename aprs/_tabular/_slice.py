"""The descriptor of one tabular mini-batch: which bytes or rows of which file to read.

    planner (parent) ──► TableSlice(path, start, stop, ...) ──pickle──► worker reads the range

A slice is tiny (a path, two offsets, the options), so the parent's memory does not grow with
the data: a 5 GB CSV is planned as thousands of descriptors, never loaded. Invariants:
a slice never crosses a file; delimited and JSON Lines slices are byte ranges that start at a
line start and end just after a newline (or at the end of the file); Parquet slices are row
ranges [start, stop) of the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = (
    "HEADER_MODES",
    "RowCount",
    "RowWindow",
    "TableFormat",
    "TableOptions",
    "TableSlice",
)

TableFormat = Literal["delimited", "parquet", "json_lines"]

HEADER_MODES = (
    "all_files_same_headers",
    "from_first_file",
    "no_header",
    "all_files_different_headers",
)
"""Azure's header behaviours for delimited files (True = all_files_same_headers)."""


@dataclass(frozen=True, slots=True)
class TableOptions:
    """How to read the files of one tabular dataset."""

    format: TableFormat
    separator: str = ","
    header: str = "all_files_same_headers"
    encoding: str = "utf8"

    def has_header(self, first_file: bool) -> bool:
        """Does a delimited file start with a header line?"""
        if self.format != "delimited" or self.header == "no_header":
            return False
        return first_file or self.header != "from_first_file"


@dataclass(frozen=True, slots=True)
class TableSlice:
    """One tabular mini-batch (parent-made, worker-read).

    Attributes:
        path: the absolute path of the file.
        options: the dataset's read options.
        start, stop: delimited / JSON Lines: byte range [start, stop); Parquet: row range.
            ``stop == -1`` reads to the end of the file (its metadata could not be read).
        rows: number of rows when the parent knows it (Parquet, row batching), else -1.
        columns: the dataset's columns (from its first file), for the schema check; None
            when unknown or when files may differ.
        header_file: the file whose first line names the columns (``from_first_file``).
        dataset: the input's name, for ``mini_batch_context.dataset``.
        key_value: the partition key values of this mini-batch, or None.
        constants: columns added to every row (Hive ``key=value`` folder names).
        match: keep only the rows whose columns equal ``key_value`` (partition_keys that
            are columns; the slice is then a whole file).
    """

    path: str
    options: TableOptions
    start: int
    stop: int
    rows: int = -1
    columns: tuple[str, ...] | None = None
    header_file: str | None = None
    dataset: str = ""
    key_value: dict[str, Any] | None = None
    constants: dict[str, str] = field(default_factory=dict)
    match: bool = False

    def where(self) -> str:
        """A human description of the slice, for error messages."""
        if self.options.format == "parquet":
            end = "the end" if self.stop < 0 else str(self.stop)
            return f"{self.path}, rows {self.start} to {end}"
        return f"{self.path}, bytes {self.start}-{self.stop}"


@dataclass(frozen=True, slots=True)
class RowWindow:
    """Rows ``[offset, offset + count)`` of a tabular mini-batch (``isolate_failures``).

    The worker reads ``table`` (a slice, or the slices of one partition) as usual, then
    keeps these rows with ``iloc``; their index labels stay those of the whole mini-batch.
    The parent learns a slice's row count from a worker, so it never parses a row.
    """

    table: TableSlice | list[TableSlice]
    offset: int
    count: int

    def where(self) -> str:
        last = self.offset + self.count - 1
        rows = f"row {self.offset}" if self.count == 1 else f"rows {self.offset}-{last}"
        return f"{rows} of the mini-batch"


@dataclass(frozen=True, slots=True)
class RowCount:
    """Read ``table`` and report its rows; run() is not called (``isolate_failures``).

    Sent when a byte-range slice's tries crashed or hung before any reported its rows, so
    the parent can cut it into row windows.
    """

    table: TableSlice

    def where(self) -> str:
        return "the row count of the mini-batch (run() not called)"
