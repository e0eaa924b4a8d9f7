"""The Runner's micro-batcher on its own: which calls land in which batch, loop turn by turn.

The dispatcher and the backend are replaced by a list of sent attempts and a fixed load,
so the order of the pump against the callers an answer wakes is exact (with real workers
it depends on when each reply is read). The pool and the workers are tested with real
processes in test_runner_serving.py.
"""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

from aprs._backends import Attempt, Done
from aprs._batcher import Call, MicroBatcher


class Harness:
    """A batcher whose sends are recorded; ``idle`` workers, each taking one batch."""

    def __init__(self, idle: int) -> None:
        self.sent: list[Attempt] = []
        self.idle = idle
        self._next = 0
        self.batcher = MicroBatcher(
            send=self._send,
            retry=self.sent.extend,
            load=lambda: (2, self.idle, 2 - self.idle),
            new_id=self._new_id,
            fail=lambda attempt, outcome: RuntimeError("failed"),
            latency=lambda seconds: None,
            max_batch_size=32,
            batch_limit=256,
            batch_wait_s=3600,
            run_max_try=3,
        )

    def _send(self, attempt: Attempt) -> None:
        self.sent.append(attempt)
        self.idle -= 1

    def _new_id(self) -> int:
        self._next += 1
        return self._next

    def call(self, item: Any) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.batcher.add(Call(item, fut))
        return fut

    def answer(self, attempt: Attempt) -> None:
        items = pickle.loads(attempt.payload)
        self.idle += 1
        self.batcher.on_outcome(attempt, Done(len(items), pickle.dumps(items)))

    def batches(self) -> list[list[Any]]:
        return [pickle.loads(a.payload) for a in self.sent]


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_callers_woken_by_an_answer_join_a_pump_scheduled_before_it():
    """A pump already scheduled when an answer arrives runs after the callers the answer
    woke have queued again: they go out in one batch with the call that scheduled it, not
    behind it in a second one (which split 64 closed-loop callers into groups of 24/16)."""
    h = Harness(idle=1)

    async def caller(first: int) -> None:  # a closed-loop caller: answered, calls again
        await h.call(first)
        await h.call(first + 100)

    tasks = [asyncio.ensure_future(caller(i)) for i in range(3)]
    await _turns()
    assert h.batches() == [[0, 1, 2]]
    h.idle = 0  # the other worker is busy too
    late = h.call("new")  # schedules the pump for the next turn ...
    h.answer(
        h.sent[0]
    )  # ... and in the same turn an answer frees a worker and wakes three
    await _turns()
    assert h.batches() == [[0, 1, 2], ["new", 100, 101, 102]]
    h.answer(h.sent[1])
    await asyncio.gather(late, *tasks)


async def test_the_gather_timer_does_not_run_the_pump_ahead_of_woken_callers():
    """The gather timer firing in the turn of an answer leaves the pump where the answer
    put it, behind the callers it woke (run at once, it sent the queue without them)."""
    h = Harness(idle=1)

    async def caller(first: int) -> None:
        await h.call(first)
        await h.call(first + 100)

    tasks = [asyncio.ensure_future(caller(i)) for i in range(3)]
    await _turns()
    h.idle = 0
    late = h.call("new")
    h.answer(h.sent[0])
    h.batcher._on_timer()  # batch_wait_s ran out in this same turn
    await _turns()
    assert h.batches() == [[0, 1, 2], ["new", 100, 101, 102]]
    h.answer(h.sent[1])
    await asyncio.gather(late, *tasks)


async def test_a_lone_call_goes_out_alone_in_the_next_turn():
    """Nothing else waiting: one call is one batch, sent one loop turn after call()."""
    h = Harness(idle=2)
    fut = h.call("alone")
    assert h.sent == []
    await _turns(1)
    assert h.batches() == [["alone"]]
    h.answer(h.sent[0])
    assert await fut == "alone"
