"""Parquet output: workers send Arrow IPC streams, the parent appends them as row groups.

    worker: DataFrame ──► pyarrow.Table ──► IPC stream bytes (the body of BatchDone)
    parent (writer thread, in input order): IPC ──► Table ──► ParquetWriter.write_table
    end of the job (also a failed or stopped one): footer written, a valid Parquet file

The first non-empty result fixes the schema; later ones are cast to it (a column that is
all null in one mini-batch still fits). A Parquet file cannot be appended after its footer,
so a job writing Parquet does not resume: a rerun starts afresh (reuse still works).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ("ParquetSink", "to_ipc")


def to_ipc(result: Any) -> tuple[int, bytes]:
    """(rows, IPC stream) of a DataFrame, pyarrow Table or list (of dicts, or values)."""
    import pyarrow as pa

    if isinstance(result, list):
        dicts = result and all(isinstance(r, dict) for r in result)
        table = pa.Table.from_pylist(result) if dicts else pa.table({"value": result})
    elif isinstance(result, pa.Table):
        table = result
    else:
        table = pa.Table.from_pandas(result, preserve_index=False)
    if table.num_rows == 0:
        return 0, b""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return table.num_rows, sink.getvalue().to_pybytes()


class ParquetSink:
    """Appends IPC chunks to one Parquet file as row groups (blocking: writer thread)."""

    def __init__(self) -> None:
        self._writer: Any = None
        self._file: Any = None

    def write(self, fd: int, chunks: list[bytes]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        for chunk in chunks:
            # one stream per mini-batch, or several (the parts of an isolated mini-batch)
            source = pa.BufferReader(chunk)
            while source.tell() < len(chunk):
                table = pa.ipc.open_stream(source).read_all()
                if self._writer is None:
                    self._file = os.fdopen(os.dup(fd), "wb")
                    self._writer = pq.ParquetWriter(self._file, table.schema)
                elif table.schema != self._writer.schema:
                    table = table.cast(self._writer.schema)
                self._writer.write_table(table)
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Write the footer (the file is valid from here on)."""
        if self._writer is not None:
            self._writer.close()
            self._file.close()
            self._writer = self._file = None
