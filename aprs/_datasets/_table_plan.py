"""Plan tabular mini-batches as TableSlice descriptors, without parsing a single row.

    files of a TabularDataset ──► per file, lazily:
      delimited / JSON Lines, bytes: seek to start + budget, read on to the next newline
      delimited / JSON Lines, rows:  count newlines block by block (1 MiB at a time)
      Parquet, bytes or rows:        the footer's row groups ──► row ranges
    ──► TableSlice(path, start, stop, rows, ...) one per mini-batch

Memory is O(1 MiB) whatever the file size: the planner holds one block at most, and the
producer pulls slices one at a time. A slice never crosses a file. A Parquet file whose
footer cannot be read becomes one slice over the whole file, so the worker reports the error
for that mini-batch (with the file) instead of the whole job failing here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, BinaryIO, Literal

from .._tabular import TableSlice
from ._tabular import TabularDataset

__all__ = ("Unit", "data_start", "plan")

Unit = Literal["bytes", "rows"]
_BLOCK = 1 << 20
_WALK = 64  # lines walked one by one around a guessed cut
_BOM = b"\xef\xbb\xbf"


def plan(
    ds: TabularDataset, base: str | None, unit: str, value: int
) -> Iterator[TableSlice]:
    """Slices of every file of ``ds`` in path order (blocking: run in a thread).

    ``unit`` is "rows" (``value`` rows per slice) or "bytes" (about ``value`` bytes).
    """
    by: Unit = "rows" if unit == "rows" else "bytes"
    files = ds.resolve(base)
    if ds.options.format != "parquet":  # an empty text file has no rows (nor header)
        files = [f for f in files if os.path.getsize(f) > 0]
    first = files[0] if files else None
    columns = _parquet_columns(first) if ds.options.format == "parquet" else None
    for index, path in enumerate(files):
        proto = TableSlice(
            path,
            ds.options,
            0,
            0,
            columns=columns,
            header_file=first if ds.options.format == "delimited" else None,
            dataset=ds.name,
        )
        if ds.options.format == "parquet":
            yield from _parquet(proto, by, value)
        else:
            yield from _text(proto, ds.options.has_header(index == 0), by, value)


# -- delimited and JSON Lines: byte ranges at line ends ------------------------------------


def _text(
    proto: TableSlice, header: bool, unit: Unit, value: int
) -> Iterator[TableSlice]:
    path = proto.path
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        start = _data_start(f, header)
        if unit == "bytes":
            yield from _by_bytes(f, proto, start, size, value)
        else:
            yield from _by_rows(f, proto, start, size, value)


def data_start(path: str, header: bool) -> int:
    """Byte offset of the first data row of ``path``."""
    with open(path, "rb") as f:
        return _data_start(f, header)


def _data_start(f: BinaryIO, header: bool) -> int:
    """Byte offset of the first data row: after a BOM and the header line."""
    start = 3 if f.read(3) == _BOM else 0
    f.seek(start)
    if header:
        f.readline()
        start = f.tell()
    return start


def _by_bytes(
    f: BinaryIO, proto: TableSlice, start: int, size: int, budget: int
) -> Iterator[TableSlice]:
    while start < size:
        stop = _line_end(f, start + budget, size)
        yield _with(proto, start, stop, -1)
        start = stop


def _line_end(f: BinaryIO, target: int, size: int) -> int:
    """The offset just after the first newline at or after ``target - 1`` (or ``size``)."""
    if target >= size:
        return size
    f.seek(target - 1)
    pos = target - 1
    while True:
        block: bytes = f.read(64 * 1024)
        if not block:
            return size
        found = block.find(b"\n")
        if found >= 0:
            return pos + found + 1
        pos += len(block)


def _by_rows(
    f: BinaryIO, proto: TableSlice, start: int, size: int, rows: int
) -> Iterator[TableSlice]:
    """Slices of ``rows`` lines each, found by counting newlines block by block.

    Each block is counted once; a cut is found from the block's mean line length
    (``_nth_newline_end``), so planning costs about one scan of the file.
    """
    f.seek(start)
    begin, pos, need = start, start, rows
    while True:
        block: bytes = f.read(_BLOCK)
        if not block:
            break
        offset = 0
        left = block.count(b"\n")
        mean = len(block) / max(1, left)
        while left >= need:
            cut = _nth_newline_end(block, offset, need, mean)
            yield _with(proto, begin, pos + cut, rows)
            begin, offset, left, need = pos + cut, cut, left - need, rows
        need -= left
        pos += len(block)
    if begin < size:
        tail = rows - need + (0 if _ends_with_newline(f, size) else 1)
        if tail > 0:
            yield _with(proto, begin, size, tail)


def _nth_newline_end(block: bytes, offset: int, n: int, mean: float) -> int:
    """The index just after the n-th newline of block[offset:] (which holds >= n of them).

    Guess the place from the mean line length, count up to it, then walk the few lines
    between the guess and the cut with find / rfind; a guess far off (lines of very
    different lengths) is refined by a binary search on counts instead.
    """
    size = len(block)
    pos = min(size, offset + round(n * mean))
    seen = block.count(b"\n", offset, pos)
    while n - seen > _WALK:  # well short: jump ahead by the estimate
        ahead = min(size, pos + max(1, round((n - seen) * mean)))
        seen += block.count(b"\n", pos, ahead)
        pos = ahead
    if seen - n > _WALK:  # well past: binary search in [offset, pos)
        lo, hi = offset, pos
        while lo < hi:
            mid = (lo + hi) // 2
            if block.count(b"\n", offset, mid) >= n:
                hi = mid
            else:
                lo = mid + 1
        return lo
    if seen >= n:  # the last newline before pos is the seen-th: step back to the n-th
        for _ in range(seen - n + 1):
            pos = block.rfind(b"\n", offset, pos)
        return pos + 1
    for _ in range(n - seen):
        pos = block.find(b"\n", pos) + 1
    return pos


def _ends_with_newline(f: BinaryIO, size: int) -> bool:
    f.seek(size - 1)
    return bool(f.read(1) == b"\n")


def _with(proto: TableSlice, start: int, stop: int, rows: int) -> TableSlice:
    return TableSlice(
        proto.path,
        proto.options,
        start,
        stop,
        rows,
        proto.columns,
        proto.header_file,
        proto.dataset,
        proto.key_value,
        proto.constants,
        proto.match,
    )


# -- Parquet: row ranges from the footer's row groups --------------------------------------


def _parquet_columns(path: str | None) -> tuple[str, ...] | None:
    if path is None:
        return None
    import pyarrow.parquet as pq

    try:
        return tuple(pq.read_schema(path).names)
    except Exception:
        return None  # the worker reading this file reports why


def _parquet(proto: TableSlice, unit: Unit, value: int) -> Iterator[TableSlice]:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(proto.path)
    except Exception:
        yield _with(proto, 0, -1, -1)  # unreadable: one slice, the worker says why
        return
    if unit == "rows":
        total = meta.num_rows
        for start in range(0, total, value):
            stop = min(total, start + value)
            yield _with(proto, start, stop, stop - start)
        return
    yield from _parquet_bytes(proto, meta, value)


def _parquet_bytes(proto: TableSlice, meta: Any, budget: int) -> Iterator[TableSlice]:
    """Consecutive row groups up to ``budget`` bytes; a bigger row group is cut in rows."""
    begin = row = 0
    acc = 0
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        n, nbytes = group.num_rows, max(1, group.total_byte_size)
        if acc and acc + nbytes > budget:
            yield _with(proto, begin, row, row - begin)
            begin, acc = row, 0
        if nbytes > budget:
            parts = -(-nbytes // budget)
            per = max(1, -(-n // parts))
            for start in range(row, row + n, per):
                stop = min(row + n, start + per)
                yield _with(proto, start, stop, stop - start)
            begin = row + n
        else:
            acc += nbytes
        row += n
    if row > begin:
        yield _with(proto, begin, row, row - begin)
