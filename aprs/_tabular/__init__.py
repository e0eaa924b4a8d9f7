"""Tables: slice descriptors shared by both sides, the worker-side reader and row formatter.

    parent (aprs._datasets._tabular)            worker (this package)
    TabularDataset ──► plan ──► TableSlice ──pickled──► read_slice ──► DataFrame ──► run()
                                                        format_result ◄── DataFrame / list

Nothing here imports pyarrow or pandas at import time: only a worker that receives a table
slice (or formats a DataFrame) loads them.
"""

from __future__ import annotations

from ._slice import HEADER_MODES, TableOptions, TableSlice

__all__ = ("HEADER_MODES", "TableOptions", "TableSlice")
