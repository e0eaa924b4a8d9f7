"""The Runner's micro-batcher: single items in, adaptive mini-batches out, one answer per item.

    call(item) ──► queue (deque of _Call) ──► pump (next loop turn) ──► CallBatch ──► dispatcher
                     ▲                           │ a worker is idle: send everything queued
                     │                           │   (up to batch_limit) at once
                     │                           │ all busy: gather; send to the worker with
                     │                           │   the shortest queue when max_batch_size
                     │                           │   items wait or the oldest waited batch_wait_s
    outcome ─────────┴── Done: each caller gets its element
                         Failed / TimedOut / Crashed of n > 1 items: split in halves, retry
                         both ahead of new work (bisection), so only the poison item's caller
                         gets the error; of 1 item: raise -> that caller; crash / hang -> retried
                         up to run_max_try tries of the item alone

Invariants:
- every admitted call's future is resolved exactly once (result or exception) or cancelled by
  its caller; a cancelled call is dropped from the queue before dispatch, and the answer of
  one cancelled after dispatch is discarded without touching the others of its batch;
- bisection is bounded: the sub-batches of one failed batch share a budget of
  ``2 x size`` extra tries; when it runs out the remaining items get the batch's error;
- the pump never awaits; it runs on the loop after the current turn, also after an answer or
  freed capacity (``schedule``), so callers woken together (the answers of one batch)
  re-queue first and join what was already waiting in one batch, and a lone call waits one
  loop turn, not batch_wait_s. (Pumping synchronously on an answer sent the waiting items
  alone and split the callers into groups that never merged: 64 closed-loop callers ran in
  batches of 16/16/32, mean 22, instead of 32.)
"""

from __future__ import annotations

import asyncio
import pickle
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ._backends import Attempt, Crashed, Done, Outcome, TimedOut

__all__ = ("Call", "CallBatch", "MicroBatcher")

_PIPELINE_DEPTH = (
    2  # batches per worker while gathering: one running, one queued behind it
)


class Call:
    """One call(): its item, its caller's future, when it came, its failed solo tries."""

    __slots__ = ("fut", "item", "solo_tries", "t0")

    def __init__(self, item: Any, fut: asyncio.Future[Any]) -> None:
        self.item = item
        self.fut = fut
        self.t0 = time.perf_counter()
        self.solo_tries = 0


class _Budget:
    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left


class CallBatch:
    """The token of a batch of calls (an Attempt's ``token``)."""

    __slots__ = ("budget", "calls", "split")

    def __init__(self, calls: list[Call], budget: _Budget, split: bool) -> None:
        self.calls = calls
        self.budget = budget
        self.split = split  # a part of a batch that failed


