"""Reading a job's logs back: ``minibatches.jsonl``, ``failures.jsonl``, failures grouped.

    logs/minibatches.jsonl ──► read_minibatches ──► (run markers, rows)          _status, _report
    logs/failures.jsonl    ──► read_failures ──► records ──► group_failures ──► [FailureGroup]
                                                   _status, _report, _joblog.write_result_files
                                                   (job_error.txt)

The readers' contract with the writers lives here: ``MINIBATCHES_FILE`` and
``MINIBATCH_COLUMNS``, which ``_joblog.JobLog`` writes with (the line format is described
there); ``failures.jsonl`` is written by ``_failure_record`` through the ``OrderedWriter``.

Invariants: readers only read, and work on a running or killed job: a missing file reads
as empty, a line that is not JSON (a torn last line) is skipped, and a ``minibatches.jsonl``
line of another shape is left out. Grouping ignores the digits of a message (ids, counts),
so one error in many mini-batches is one group.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = (
    "MINIBATCHES_FILE",
    "MINIBATCH_COLUMNS",
    "FailureGroup",
    "group_failures",
    "read_failures",
    "read_minibatches",
)

MINIBATCH_COLUMNS = (
    "index",
    "try",
    "worker",
    "pid",
    "start",
    "end",
    "items_in",
    "items_out",
    "status",
)
MINIBATCHES_FILE = "minibatches.jsonl"


def _json_lines(path: str) -> Iterator[Any]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return
    for line in data.splitlines():
        try:
            yield orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a torn last line of a killed job


def read_minibatches(log_dir: str) -> tuple[list[dict[str, Any]], list[list[Any]]]:
    """(run markers, rows) of ``logs/minibatches.jsonl``; missing file -> empty."""
    runs: list[dict[str, Any]] = []
    rows: list[list[Any]] = []
    for value in _json_lines(os.path.join(log_dir, MINIBATCHES_FILE)):
        if isinstance(value, dict):
            runs.append(value)
        elif isinstance(value, list) and len(value) - len(MINIBATCH_COLUMNS) in (0, 1):
            rows.append(value)  # one more field: a part of a bisected mini-batch
    return runs, rows


def read_failures(log_dir: str) -> list[dict[str, Any]]:
    """The records of ``logs/failures.jsonl`` (one per failed try)."""
    path = os.path.join(log_dir, "failures.jsonl")
    return [r for r in _json_lines(path) if isinstance(r, dict)]


@dataclass(slots=True)
class FailureGroup:
    """All failed tries with the same error type and (number-blind) message."""

    error_type: str
    message: str
    count: int
    batches: set[int]
    first: dict[str, Any]


def group_failures(records: Iterable[dict[str, Any]]) -> list[FailureGroup]:
    """Failures grouped by error (digits in the message ignored), most frequent first."""
    groups: dict[tuple[str, str], FailureGroup] = {}
    for rec in records:
        etype = str(rec.get("error_type") or "Error")
        message = str(rec.get("message") or "")
        first_line = message.strip().split("\n", 1)[0]
        key = (etype, re.sub(r"\d+", "N", first_line)[:300])
        group = groups.get(key)
        if group is None:
            group = groups[key] = FailureGroup(etype, first_line, 0, set(), rec)
        group.count += 1
        index = rec.get("mini_batch_index")
        if isinstance(index, int):
            group.batches.add(index)
    return sorted(groups.values(), key=lambda g: -g.count)
