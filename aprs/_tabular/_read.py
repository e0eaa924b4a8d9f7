"""Worker side: read one TableSlice into a pandas DataFrame with pyarrow.

    TableSlice ──► delimited:  read bytes [start, stop) ──► pyarrow.csv (header from file)
               ──► JSON Lines: read bytes [start, stop) ──► pyarrow.json
               ──► Parquet:    row groups covering rows [start, stop) ──► slice
               ──► DataFrame (integer columns with nulls become pandas' nullable Int64)

Kept per worker process (slices of one file follow each other): the column names of each
file version (path, mtime, size), the open ParquetFile of the last Parquet file and its last
row group (or whole file, for partition keys).

Every problem (unreadable file, malformed row, corrupt row group, columns that differ from
the dataset's first file) raises TableReadError with the file and the line or row group, and
``items``: the rows the slice holds as far as known, counted as failed items. The message is
the whole report: no traceback is shown for it.
"""

from __future__ import annotations

import io
import os
from typing import Any

from ._slice import TableSlice

__all__ = ("TableReadError", "column_names", "key_batches", "read_slice")

_BOM = b"\xef\xbb\xbf"
_cache: dict[tuple[Any, ...], Any] = {}  # the last row group (or whole file) read
_headers: dict[tuple[Any, ...], tuple[str, ...]] = {}  # column names per file version
_parquet_file: dict[
    tuple[Any, ...], Any
] = {}  # the last Parquet file opened (footer read)


class TableReadError(Exception):
    """A table slice cannot be read; the message names the file and the line or row group."""

    def __init__(self, message: str, items: int = 1) -> None:
        super().__init__(message)
        self.items = max(1, items)


def read_slice(s: TableSlice) -> Any:
    """The rows of ``s`` as a pandas DataFrame (raises TableReadError)."""
    if s.match:
        table = _matching(s, _whole_file(s))
    else:
        table = _read_table(s)
    df = _to_pandas(table)
    for key, value in s.constants.items():
        df[key] = value
    return df


def _read_table(s: TableSlice) -> Any:
    if s.options.format == "parquet":
        return _read_parquet(s)
    data = _read_bytes(s)
    if s.options.format == "delimited":
        return _read_delimited(s, data)
    return _read_json(s, data)


def _whole_file(s: TableSlice) -> Any:
    """A whole file's table, cached: partitions of one file are read once per worker."""
    try:
        key = ("whole", s.path, os.stat(s.path).st_mtime_ns, s.start)
    except OSError as exc:
        raise TableReadError(f"{s.path}: the file cannot be read: {exc}.") from None
    table = _cache.get(key)
    if table is None:
        table = _read_table(s)
        _cache.clear()
        _cache[key] = table
    return table


def _matching(s: TableSlice, table: Any) -> Any:
    """The rows whose key columns equal ``s.key_value`` (None matches nulls)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    mask = None
    for key, value in (s.key_value or {}).items():
        if key not in table.column_names:
            raise TableReadError(
                f"{s.path} has no column {key!r}, one of partition_keys "
                f"{list(s.key_value or {})}; its columns are {table.column_names}. Add the "
                "column to the file or remove the file from the input."
            )
        column = table.column(key)
        if value is None:
            cond = pc.is_null(column)
        else:
            cond = pc.equal(column, pa.scalar(value, column.type))
        mask = cond if mask is None else pc.and_(mask, cond)
    return table if mask is None else table.filter(mask)


def column_names(s: TableSlice) -> list[str] | None:
    """The columns of the slice's file, without reading rows (None: not known cheaply)."""
    if s.options.format == "parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(s.path).names)
        except Exception:
            return None  # unreadable: the worker reports it
    if s.options.format == "delimited":
        return _columns(s)
    return None


def key_batches(s: TableSlice, keys: list[str]) -> Any:
    """Yield tables of only the ``keys`` columns of the slice's whole file, streamed."""
    import pyarrow as pa

    if s.options.format == "parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(s.path).iter_batches(1 << 16, columns=keys):
            yield pa.Table.from_batches([batch])
    elif s.options.format == "delimited":
        import pyarrow.csv as pacsv

        names = _columns(s)
        reader = pacsv.open_csv(
            _open_at(s),
            read_options=pacsv.ReadOptions(
                encoding=s.options.encoding,
                column_names=names,
                autogenerate_column_names=names is None,
            ),
            parse_options=pacsv.ParseOptions(delimiter=s.options.separator),
            convert_options=pacsv.ConvertOptions(include_columns=keys),
        )
        for batch in reader:
            yield pa.Table.from_batches([batch])
    else:
        yield from _json_key_batches(s, keys)