class MicroBatcher:
    """Queue, adaptive dispatch and per-item failure isolation for ``Runner.call``.

    Args:
        send: hands a new attempt to the dispatcher (back of the queue).
        retry: hands attempts to the dispatcher ahead of everything pending.
        load: ``(workers_ready, batches_in_flight)`` of the backend right now.
        new_id: the next batch id.
        fail: builds the caller's exception from a final non-Done outcome.
        record: ``record(call)`` when a call got its answer (latency statistics).
    """

    def __init__(
        self,
        *,
        send: Callable[[Attempt], None],
        retry: Callable[[list[Attempt]], None],
        load: Callable[[], tuple[int, int]],
        new_id: Callable[[], int],
        fail: Callable[[Attempt, Outcome], BaseException],
        record: Callable[[Call], None],
        max_batch_size: int,
        batch_limit: int,
        batch_wait_s: float,
        run_max_try: int,
    ) -> None:
        self.queue: deque[Call] = deque()
        self.in_flight: set[CallBatch] = set()
        self.isolated = 0  # calls failed alone after a batch failure was bisected
        self._send, self._retry, self._load = send, retry, load
        self._new_id, self._fail, self._record = new_id, fail, record
        self._max_batch = max_batch_size
        self._limit = batch_limit
        self._wait_s = batch_wait_s
        self._max_try = run_max_try
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()

    # -- in ----------------------------------------------------------------------------

    def add(self, call: Call) -> None:
        self.queue.append(call)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.pump)

    def schedule(self) -> None:
        """Pump one loop turn from now (the callers woken by an answer re-queue first)."""
        if self.queue and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.pump)

    def pump(self) -> None:
        """Send what the dispatch rule allows now; arm the gather timer for the rest."""
        self._scheduled = False
        queue = self.queue
        if not queue:
            return
        ready, busy = self._load()
        while queue:
            idle = ready - busy
            if idle <= 0 and not self._gathered(ready, busy):
                break
            # idle workers share the queue evenly (ceil), so none waits while another works
            calls = self._take(-(-len(queue) // idle) if idle > 1 else self._limit)
            if not calls:
                break
            self._send_calls(calls, _Budget(2 * len(calls)))
            busy += 1
        if queue and self._timer is None and busy < _PIPELINE_DEPTH * ready:
            delay = queue[0].t0 + self._wait_s - time.perf_counter()
            self._timer = self._loop.call_later(max(delay, 0.0), self._on_timer)

    def _gathered(self, ready: int, busy: int) -> bool:
        """All workers busy: is a gathered batch due (full, or its oldest waited enough)?"""
        if busy >= _PIPELINE_DEPTH * ready:
            return False
        queue = self.queue
        return len(queue) >= self._max_batch or (
            time.perf_counter() - queue[0].t0 >= self._wait_s
        )

    def _on_timer(self) -> None:
        self._timer = None
        self.pump()

    def _take(self, n: int) -> list[Call]:
        queue, limit = self.queue, min(n, self._limit)
        calls: list[Call] = []
        while queue and len(calls) < limit:
            call = queue.popleft()
            if not call.fut.done():  # cancelled callers are dropped here
                calls.append(call)
        return calls

    def _send_calls(
        self,
        calls: list[Call],
        budget: _Budget,
        *,
        split: bool = False,
        retry: bool = False,
    ) -> None:
        batch = CallBatch(calls, budget, split)
        payload = pickle.dumps([c.item for c in calls], protocol=5)
        attempt = Attempt(self._new_id(), 1, len(calls), payload, token=batch)
        self.in_flight.add(batch)
        if retry:
            self._retry([attempt])
        else:
            self._send(attempt)

    # -- out ---------------------------------------------------------------------------

    def on_outcome(self, attempt: Attempt, outcome: Outcome) -> None:
        batch: CallBatch = attempt.token
        self.in_flight.discard(batch)
        if type(outcome) is Done:
            self._answer(batch, outcome.body)
        else:
            self._isolate(attempt, batch, outcome)
        self.schedule()

    def _answer(self, batch: CallBatch, body: bytes) -> None:
        try:
            values = pickle.loads(body)
        except Exception as exc:
            from ._errors import RemoteError

            err = RemoteError(
                type(exc).__name__, f"could not unpickle run()'s result: {exc}", ""
            )
            for call in batch.calls:
                _set_exception(call.fut, err)
            return
        if not isinstance(values, list):
            values = list(values) if isinstance(values, tuple) else []
        record = self._record
        for call, value in zip(batch.calls, values, strict=False):
            fut = call.fut
            if not fut.done():
                fut.set_result(value)
                record(call)
        if len(values) < len(batch.calls):
            from ._errors import RemoteError

            short = RemoteError(
                "ShortResult",
                f"run() returned {len(values)} elements for {len(batch.calls)} items",
                "",
            )
            for call in batch.calls[len(values) :]:
                _set_exception(call.fut, short)

    def _isolate(self, attempt: Attempt, batch: CallBatch, outcome: Outcome) -> None:
        """A try failed: bisect a multi-item batch, retry or fail a single item."""
        calls = [c for c in batch.calls if not c.fut.done()]
        if not calls:
            return
        if len(calls) > 1 and batch.budget.left >= 2:
            batch.budget.left -= 2
            half = len(calls) // 2
            for part in (calls[:half], calls[half:]):  # retried ahead of new work
                self._send_calls(part, batch.budget, split=True, retry=True)
            return
        if len(calls) == 1:
            calls[0].solo_tries += 1
        lost = isinstance(outcome, (TimedOut, Crashed))
        if (
            len(calls) == 1
            and lost
            and calls[0].solo_tries < self._max_try
            and batch.budget.left >= 1
        ):
            batch.budget.left -= 1
            self._send_calls(calls, batch.budget, split=batch.split, retry=True)
            return
        err = self._fail(attempt, outcome)
        if len(calls) == 1 and batch.split:
            self.isolated += 1
        for call in calls:
            _set_exception(call.fut, err)

    def fail_all(self, exc: BaseException) -> None:
        """Fail every queued call and every call in a batch still out (close / fatal)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self.queue:
            _set_exception(self.queue.popleft().fut, exc)
        for batch in list(self.in_flight):
            for call in batch.calls:
                _set_exception(call.fut, exc)
        self.in_flight.clear()


def _set_exception(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
