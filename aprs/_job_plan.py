"""JobPlan: everything one job needs to run, as a record (no engine behind it).

    ParallelRunStep._plan (aprs._step) ──► JobPlan ──► run_job (aprs._scheduler)
    (validated config, inputs, paths,                  (read only: the job never
     WorkerSpec, resume state)                          changes its plan)

Invariants: built and validated by ParallelRunStep, read only afterwards. Importing this
module imports nothing of the engine (every type named here is imported for type checking
only): building a plan loads no task group or backend. ``aprs._step`` still imports it
only when it builds the plan (creating the dataclass costs ~2 ms, which would come before
the fork server's early launch otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._accounting import Thresholds
    from ._backends import WorkerSpec
    from ._datasets import FileDataset, IterableInput, TabularDataset
    from ._journal import JournalState
    from ._progress import LiveStats

__all__ = ("JobPlan",)


@dataclass(slots=True)
class JobPlan:
    """Everything run_job needs; built and validated by ParallelRunStep."""

    spec: WorkerSpec
    sources: list[FileDataset | TabularDataset | IterableInput]
    unit: str  # "count" | "bytes" | "rows" (tables)
    batch_value: int
    thresholds: Thresholds
    append_row: bool
    output_dir: str
    output_file: str | None
    partial_file: str | None
    log_dir: str
    journal_path: str
    resume: JournalState | None = None
    partition_keys: list[str] | None = None  # one mini-batch per distinct key values
    base_dir: str | None = None
    handle_signals: bool = True
    on_progress: Callable[[LiveStats], None] | None = None  # the CLI's display
    progress_interval_s: float = 0.25
    items_expected: int | None = None  # totals when known before reading (files, lists)
    batches_expected: int | None = None
    compute_target: str = "local"  # the backend (aprs._backends.create_backend)
    framed_output: bool = False  # bodies carry a header to write once (TableOutput)
    parquet_output: bool = False  # bodies are Arrow IPC, written as Parquet row groups
    isolate_failures: bool = False  # bisect failing mini-batches (aprs._isolate)
