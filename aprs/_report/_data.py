"""Read a job's logs into one ReportData (no plotting here)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .._joblog_read import (
    FailureGroup,
    group_failures,
    read_failures,
    read_minibatches,
)
from .._status import collect_status

__all__ = ("ReportData", "Try", "load")


@dataclass(frozen=True, slots=True)
class Try:
    """One row of logs/minibatches.jsonl, times relative to the first run's start."""

    index: int
    attempt: int
    worker: int
    pid: int
    start: float
    end: float
    items_in: int
    items_out: int
    status: str
    part: tuple[int, int] | None = None  # (offset, count) in a bisected mini-batch

    @property
    def key(self) -> tuple[int, int, int]:
        """(index, try, part offset or -1): one try, also among a mini-batch's parts."""
        return self.index, self.attempt, self.part[0] if self.part else -1

    @property
    def label(self) -> str:
        """ "3" for a whole mini-batch's try, "1 of items 4-5" for a part's."""
        if self.part is None:
            return str(self.attempt)
        offset, count = self.part
        if count == 0:  # a table slice read for its row count, run() not called
            return f"{self.attempt} (row count only)"
        items = (
            f"item {offset}" if count == 1 else f"items {offset}-{offset + count - 1}"
        )
        return f"{self.attempt} of {items}"

    @property
    def run_s(self) -> float:
        return self.end - self.start


@dataclass(slots=True)
class ReportData:
    output_dir: str
    status: dict[str, Any]
    tries: list[Try]
    t0: float  # wall-clock seconds of time 0
    runs: list[dict[str, Any]]
    failures: list[FailureGroup]
    errors_by_try: dict[tuple[int, int, int], str] = field(default_factory=dict)


def load(output_dir: str) -> ReportData:
    """Everything the page shows; raises UsageError when there is no job there."""
    status = collect_status(output_dir)  # UsageError for a directory without a job
    logs = os.path.join(output_dir, "logs")
    runs, rows = read_minibatches(logs)
    starts = [float(r["started"]) for r in runs if "started" in r]
    t0 = min([*starts, *(float(r[4]) for r in rows)], default=0.0)
    tries = [
        Try(
            int(r[0]),
            int(r[1]),
            int(r[2]),
            int(r[3]),
            float(r[4]) - t0,
            float(r[5]) - t0,
            int(r[6]),
            int(r[7]),
            str(r[8]),
            (int(r[9][0]), int(r[9][1])) if len(r) > 9 else None,
        )
        for r in rows
    ]
    records = read_failures(logs)
    errors = {
        (
            int(r["mini_batch_index"]),
            int(r["try"]),
            _offset(r),
        ): f"{r.get('error_type')}: {str(r.get('message') or '')[:200]}"
        for r in records
        if isinstance(r.get("mini_batch_index"), int) and isinstance(r.get("try"), int)
    }
    return ReportData(
        output_dir=os.path.abspath(output_dir),
        status=status,
        tries=tries,
        t0=t0,
        runs=runs,
        failures=group_failures(records),
        errors_by_try=errors,
    )


def _offset(record: dict[str, Any]) -> int:
    """The part offset of a failure record (isolate_failures), -1 for a whole try."""
    part = record.get("part")
    return int(part[0]) if isinstance(part, list) and part else -1
