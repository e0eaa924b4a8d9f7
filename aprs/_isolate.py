"""Poison-item isolation for jobs (``isolate_failures``): bisect a failing mini-batch.

    whole try fails (n > 1 items) ──► Isolator.start: Bisection(batch, budget) ──► halves:
                                          first half ──► Dispatcher front (ahead of new work)
                                          second half ──► Bisection.waiting
    part try outcome
      Done ──► rows kept by offset (ok, short) ──► next waiting part
      failed, count > 1, budget >= 2 ──► split again (first half now, second waits)
      failed, count == 1, tries < run_max_try, budget >= 1 ──► the item alone again
      otherwise ──► its items fail now (error_threshold sees them at once) ──► next part
    nothing waiting ──► rows assembled in item order ──► writer.put(batch_id, ...) once

A part is an ``Attempt`` with the original ``batch_id`` (so the writer's gate and window
apply unchanged), its own try number and payload, and a ``Part`` token (``span``: offset and
count of its items in the mini-batch). Payloads: item batches carry the part's items (a
keyed batch keeps its key value); a table slice carries ``RowWindow(slice, offset, count)``,
which the worker applies with ``iloc`` after reading the whole slice (the parent never
parses a row). A byte-range slice whose tries crashed or hung before any reported its rows
is first read once without run() (``RowCount``, token ``Probe``) to learn them.

Accounting (Azure's thresholds, per original mini-batch):
- the mini-batch is *failing* (``allowed_failed_count`` / ``mini_batch_error_threshold``)
  while it is bisected; at the end it counts once: failed if any of its items failed (or a
  part's short result fails it, as without isolation), else succeeded;
- ``error_threshold`` counts items: each poison item when its last try fails, so a job
  stops as soon as enough poison items are known, not when the mini-batch ends;
- ``run_max_try`` bounds the tries of a single item alone; parts of several items are
  split, never retried whole; every failed try followed by more work counts as a retry.

Invariants: the writer gets each mini-batch once, with the rows of its good items in item
order (so the journal and resume stay exactly-once); the extra tries of one mini-batch are
bounded by its budget (``budget``); one part of a mini-batch is out at a time, depth first,
so the tries (and which items a spent budget leaves failing together) do not depend on
timing and a resumed job writes the same bytes; other mini-batches keep every other worker
busy meanwhile. Everything runs on the event loop and never awaits.
"""

from __future__ import annotations

import math
import pickle
import struct
from collections.abc import Callable
from typing import Any

from ._accounting import Accounting
from ._backends import KIND_KEYED, KIND_TABLE, Attempt, Done, Failed, Outcome
from ._tabular._output import split_header
from ._tabular._slice import RowCount, RowWindow, TableSlice

__all__ = ("Isolator", "Part", "Probe", "budget")

POISON_CAP = 16  # the budget isolates at least this many poison items per mini-batch
_LEN = struct.Struct("<I")  # the framing of TableOutput bodies (u32 header length)
_Result = tuple[bytes, int, int]  # a final part: (body, items ok, items failed)


def budget(size: int, run_max_try: int) -> int:
    """Extra tries one failing mini-batch of ``size`` items may cost.

    ``2 x size`` (the Runner's bound: enough for every item of a small batch to fail), and
    at most what isolating ``POISON_CAP`` poison items costs: each needs about
    ``2 x log2(size)`` part tries plus ``run_max_try - 1`` tries alone. So a big mini-batch
    whose every item fails (a broken script) costs hundreds of tries, not ``2 x size``.
    """
    levels = max(1, math.ceil(math.log2(max(size, 2))))
    return min(2 * size, POISON_CAP * (2 * levels + run_max_try))


class Bisection:
    """One original mini-batch being isolated: its budget, waiting parts, finished rows."""

    __slots__ = ("attempt", "base", "budget", "failed", "results", "waiting")

    def __init__(self, attempt: Attempt, base: Any, budget: int) -> None:
        self.attempt = attempt  # the whole mini-batch's failed try (id, kind, size)
        self.base = base  # items, (items, key_value), or the TableSlice(s)
        self.budget = budget
        self.waiting: list[Attempt] = []  # parts not sent yet; the last one goes next
        self.failed = 0  # items whose last try failed (poison, or the budget ran out)
        self.results: dict[int, _Result] = {}  # part offset -> its final result


