"""The pool's settle path and the dispatcher's queue, without processes.

Every way a try ends goes through ``LocalPool._settle``; these tests drive it directly on a
pool whose workers are plain records, and check what the listener hears, in which order.
"""

from __future__ import annotations

from typing import Any

import pytest

from aprs._accounting import Accounting, Thresholds
from aprs._backends import Attempt, Crashed, Done, Failed, Outcome, TimedOut, WorkerSpec
from aprs._backends._slots import SlotState
from aprs._bridge._pool import LocalPool
from aprs._bridge._pool_slot import _Worker
from aprs._dispatch import Dispatcher


class _Proc:
    """Stands in for the Popen of a worker that is never started."""

    pid = 4242


class Recorder:
    """A BackendListener that records every call."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_outcome(self, attempt: Attempt, outcome: Outcome) -> None:
        self.events.append(("outcome", attempt.batch_id, type(outcome).__name__))

    def on_requeue(self, attempts: list[Attempt]) -> None:
        self.events.append(("requeue", [a.batch_id for a in attempts]))

    def on_capacity(self) -> None:
        self.events.append(("capacity",))

    def on_fatal(self, exc: BaseException) -> None:
        self.events.append(("fatal", exc))


def attempts(*ids: int) -> list[Attempt]:
    return [Attempt(i, 1, 1, b"") for i in ids]


def make_pool(listener: Any, inflight: list[Attempt]) -> tuple[LocalPool, _Worker]:
    pool = LocalPool(WorkerSpec("s.py", None, [], {}, 1, 0, 1.0), listener)
    pool._closing = True  # a lost worker is not replaced: no process is ever spawned
    pool._depth = 8
    w = _Worker(0, _Proc(), -1, -1, -1, state=SlotState.READY)  # type: ignore[arg-type]
    w.inflight.extend(inflight)
    pool._workers[0] = w
    return pool, w


LOST = [
    pytest.param(TimedOut(1.0, 1.2, 4242, 0), id="timed-out"),
    pytest.param(Crashed(-9, 9, "killed by SIGKILL", 0.3, 4242, 0), id="crashed"),
]


async def test_done_finishes_the_head_only() -> None:
    """Done: the head's outcome, then capacity; the queue behind it stays, depth stays."""
    rec = Recorder()
    pool, w = make_pool(rec, attempts(1, 2, 3))
    pool._settle(w, Done(2, b"a\nb\n", 0.01, 4242, 0))
    assert rec.events == [("outcome", 1, "Done"), ("capacity",)]
    assert [a.batch_id for a in w.inflight] == [2, 3]
    assert pool.statistics().depth == 8


async def test_failed_drops_the_depth_to_one() -> None:
    """Failed: the head's outcome, capacity; the worker keeps its queue; one batch at a time."""
    rec = Recorder()
    pool, w = make_pool(rec, attempts(1, 2))
    pool._settle(w, Failed("ValueError", "boom", "tb", b"", 0.01, 4242, 0))
    assert rec.events == [("outcome", 1, "Failed"), ("capacity",)]
    assert [a.batch_id for a in w.inflight] == [2]
    assert pool.statistics().depth == 1


@pytest.mark.parametrize("outcome", LOST)
async def test_lost_worker_requeues_the_rest_before_the_outcome(
    outcome: Outcome,
) -> None:
    """TimedOut / Crashed: never-started batches come back in order, then the head's outcome."""
    rec = Recorder()
    pool, w = make_pool(rec, attempts(1, 2, 3))
    pool._settle(w, outcome, lost=True)
    name = type(outcome).__name__
    assert rec.events == [("requeue", [2, 3]), ("outcome", 1, name), ("capacity",)]
    assert not w.inflight
    assert pool.statistics().depth == 1


@pytest.mark.parametrize("outcome", LOST)
async def test_lost_idle_worker_reports_only_capacity(outcome: Outcome) -> None:
    """A worker lost with nothing in flight produces no outcome and no requeue."""
    rec = Recorder()
    pool, w = make_pool(rec, [])
    pool._settle(w, outcome, lost=True)
    assert rec.events == [("capacity",)]


class Owner:
    def __init__(self) -> None:
        self.dispatch = Dispatcher(self, Accounting(Thresholds(run_max_try=3)))
        self.given_up: list[int] = []

    def on_outcome(self, attempt: Attempt, outcome: Outcome) -> None:
        if not self.dispatch.retry_or_give_up(attempt, outcome):
            self.given_up.append(attempt.batch_id)

    def on_fatal(self, exc: BaseException) -> None:
        raise AssertionError(exc)

    def on_filled(self) -> None:
        pass


@pytest.mark.parametrize("outcome", LOST)
async def test_retry_goes_ahead_of_requeued_and_new_work(outcome: Outcome) -> None:
    """Through the dispatcher: head's retry, then the never-started batches, then new work."""
    owner = Owner()
    for a in attempts(10, 11):
        owner.dispatch.pending.append(a)
    pool, w = make_pool(owner.dispatch, attempts(1, 2, 3))
    pool._settle(w, outcome, lost=True)
    pending = [(a.batch_id, a.attempt) for a in owner.dispatch.pending]
    assert pending == [(1, 2), (2, 1), (3, 1), (10, 1), (11, 1)]
    assert owner.dispatch.accounting.retries == 1


async def test_last_try_is_given_up_not_retried() -> None:
    """A try at run_max_try is not queued again; the owner finalizes it."""
    owner = Owner()
    pool, w = make_pool(owner.dispatch, [Attempt(5, 3, 2, b"")])
    pool._settle(w, TimedOut(1.0), lost=True)
    assert owner.given_up == [5]
    assert not owner.dispatch.pending
    assert owner.dispatch.accounting.items_failed == 2


async def test_dispatcher_without_error_retries_hands_failures_over() -> None:
    """retry_errors=False (the Runner): run() raising is final at once; a crash is retried."""
    owner = Owner()
    owner.dispatch = Dispatcher(
        owner, Accounting(Thresholds(run_max_try=3)), retry_errors=False
    )
    pool, w = make_pool(owner.dispatch, attempts(1, 2))
    pool._settle(w, Failed("ValueError", "boom"))
    pool._settle(w, Crashed(7, None, "exited with code 7"), lost=True)
    assert owner.given_up == [1]
    assert [(a.batch_id, a.attempt) for a in owner.dispatch.pending] == [(2, 2)]