def _open_at(s: TableSlice) -> Any:
    f = open(s.path, "rb")  # noqa: SIM115 - closed by pyarrow's reader at its end
    f.seek(s.start)
    return f


def _json_key_batches(s: TableSlice, keys: list[str]) -> Any:
    import pyarrow as pa

    with open(s.path, "rb") as f:
        rest = b""
        while True:
            block = f.read(8 << 20)
            data, _, rest = (
                (rest + block).rpartition(b"\n") if block else (rest, b"", b"")
            )
            if data.strip():
                table = _read_json(s, data + b"\n")
                yield pa.table(
                    {
                        k: table.column(k)
                        if k in table.column_names
                        else pa.nulls(len(table))
                        for k in keys
                    }
                )
            if not block:
                return


def _read_bytes(s: TableSlice) -> bytes:
    try:
        with open(s.path, "rb") as f:
            f.seek(s.start)
            return f.read(s.stop - s.start)
    except OSError as exc:
        raise TableReadError(f"{s.where()}: the file cannot be read: {exc}.") from None


def _lines(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _line_of(s: TableSlice, row_in_slice: int) -> int:
    """1-based line number in the file of the slice's ``row_in_slice``-th line (1-based)."""
    with open(s.path, "rb") as f:
        before = f.read(s.start).count(b"\n")
    return before + row_in_slice


# -- delimited ------------------------------------------------------------------------------


def _header(s: TableSlice, path: str) -> list[str]:
    """The column names of ``path``'s first line, cached per file version and options."""
    try:
        st = os.stat(path)
        key = (
            path,
            st.st_mtime_ns,
            st.st_size,
            s.options.encoding,
            s.options.separator,
        )
    except OSError:
        key = None
    names = _headers.get(key) if key is not None else None
    if names is None:
        names = _read_header(s, path)
        if key is not None:
            if len(_headers) >= 64:
                _headers.clear()
            _headers[key] = names
    return list(names)


def _read_header(s: TableSlice, path: str) -> tuple[str, ...]:
    import pyarrow.csv as pacsv

    try:
        with open(path, "rb") as f:
            line = f.readline().removeprefix(_BOM)
        table = pacsv.read_csv(
            io.BytesIO(line),
            read_options=pacsv.ReadOptions(encoding=s.options.encoding),
            parse_options=pacsv.ParseOptions(delimiter=s.options.separator),
        )
    except Exception as exc:
        raise TableReadError(
            f"{path}: the header line cannot be read: {exc}. Fix the file or pass "
            "header=False (--no-header) if it has no header."
        ) from None
    return tuple(str(name) for name in table.column_names)


def _columns(s: TableSlice) -> list[str] | None:
    """The column names for this slice (None: numbered Column1, Column2, ...)."""
    mode = s.options.header
    if mode == "no_header":
        return None
    first = s.header_file or s.path
    if mode == "from_first_file":
        return _header(s, first)
    own = _header(s, s.path)
    if mode == "all_files_same_headers" and first != s.path:
        expected = _header(s, first)
        if own != expected:
            raise TableReadError(
                f"{s.path} has the columns {own} but the first file of the dataset, "
                f"{first}, has {expected}. All files of a dataset must have the same "
                "columns: fix the file, or read it with "
                'header="all_files_different_headers".'
            )
    return own


def _read_delimited(s: TableSlice, data: bytes) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = _columns(s)
    if not data.strip():
        return pa.table({n: pa.array([], pa.null()) for n in names or []})
    read = pacsv.ReadOptions(
        encoding=s.options.encoding,
        use_threads=False,
        column_names=names,
        autogenerate_column_names=names is None,
        block_size=max(1 << 20, len(data) + 1),
    )
    try:
        # no invalid-row handler on the way that succeeds: it costs ~40% of the parse
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=read,
            parse_options=pacsv.ParseOptions(delimiter=s.options.separator),
        )
    except Exception as exc:
        raise _csv_failure(s, data, read, exc) from None
    if names is None:
        table = table.rename_columns(
            [f"Column{i + 1}" for i in range(table.num_columns)]
        )
    return table


