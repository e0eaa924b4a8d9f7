"""Failure accounting: counters, thresholds and retry decisions. Pure: no I/O, no clock.

Azure semantics (../shared/reference/azure-prs.md section 4.1):

- ``error_threshold`` bounds failed *items* over the whole job (-1 disables); the job stops
  when the count goes above it.
- ``allowed_failed_count`` bounds failed *mini-batches* (-1 disables). A mini-batch that failed
  a try and waits for its retry counts as failed only while it is failing.
- ``allowed_failed_percent`` (100 disables) is checked once every mini-batch is scheduled.
- A ``run()`` that returns fewer elements than items: the missing items are failed items;
  the mini-batch itself counts as failed only while ``error_threshold`` is set (not -1).
  With -1, Azure's samples that return ``[]`` or one row per partition (v2 partitioned
  training) complete, as they do in Azure.

With ``isolate_failures`` (aprs._isolate) a failing mini-batch is bisected: it is *failing*
while it is bisected and counts once at the end (failed if any of its items failed); each
poison item counts as a failed item as soon as its last try fails.

Only the event loop touches an Accounting, so updates are atomic without locks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._summary import StopReason

__all__ = ("Accounting", "Thresholds")


@dataclass(frozen=True, slots=True)
class Thresholds:
    error_threshold: int = -1
    allowed_failed_count: int | None = None
    allowed_failed_percent: float | None = None
    run_max_try: int = 3


@dataclass(slots=True)
class Accounting:
    thresholds: Thresholds
    items_succeeded: int = 0
    items_failed: int = 0
    batches_succeeded: int = 0
    batches_failed: int = 0
    retries: int = 0
    batches_total: int | None = None
    failing: set[int] = field(default_factory=set)

    def record_done(self, batch_id: int, size: int, returned: int) -> tuple[int, int]:
        """run() returned ``returned`` elements for ``size`` items: (succeeded, failed)."""
        self.failing.discard(batch_id)
        ok = min(returned, size)
        failed = size - ok
        self.items_succeeded += ok
        self.items_failed += failed
        if failed and self.short_result_fails_batch:
            self.batches_failed += 1
        else:
            self.batches_succeeded += 1
        return ok, failed

    @property
    def short_result_fails_batch(self) -> bool:
        """Does a short result fail its mini-batch? Only while error_threshold is set."""
        return self.thresholds.error_threshold != -1

    def record_failed_try(self, batch_id: int, size: int, attempt: int) -> bool:
        """A try failed. Return True to retry, False when it was the last try."""
        if attempt < self.thresholds.run_max_try:
            self.failing.add(batch_id)
            self.retries += 1
            return True
        self.failing.discard(batch_id)
        self.items_failed += size
        self.batches_failed += 1
        return False

    # -- isolate_failures (aprs._isolate): a bisected mini-batch ----------------------------

    def isolation_started(self, batch_id: int) -> None:
        """A whole try failed and the mini-batch is bisected: failing until it ends."""
        self.failing.add(batch_id)
        self.retries += 1

    def part_retried(self) -> None:
        """A part's try failed and more tries follow (its halves, or the item alone)."""
        self.retries += 1

    def part_done(self, ok: int, short: int) -> None:
        """A part succeeded: ``ok`` items, ``short`` missing from a short result."""
        self.items_succeeded += ok
        self.items_failed += short

    def part_failed(self, items: int) -> None:
        """A part's last try failed: its items count as failed now (error_threshold)."""
        self.items_failed += items

    def isolation_finished(self, batch_id: int, *, failed: bool) -> None:
        """Every part is final: the mini-batch counts once, failed or succeeded."""
        self.failing.discard(batch_id)
        if failed:
            self.batches_failed += 1
        else:
            self.batches_succeeded += 1

    def scheduling_finished(self, total: int) -> None:
        self.batches_total = total

    def restore(
        self, items_ok: int, items_failed: int, batches_ok: int, batches_failed: int
    ) -> None:
        """Start from the counts of a resumed run's journal."""
        self.items_succeeded = items_ok
        self.items_failed = items_failed
        self.batches_succeeded = batches_ok
        self.batches_failed = batches_failed

    def crossed(self) -> tuple[StopReason, str] | None:
        """The first threshold crossed, with a message naming it, its limit and the count."""
        t = self.thresholds
        if t.error_threshold != -1 and self.items_failed > t.error_threshold:
            return "error_threshold", (
                f"error_threshold={t.error_threshold} was crossed: {self.items_failed} "
                "items failed, so the job was stopped early"
            )
        failing = self.batches_failed + len(self.failing)
        limit = t.allowed_failed_count
        if limit is not None and limit != -1 and failing > limit:
            return "allowed_failed_count", (
                f"allowed_failed_count={limit} was crossed: {failing} mini-batches "
                "failed, so the job was stopped early"
            )
        percent = t.allowed_failed_percent
        if percent is not None and percent < 100 and self.batches_total:
            actual = 100.0 * self.batches_failed / self.batches_total
            if actual > percent:
                return "allowed_failed_percent", (
                    f"allowed_failed_percent={percent:g} was crossed: "
                    f"{self.batches_failed} of {self.batches_total} mini-batches "
                    f"({actual:.1f}%) failed"
                )
        return None
