"""The Runner's micro-batcher: single items in, adaptive mini-batches out, one answer per item.

    call(item) ──► queue (deque of _Call) ──► pump (next loop turn) ──► CallBatch ──► dispatcher
                     ▲                           │ a worker is idle: send everything queued
                     │                           │   (up to batch_limit) at once
                     │                           │ all busy: gather; send to the worker with
                     │                           │   the shortest queue when max_batch_size
                     │                           │   items wait or the oldest waited batch_wait_s
    outcome ─────────┴── Done: each caller gets its element
                         Failed / TimedOut / Crashed of n > 1 items: halving, one half at a
                         time: the first half is tried alone, ahead of new work; the second
                         is held for its outcome:
                           first half fails ──► split it again; the held half goes back to
                                                the front of the queue (joins the next batch,
                                                no run() call of its own)
                           first half done  ──► the held half holds the failure: split it
                         of 1 item: raise -> that caller; crash / hang -> retried up to
                         run_max_try tries of the item alone

Why one half at a time: a poison item in a batch of n then costs about ``log2(n)`` extra
run() calls, against ``2 x log2(n)`` for trying both halves of every level; each costs at
least run()'s base time. With 1 item in 1,000 poisoned, 256 closed-loop callers and vector.py
(1 ms + 20 us per item): 31.2k -> 37.5k req/s (perf/RESULTS.md, 2026-12-02 11:18).

Invariants:
- every admitted call's future is resolved exactly once (result or exception) or cancelled by
  its caller; a cancelled call is dropped from the queue before dispatch, and the answer of
  one cancelled after dispatch is discarded without touching the others of its batch;
- bisection is bounded: the parts of one failed batch share a budget of ``2 x size`` extra
  tries; when it runs out the remaining items get the last failed try's error. A held half
  goes back to the queue only once: items that were in a failed batch before (a script that
  fails on everything) are tried as a part of their own, so they stay within a budget;
- an item fails only after a try of it alone failed, or when its budget ran out;
- the pump never awaits and runs one loop turn after what asks for it: a call (``add``),
  freed capacity (``schedule``), the gather timer, or an answer (``_after_answers``). Callers
  woken together (the answers of one batch) re-queue first and join what was already
  waiting in one batch, and a lone call waits one loop turn, not batch_wait_s. A pump
  already scheduled when an answer arrives is moved behind the callers it woke; run ahead
  of them, it split 64 closed-loop callers into groups of 24 and 16 that lost a turn (p99
  3.9-4.2 -> 2.6-2.9 ms, 27k -> 29.5k req/s). Pumping synchronously on an answer did the
  same (batches of 16/16/32, mean 22, instead of 32).
"""

from __future__ import annotations

import asyncio
import pickle
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ._backends import Attempt, Crashed, Done, Outcome, TimedOut
from ._errors import UsageError
from ._runner_answer import set_exception, short_result_error, unpickle_error

__all__ = ("Call", "CallBatch", "MicroBatcher")

_PIPELINE_DEPTH = (
    2  # batches per worker while gathering: one running, one queued behind it
)


class Call:
    """One call(): its item, its caller's future, when it came, its failed solo tries."""

    __slots__ = ("fut", "item", "solo_tries", "strikes", "t0")

    def __init__(self, item: Any, fut: asyncio.Future[Any]) -> None:
        self.item = item
        self.fut = fut
        self.t0 = time.perf_counter()
        self.solo_tries = 0
        self.strikes = 0  # failed batches of new work it was in


class _Family:
    """What the parts of one failed batch share: the tries left, the last failed try."""

    __slots__ = ("last", "left")

    def __init__(self, left: int) -> None:
        self.left = left
        self.last: tuple[Attempt, Outcome] | None = None


class CallBatch:
    """The token of a batch of calls (an Attempt's ``token``)."""

    __slots__ = ("calls", "family", "held", "split")

    def __init__(
        self, calls: list[Call], family: _Family, split: bool, held: list[Call]
    ) -> None:
        self.calls = calls
        self.family = family
        self.split = split  # a part of a batch that failed
        self.held = held  # the untested sibling, decided by this part's outcome