def _csv_failure(s: TableSlice, data: bytes, read: Any, first: Exception) -> Exception:
    """Parse again with an invalid-row handler, to name the first malformed row."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    bad: list[Any] = []

    def invalid(row: Any) -> str:
        bad.append(row)
        return "error"

    parse = pacsv.ParseOptions(
        delimiter=s.options.separator, invalid_row_handler=invalid
    )
    try:
        pacsv.read_csv(pa.py_buffer(data), read_options=read, parse_options=parse)
    except Exception as exc:
        return _csv_error(s, data, bad, exc)
    return _csv_error(s, data, [], first)


def _csv_error(s: TableSlice, data: bytes, bad: list[Any], exc: Exception) -> Exception:
    items = _lines(data)
    if bad and bad[0].number is not None:
        row = bad[0]
        line = _line_of(s, row.number)
        text = row.text if len(row.text) < 200 else row.text[:200] + "..."
        return TableReadError(
            f"{s.path}, line {line}: malformed row: expected {row.expected_columns} "
            f"columns, got {row.actual_columns}: {text!r}. Fix the row (quote values "
            "that contain the separator).",
            items,
        )
    detail = str(exc).removeprefix("CSV parse error: ")
    return TableReadError(f"{s.where()}: the rows cannot be parsed: {detail}.", items)


# -- JSON Lines -----------------------------------------------------------------------------


def _read_json(s: TableSlice, data: bytes) -> Any:
    import pyarrow as pa
    import pyarrow.json as pajson

    if s.options.encoding != "utf8":
        data = data.decode(s.options.encoding).encode()
    if not data.strip():
        return pa.table({})
    try:
        return pajson.read_json(
            io.BytesIO(data),
            read_options=pajson.ReadOptions(
                use_threads=False, block_size=max(1 << 20, len(data) + 1)
            ),
        )
    except Exception as exc:
        raise _json_error(s, data, exc) from None


def _json_error(s: TableSlice, data: bytes, exc: Exception) -> TableReadError:
    import orjson

    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            problem = f"invalid JSON ({error})"
        else:
            if isinstance(value, dict):
                continue
            problem = f"a JSON {type(value).__name__}, not an object"
        text = line[:200].decode(errors="replace")
        return TableReadError(
            f"{s.path}, line {_line_of(s, number)}: {problem}: {text!r}. Each line "
            "must hold one JSON object.",
            _lines(data),
        )
    detail = str(exc).removeprefix("JSON parse error: ")
    return TableReadError(
        f"{s.where()}: the rows cannot be read: {detail}.", _lines(data)
    )


# -- Parquet --------------------------------------------------------------------------------


def _read_parquet(s: TableSlice) -> Any:
    import pyarrow as pa

    items = s.rows if s.rows > 0 else 1
    try:
        pf = _open_parquet(s.path)
    except Exception as exc:
        raise TableReadError(
            f"{s.path} is not a readable Parquet file: {exc}. Replace the file, or "
            "remove it from the input.",
            items,
        ) from None
    names = tuple(pf.schema_arrow.names)
    if s.columns is not None and names != s.columns:
        raise TableReadError(
            f"{s.path} has the columns {list(names)} but the first file of the dataset "
            f"has {list(s.columns)}. All Parquet files of a dataset must have the same "
            "columns.",
            items,
        )
    meta = pf.metadata
    stop = meta.num_rows if s.stop < 0 else s.stop
    parts, first_row, row = [], None, 0
    for index in range(meta.num_row_groups):
        n = meta.row_group(index).num_rows
        if row + n > s.start and row < stop:
            first_row = row if first_row is None else first_row
            parts.append(_row_group(pf, s.path, index, items))
        row += n
    if not parts:
        return pf.schema_arrow.empty_table()
    table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    offset = s.start - (first_row or 0)
    return table.slice(offset, stop - s.start)


def _open_parquet(path: str) -> Any:
    """The file's ParquetFile (footer parsed), kept open for the slices that follow."""
    import pyarrow.parquet as pq

    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size)
    pf = _parquet_file.get(key)
    if pf is None:
        pf = pq.ParquetFile(path)
        for old in _parquet_file.values():
            old.close()
        _parquet_file.clear()
        _parquet_file[key] = pf
    return pf


def _row_group(pf: Any, path: str, index: int, items: int) -> Any:
    try:
        key = (path, os.stat(path).st_mtime_ns, index)
        table = _cache.get(key)
        if table is None:
            table = pf.read_row_group(index)
            _cache.clear()
            _cache[key] = table
        return table
    except Exception as exc:
        raise TableReadError(
            f"{path}, row group {index}: the data cannot be read: {exc}. The file is "
            "corrupt: replace it, or remove it from the input.",
            items,
        ) from None


# -- conversion -----------------------------------------------------------------------------


def _to_pandas(table: Any) -> Any:
    """A DataFrame; integer columns with nulls stay integers (pandas' nullable Int64)."""
    import pandas as pd
    import pyarrow as pa

    df = table.to_pandas(
        use_threads=False
    )  # 10k rows: threads cost more than they give
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_integer(column.type) and column.null_count:
            df[name] = column.to_pandas(types_mapper=lambda _t: pd.Int64Dtype())
    return df
