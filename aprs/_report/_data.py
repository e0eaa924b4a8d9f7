"""Read a job's logs into one ReportData (no plotting here)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .._joblog import FailureGroup, group_failures, read_failures, read_minibatches
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
    errors_by_try: dict[tuple[int, int], str] = field(default_factory=dict)


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
        )
        for r in rows
    ]
    records = read_failures(logs)
    errors = {
        (int(r["mini_batch_index"]), int(r["try"])): f"{r.get('error_type')}: "
        f"{str(r.get('message') or '')[:200]}"
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
