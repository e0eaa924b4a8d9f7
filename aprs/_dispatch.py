"""The one dispatcher between an owner (the job or the Runner) and its backend.

    owner.push(Attempt) ──► pending (deque) ──► fill(): while gate(head) and backend.try_submit
                              ▲        ▲                          │
           retry (front) ─────┘        └─ on_requeue (front, in order)  backend callbacks:
           retry_or_give_up(attempt, outcome)                     on_capacity ──► fill()
           (Accounting's run_max_try rule)                        on_outcome / on_fatal ──► owner

Invariants:
- a try that did not succeed is retried ahead of everything pending, and batches a lost worker
  never started go back ahead of new work, in their order; so batches reach workers close to
  input order and the writer's reorder window stays small;
- nothing is sent past the owner's gate (the job's writer window), so memory stays bounded;
- whether a try is retried is decided here only, by ``Accounting.record_failed_try``
  (Azure's run_max_try), for jobs and the Runner alike; the one exception is a job's
  ``isolate_failures``: the parts of a bisected mini-batch are decided by ``aprs._isolate``
  and come back through ``push_front``.

All calls happen on the event loop thread; nothing here awaits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

from ._accounting import Accounting
from ._backends import Attempt, Backend, Crashed, Failed, Outcome, TimedOut
from ._errors import BatchError, BatchTimeoutError, WorkerCrashedError

__all__ = ("DispatchOwner", "Dispatcher", "outcome_error")


class DispatchOwner(Protocol):
    """What the owner of a dispatcher handles: outcomes, the fatal error, room in the queue."""

    def on_outcome(self, attempt: Attempt, outcome: Outcome) -> None: ...

    def on_fatal(self, exc: BaseException) -> None: ...

    def on_filled(self) -> None:
        """Called after every fill (the job wakes its producer when the queue got short)."""
        ...


class Dispatcher:
    """Pending queue, fill on capacity, retry decision; the backend's listener.

    Args:
        owner: receives outcomes and the fatal error.
        accounting: counts failed tries and decides retries (its ``run_max_try``).
        gate: ``gate(batch_id)`` is False while the batch must not be sent yet.
        retry_errors: retry tries whose run() raised (jobs); the Runner hands those to the
            caller at once and retries only timeouts and crashes.
    """

    def __init__(
        self,
        owner: DispatchOwner,
        accounting: Accounting,
        *,
        gate: Callable[[int], bool] | None = None,
        retry_errors: bool = True,
    ) -> None:
        self.pending: deque[Attempt] = deque()
        self.backend: Backend | None = None
        self.accounting = accounting
        self.stopped = False
        self._owner = owner
        self._gate = gate
        self._retry_errors = retry_errors
        # outcomes go straight to the owner: no forwarding call per mini-batch
        self.on_outcome = owner.on_outcome  # type: ignore[method-assign]
        self.on_fatal = owner.on_fatal  # type: ignore[method-assign]

    def attach(self, backend: Backend) -> None:
        self.backend = backend

    def push(self, attempt: Attempt) -> None:
        """New work at the back; sent at once when nothing waits ahead of it."""
        pending = self.pending
        pending.append(attempt)
        if len(pending) == 1:
            # the queue was empty, so a worker may be idle: let it take this one now.
            # Otherwise outcomes refill (on_capacity).
            self.fill()

    def push_front(self, attempts: list[Attempt]) -> None:
        """Attempts ahead of everything pending, in their order (retries, split parts).

        Sent on the next fill (the backend's ``on_capacity`` after the outcome that caused
        them).
        """
        self.pending.extendleft(reversed(attempts))

    def fill(self) -> None:
        """Send pending attempts, oldest first, while the gate and the backend accept them."""
        backend, pending, gate = self.backend, self.pending, self._gate
        if backend is None or self.stopped:
            return
        if gate is None:
            while pending and backend.try_submit(pending[0]):
                pending.popleft()
        else:
            while (
                pending and gate(pending[0].batch_id) and backend.try_submit(pending[0])
            ):
                pending.popleft()
        self._owner.on_filled()

    def retry_or_give_up(self, attempt: Attempt, outcome: Outcome) -> bool:
        """A try did not succeed: queue its retry ahead of all pending work (True), or not.

        Counts the failed try in the accounting either way; a stopped dispatcher retries
        nothing.
        """
        tries = attempt.attempt
        final = type(outcome) is Failed and (
            not self._retry_errors
            or outcome.error_type == "TableReadError"  # the same bytes fail again
        )
        if final:
            tries = max(tries, self.accounting.thresholds.run_max_try)
        retry = self.accounting.record_failed_try(attempt.batch_id, attempt.size, tries)
        if retry and not self.stopped:
            self.pending.appendleft(attempt.retry())
            return True
        return False

    def drain(self) -> list[Attempt]:
        """Take every pending attempt out (to fail them when the owner stops)."""
        attempts = list(self.pending)
        self.pending.clear()
        return attempts

    def stop(self) -> None:
        """Send nothing more and retry nothing more."""
        self.stopped = True

    # -- BackendListener ----------------------------------------------------------------

    def on_outcome(self, attempt: Attempt, outcome: Outcome) -> None:
        self._owner.on_outcome(attempt, outcome)

    def on_requeue(self, attempts: list[Attempt]) -> None:
        self.push_front(attempts)

    def on_capacity(self) -> None:
        self.fill()

    def on_fatal(self, exc: BaseException) -> None:
        self._owner.on_fatal(exc)


def outcome_error(attempt: Attempt, outcome: TimedOut | Crashed) -> BatchError:
    """The exception a lost try stands for, with its context (batch, try, worker, exit)."""
    if type(outcome) is TimedOut:
        return BatchTimeoutError(
            batch_index=attempt.batch_id,
            attempt=attempt.attempt,
            timeout_s=outcome.timeout_s,
            pid=outcome.pid,
            worker_index=outcome.worker_index,
        )
    assert type(outcome) is Crashed
    return WorkerCrashedError(
        batch_index=attempt.batch_id,
        attempt=attempt.attempt,
        pid=outcome.pid,
        worker_index=outcome.worker_index,
        exit_code=outcome.exit_code,
        signal=outcome.signal,
        description=outcome.description,
    )