class MicroBatcher:
    """Queue, adaptive dispatch and per-item failure isolation for ``Runner.call``.

    Args:
        send: hands a new attempt to the dispatcher (back of the queue).
        retry: hands attempts to the dispatcher ahead of everything pending.
        load: ``(workers ready, idle workers, batches in flight or pending)`` right now;
            a worker is idle when it holds no batch (one running and one queued behind it
            on the other worker leave one idle: counting batches would say none).
        new_id: the next batch id.
        fail: builds the caller's exception from a final non-Done outcome.
        latency: ``latency(seconds)`` for each call that got its answer (statistics).
    """

    def __init__(
        self,
        *,
        send: Callable[[Attempt], None],
        retry: Callable[[list[Attempt]], None],
        load: Callable[[], tuple[int, int, int]],
        new_id: Callable[[], int],
        fail: Callable[[Attempt, Outcome], BaseException],
        latency: Callable[[float], None],
        max_batch_size: int,
        batch_limit: int,
        batch_wait_s: float,
        run_max_try: int,
    ) -> None:
        self.queue: deque[Call] = deque()
        self.in_flight: set[CallBatch] = set()
        self.isolated = 0  # calls failed alone after a batch failure was bisected
        self.isolation_tries = 0  # run() calls of parts of failed batches
        self._send, self._retry, self._load = send, retry, load
        self._new_id, self._fail, self._latency = new_id, fail, latency
        self._max_batch = max_batch_size
        self._limit = batch_limit
        self._wait_s = batch_wait_s
        self._max_try = run_max_try
        self._scheduled: asyncio.Handle | None = None  # the pump's next run
        self._timer: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()  # the Runner's: futures are made on it

    # -- in ----------------------------------------------------------------------------

    def add(self, call: Call) -> None:
        self.queue.append(call)
        if self._scheduled is None:
            self._scheduled = self.loop.call_soon(self.pump)

    def schedule(self) -> None:
        """Pump one loop turn from now, when calls wait."""
        if self.queue and self._scheduled is None:
            self._scheduled = self.loop.call_soon(self.pump)

    def _after_answers(self) -> None:
        """Pump after the callers an answer just woke have re-queued.

        Their wake-ups were scheduled as their futures got results; a pump scheduled before
        the answer would run ahead of them, see their worker idle and split what else waits
        across both workers, and the woken callers would find no worker left (64 closed-loop
        callers: groups of 24 and 16 instead of 32). So that pump is moved behind them.
        """
        if self._scheduled is not None:
            self._scheduled.cancel()
        self._scheduled = self.loop.call_soon(self.pump)

    def pump(self) -> None:
        """Send what the dispatch rule allows now; arm the gather timer for the rest."""
        self._scheduled = None
        queue = self.queue
        if not queue:
            return
        ready, idle, busy = self._load()
        while queue:
            if idle <= 0 and not self._gathered(ready, busy):
                break
            # idle workers share the queue evenly (ceil), so none waits while another works
            calls = self._take(-(-len(queue) // idle) if idle > 1 else self._limit)
            if not calls:
                break
            self._send_calls(calls, _Family(2 * len(calls)))
            busy += 1
            idle -= 1
        if queue and self._timer is None and busy < _PIPELINE_DEPTH * ready:
            delay = queue[0].t0 + self._wait_s - time.perf_counter()
            self._timer = self.loop.call_later(max(delay, 0.0), self._on_timer)

    def _gathered(self, ready: int, busy: int) -> bool:
        """All workers busy: is a gathered batch due (full, or its oldest waited enough)?"""
        if busy >= _PIPELINE_DEPTH * ready:
            return False
        queue = self.queue
        return len(queue) >= self._max_batch or (
            time.perf_counter() - queue[0].t0 >= self._wait_s
        )

    def _on_timer(self) -> None:
        """The oldest call waited batch_wait_s: pump, unless a pump is already due (it may
        wait behind callers an answer woke in this turn, and must not be run ahead)."""
        self._timer = None
        if self._scheduled is None:
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
        family: _Family,
        *,
        split: bool = False,
        retry: bool = False,
        held: list[Call] | None = None,
    ) -> None:
        batch = CallBatch(calls, family, split, held or [])
        try:
            payload = pickle.dumps([c.item for c in calls], protocol=5)
        except Exception as exc:
            self._unpicklable(calls, held or [], exc)
            return
        attempt = Attempt(self._new_id(), 1, len(calls), payload, token=batch)
        self.in_flight.add(batch)
        if split:
            self.isolation_tries += 1
        if retry:
            self._retry([attempt])
        else:
            self._send(attempt)

    def _unpicklable(self, calls: list[Call], held: list[Call], exc: Exception) -> None:
        """A batch that cannot be pickled for the worker: the callers whose items cannot
        be get a UsageError; the others (and a held half) go back to the front of the
        queue, for the next batch. Every call taken out of the queue stays answered."""
        keep: list[Call] = []
        for call in calls:
            try:
                pickle.dumps(call.item, protocol=5)
            except Exception as item_exc:
                set_exception(call.fut, _pickle_error(call.item, item_exc))
            else:
                keep.append(call)
        if len(keep) == len(calls):  # each item pickles alone, the batch does not
            for call in keep:
                set_exception(call.fut, _pickle_error(call.item, exc))
            keep = []
        keep.extend(c for c in held if not c.fut.done())
        self.queue.extendleft(reversed(keep))
        self.schedule()

    # -- out ---------------------------------------------------------------------------

    def on_outcome(self, attempt: Attempt, outcome: Outcome) -> None:
        batch: CallBatch = attempt.token
        self.in_flight.discard(batch)
        if type(outcome) is Done:
            self._answer(batch, outcome.body)
            if batch.held:
                self._test_held(batch.held, batch.family)
        else:
            self._isolate(attempt, batch, outcome)
        self._after_answers()

    def _answer(self, batch: CallBatch, body: bytes) -> None:
        try:
            values = pickle.loads(body)
        except Exception as exc:
            err = unpickle_error(exc)
            for call in batch.calls:
                set_exception(call.fut, err)
            return
        if not isinstance(values, list):
            values = list(values) if isinstance(values, tuple) else []
        latency, now = self._latency, time.perf_counter()
        for call, value in zip(batch.calls, values, strict=False):
            fut = call.fut
            if not fut.done():
                fut.set_result(value)
                latency(now - call.t0)
        if len(values) < len(batch.calls):
            short = short_result_error(len(values), len(batch.calls))
            for call in batch.calls[len(values) :]:
                set_exception(call.fut, short)

    def _isolate(self, attempt: Attempt, batch: CallBatch, outcome: Outcome) -> None:
        """A try failed: halve a multi-item batch, retry or fail a single item."""
        family = batch.family
        family.last = (attempt, outcome)
        if batch.held:
            self._release(batch.held, family)
        calls = [c for c in batch.calls if not c.fut.done()]
        if not calls:
            return
        if not batch.split:
            for call in calls:
                call.strikes += 1
        if len(calls) > 1 and family.left >= 1:
            self._test_half(calls, family)
            return
        if len(calls) == 1:
            calls[0].solo_tries += 1
        lost = isinstance(outcome, (TimedOut, Crashed))
        if (
            len(calls) == 1
            and lost
            and calls[0].solo_tries < self._max_try
            and family.left >= 1
        ):
            family.left -= 1
            self._send_calls(calls, family, split=batch.split, retry=True)
            return
        self._fail_calls(calls, family, single=batch.split)

    def _release(self, held: list[Call], family: _Family) -> None:
        """The tested half failed, which explains the failure of the batch its held sibling
        was in: the sibling goes back to the front of the queue and joins the next batch,
        with no run() call of its own. Items that were in a failed batch before (a script
        failing on everything) are tried as a part of their own instead, so the budget
        bounds what they cost."""
        fresh: list[Call] = []
        again: list[Call] = []
        for call in held:
            if not call.fut.done():
                (fresh if call.strikes <= 1 else again).append(call)
        self.queue.extendleft(reversed(fresh))
        if not again:
            return
        if family.left >= 1:
            family.left -= 1
            self._send_calls(again, family, split=True, retry=True)
        else:
            self._fail_calls(again, family, single=False)

    def _test_half(self, calls: list[Call], family: _Family) -> None:
        """Send the first half alone, ahead of new work; hold the second for its outcome.

        The half that failed is split again; when the tested half succeeds, the held one
        holds the failure and is split next (or run alone when it is one item). About
        ``log2(n)`` extra run() calls per poison item, against ``2 x log2(n)`` for testing
        both halves of every level.
        """
        if len(calls) == 1:
            family.left -= 1
            self._send_calls(calls, family, split=True, retry=True)
            return
        half = len(calls) // 2
        family.left -= 1
        self._send_calls(
            calls[:half], family, split=True, retry=True, held=calls[half:]
        )

    def _test_held(self, held: list[Call], family: _Family) -> None:
        """The tested half succeeded: the failure is in the held half; test it now."""
        held = [c for c in held if not c.fut.done()]
        if not held:
            return
        if family.left >= 1:
            self._test_half(held, family)
        else:
            self._fail_calls(held, family, single=False)

    def _fail_calls(self, calls: list[Call], family: _Family, *, single: bool) -> None:
        """These callers get the error of the family's last failed try."""
        assert family.last is not None
        err = self._fail(*family.last)
        if len(calls) == 1 and single:
            self.isolated += 1
        for call in calls:
            set_exception(call.fut, err)

    def fail_all(self, exc: BaseException) -> None:
        """Fail every queued call and every call in a batch still out (close / fatal)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self.queue:
            set_exception(self.queue.popleft().fut, exc)
        for batch in list(self.in_flight):
            for call in (*batch.calls, *batch.held):
                set_exception(call.fut, exc)
        self.in_flight.clear()


def _pickle_error(item: Any, exc: Exception) -> UsageError:
    return UsageError(
        f"call() got an item of type {type(item).__qualname__} that cannot be pickled "
        f"({type(exc).__name__}: {exc}); items travel to the worker processes by pickle. "
        "Pass plain data (numbers, strings, lists, dicts), numpy arrays or DataFrames, or "
        "convert the object to one of them first."
    )