class Part:
    """The token of a part's Attempt: its mini-batch and which items it holds."""

    __slots__ = ("bisection", "count", "offset")

    def __init__(self, bisection: Bisection, offset: int, count: int) -> None:
        self.bisection = bisection
        self.offset = offset
        self.count = count

    @property
    def span(self) -> tuple[int, int]:
        """(offset, count) of the part's items in its mini-batch (logs, failure records)."""
        return self.offset, self.count


class Probe:
    """The token of a ``RowCount`` try: the whole mini-batch's failed try."""

    __slots__ = ("attempt",)
    span = (0, 0)  # in the logs: a part of no items (the slice read, run() not called)

    def __init__(self, attempt: Attempt) -> None:
        self.attempt = attempt


class Isolator:
    """Bisects failing mini-batches of a job; one per job.

    Args:
        accounting: the job's counters (thresholds see poison items at once).
        requeue: puts attempts ahead of every pending one, in order (the Dispatcher front).
        put: the writer's ``put(batch_id, rows, ok, failed, batch_failed)``.
        log_failure: writes the failure record of a part's try (``short``: items missing
            from a short result).
        count_rows: ``count_rows(attempt, rows)``: a probe found the rows of a table
            slice; the job counts them as the mini-batch's items.
        framed: bodies carry a header to write once (TableOutput's framing).
    """

    def __init__(
        self,
        *,
        accounting: Accounting,
        requeue: Callable[[list[Attempt]], None],
        put: Callable[[int, bytes, int, int, bool], None],
        log_failure: Callable[[Attempt, Outcome, int], None],
        count_rows: Callable[[Attempt, int], None],
        framed: bool = False,
    ) -> None:
        self.acc = accounting
        self._requeue = requeue
        self._put = put
        self._log_failure = log_failure
        self._count_rows = count_rows
        self._framed = framed
        self._max_try = accounting.thresholds.run_max_try
        self.isolated = 0  # items that failed alone (poison items found)

    def take(self, attempt: Attempt, outcome: Outcome) -> bool:
        """A whole mini-batch's try failed: bisect it (True), or leave it to the retry rule.

        Not for one item (the run_max_try rule applies), nor for a table slice that could
        not be read (the same bytes fail again). A byte-range table slice whose rows are
        not known yet (its tries crashed or hung before any reported them) is first read
        once without run() (``RowCount``) to learn them.
        """
        if type(outcome) is Failed and outcome.error_type == "TableReadError":
            return False
        if attempt.size > 1:
            self.acc.isolation_started(attempt.batch_id)
            self._start(attempt, pickle.loads(attempt.payload))
            return True
        if attempt.kind != KIND_TABLE or type(outcome) is Failed:
            return False
        table = pickle.loads(attempt.payload)
        if not isinstance(table, TableSlice) or table.rows >= 0:
            return False
        self.acc.isolation_started(attempt.batch_id)
        payload = pickle.dumps(RowCount(table), protocol=5)
        probe = Attempt(attempt.batch_id, 1, 0, payload, KIND_TABLE, Probe(attempt))
        self._requeue([probe])
        return True

    def _start(self, attempt: Attempt, base: Any) -> None:
        bisection = Bisection(attempt, base, budget(attempt.size, self._max_try))
        self._split(bisection, 0, attempt.size)

    def _on_probe(self, probe: Probe, outcome: Outcome) -> None:
        """The row count of a slice whose whole tries were lost: bisect it now."""
        root = probe.attempt
        rows = outcome.items if type(outcome) is Done else -1
        if rows >= 0:
            self._count_rows(root, rows)  # the job counts the rows as items from here
        table = pickle.loads(root.payload)
        if rows >= 2:
            self._start(root, table)
            return
        b = Bisection(root, table, self._max_try)
        if rows == 1 and root.attempt < self._max_try:  # the one row, alone again
            part = self._attempt(b, 0, 1)
            part.attempt = root.attempt + 1
            self._requeue([part])
            return
        failed = root.size if rows != 0 else 0  # an unreadable slice fails whole
        b.failed = failed
        if rows == 1:
            self.isolated += 1
        self.acc.part_failed(failed)
        b.results[0] = (b"", 0, failed)
        self._finish(b)

    def on_outcome(self, attempt: Attempt, outcome: Outcome) -> None:
        """A part's try ended (the job was not stopped)."""
        token = attempt.token
        if type(token) is Probe:
            if type(outcome) is not Done:
                self._log_failure(attempt, outcome, 0)
            self._on_probe(token, outcome)
            return
        part: Part = token
        b = part.bisection
        if type(outcome) is Done:
            ok = min(outcome.returned, part.count)
            short = part.count - ok
            self.acc.part_done(ok, short)
            if short:
                self._log_failure(attempt, outcome, short)
            self._close(b, part, outcome.body, ok, short)
            return
        self._log_failure(attempt, outcome, 0)
        table_error = type(outcome) is Failed and outcome.error_type == "TableReadError"
        if part.count > 1 and b.budget >= 2 and not table_error:
            self.acc.part_retried()
            self._split(b, part.offset, part.count)
        elif (
            part.count == 1
            and attempt.attempt < self._max_try
            and b.budget >= 1
            and not table_error
        ):
            b.budget -= 1
            self.acc.part_retried()
            self._requeue([attempt.retry()])
        else:  # a poison item, or the budget ran out: these items fail as a group
            if part.count == 1:
                self.isolated += 1
            b.failed += part.count
            self.acc.part_failed(part.count)
            self._close(b, part, b"", 0, part.count)

    # -- parts --------------------------------------------------------------------------

    def _split(self, b: Bisection, offset: int, count: int) -> None:
        """Two halves: the first goes now (ahead of new work), the second waits for it.

        One part of a mini-batch is out at a time, depth first, first half first: the
        order of tries, and so what the budget buys, does not depend on timing.
        """
        b.budget -= 2
        half = count // 2
        b.waiting.append(self._attempt(b, offset + half, count - half))
        self._requeue([self._attempt(b, offset, half)])

    def _attempt(self, b: Bisection, offset: int, count: int) -> Attempt:
        root, base = b.attempt, b.base
        if root.kind == KIND_TABLE:
            body: Any = RowWindow(base, offset, count)
        elif root.kind == KIND_KEYED:
            items, key_value = base
            body = (items[offset : offset + count], key_value)
        else:
            body = base[offset : offset + count]
        payload = pickle.dumps(body, protocol=5)
        token = Part(b, offset, count)
        # shipped file contents (ship_inputs) are the whole batch's: the part reuses them
        return Attempt(root.batch_id, 1, count, payload, root.kind, token, root.files)

    def _close(
        self, b: Bisection, part: Part, body: bytes, ok: int, short: int
    ) -> None:
        """A part is final: send the next waiting part, or finish the mini-batch."""
        b.results[part.offset] = (body, ok, short)
        if b.waiting:
            self._requeue([b.waiting.pop()])
        else:
            self._finish(b)

    def _finish(self, b: Bisection) -> None:
        """Every part is final: the mini-batch's rows, in item order, go to the writer."""
        ordered = [b.results[offset] for offset in sorted(b.results)]
        ok = sum(r[1] for r in ordered)
        failed = sum(r[2] for r in ordered)
        short = failed - b.failed
        batch_failed = b.failed > 0 or (short > 0 and self.acc.short_result_fails_batch)
        batch_id = b.attempt.batch_id
        self.acc.isolation_finished(batch_id, failed=batch_failed)
        self._put(
            batch_id, self._join([r[0] for r in ordered]), ok, failed, batch_failed
        )

    def _join(self, bodies: list[bytes]) -> bytes:
        """One body from the parts' bodies: rows concatenate; a framed header once.

        Arrow IPC streams (Parquet output) concatenate too: the writer reads one stream
        after another (aprs._tabular._parquet_out).
        """
        if not self._framed:
            return b"".join(bodies)
        header = b""
        rows = []
        for body in bodies:
            if body:
                head, part_rows = split_header(body)
                header = header or head
                rows.append(part_rows)
        if not rows:
            return b""
        return _LEN.pack(len(header)) + header + b"".join(rows)
