"""Failure records: one failed try -> one JSON line of logs/failures.jsonl + one warning.

    _Job.log_failure ──► failure_record(attempt, outcome) ──► (line, warning args)
                           items: unpickled from the payload (a table slice: "file, bytes a-b"),
                           at most 100 shown, each bounded to 500 characters, JSON-safe

Invariant: building a record never raises into the accounting (an item that orjson cannot
encode is shown as its repr).
"""

from __future__ import annotations

import pickle
import time
from typing import Any

import orjson

from ._backends import (
    KIND_KEYED,
    KIND_TABLE,
    Attempt,
    Crashed,
    Done,
    Failed,
    Outcome,
    TimedOut,
)
from ._dispatch import outcome_error
from ._tabular._batch import describe

__all__ = ("FAILURE_FORMAT", "failure_record")

# the "aprs.failures" warning of a failed try (the CLI's display coalesces these lines)
FAILURE_FORMAT = "mini-batch %d%s try %d/%d failed: %s: %s"


def failure_record(
    attempt: Attempt,
    outcome: Outcome,
    *,
    short: int = 0,
    items: list[Any] | None = None,
    max_try: int,
) -> tuple[bytes, tuple[Any, ...] | None]:
    """One failed try: its line of logs/failures.jsonl, and the arguments of its
    FAILURE_FORMAT warning (None for a short result, counted but not warned about)."""
    if items is None and attempt.payload and attempt.kind == KIND_TABLE:
        items = describe(attempt.payload)  # "file, bytes a-b": where the rows are
    elif items is None and attempt.payload:
        try:
            items = pickle.loads(attempt.payload)
            if attempt.kind == KIND_KEYED:
                items = items[0]
        except Exception:
            items = None
    shown = [_show(i) for i in (items or [])[:100]]
    kind, error_type, message, tb = _describe(attempt, outcome, short)
    span = attempt.token.span if attempt.token is not None else None
    record = {
        "mini_batch_index": attempt.batch_id,
        "part": span,  # [offset, count] of a bisected mini-batch's part, else null
        "try": attempt.attempt,
        "max_try": max_try,
        "kind": kind,
        "error_type": error_type,
        "message": message,
        "traceback": tb,
        "items": shown,
        "items_count": attempt.size,
        "worker_pid": outcome.pid,
        "exit_code": outcome.exit_code if type(outcome) is Crashed else None,
        "time": time.time(),
    }
    try:
        line = orjson.dumps(record, default=repr)
    except Exception:  # the record must never stop the accounting
        record["items"] = [repr(i)[:500] for i in shown]
        line = orjson.dumps(record, default=repr)
    if short:
        return line + b"\n", None
    return line + b"\n", (
        attempt.batch_id,
        _part_text(span),
        attempt.attempt,
        max_try,
        error_type,
        message,
    )


def _describe(
    attempt: Attempt, outcome: Outcome, short: int
) -> tuple[str, str, str, str]:
    """(kind, error_type, message, traceback) of a failure record."""
    if type(outcome) is Done:
        return (
            "short_result",
            "ShortResult",
            (
                f"run() returned {outcome.returned} elements for {attempt.size} items; "
                f"{short} items counted as failed"
            ),
            "",
        )
    if type(outcome) is Failed:
        return "failed", outcome.error_type, outcome.message, outcome.traceback
    assert isinstance(outcome, (TimedOut, Crashed))
    error = outcome_error(attempt, outcome)
    kind = "crashed" if type(outcome) is Crashed else "timeout"
    return kind, type(error).__name__, str(error), ""


def _part_text(span: tuple[int, int] | None) -> str:
    """ " (items 4-5)" for a part of a bisected mini-batch, "" for a whole one."""
    if span is None:
        return ""
    offset, count = span
    if count == 1:
        return f" (item {offset} alone)"
    return f" (items {offset}-{offset + count - 1})"


def _show(item: Any) -> Any:
    """A JSON-safe, bounded view of one item for logs/failures.jsonl."""
    if item is None or isinstance(item, (bool, float)):
        return item
    if isinstance(item, int) and -(2**63) <= item < 2**64:
        return item
    if isinstance(item, str):
        try:
            item.encode()  # file names that are not UTF-8 hold surrogates
        except UnicodeEncodeError:
            item = repr(item)
        return item if len(item) < 500 else item[:500] + "..."
    text = repr(item)
    return text if len(text) < 500 else text[:500] + "..."
