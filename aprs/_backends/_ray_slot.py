"""The driver's record of one worker slot's actor, and what its loss becomes (its replies:
``_base.reply_outcome``).

    Actor(slot, bundle, handle): STARTING ──► READY
        either state ──► EXITED (died, hung, init failed: the slot gets a new Actor)
                     ──► STOPPING (aclose)
        inflight: (attempt, future of its run() call), oldest first; the head is running
        timer: one lazy deadline, init() while STARTING, then the head's run() (armed and
               cancelled by RayBackend, as _slots.WorkerSlots does for both backends)
    take_calls()           a lost actor's calls: the head (its Crashed | TimedOut), the rest
                           (requeued untouched)
    kill(), describe(exc)  ray.kill without restart; one line saying how an actor died

Invariants: a record stands for one actor generation; RayBackend checks that it is still
its slot's current one before it acts on a reply, so a replaced actor's late replies are
ignored. Nothing here calls the listener or touches another slot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import ray

from ._base import Attempt, Crashed, TimedOut
from ._slots import SlotState

__all__ = ("Actor", "describe")


@dataclass(slots=True, eq=False)
class Actor:
    slot: int
    bundle: int
    handle: Any
    state: SlotState = SlotState.STARTING
    # (attempt, the future of its run() call), oldest first; the head is the running one
    inflight: deque[tuple[Attempt, Future[Any]]] = field(default_factory=deque)
    head_started: float = 0.0
    timer: asyncio.TimerHandle | None = None
    node_id: str = ""
    pid: int = 0

    @property
    def worker_id(self) -> str:
        return f"{self.node_id[:8] or 'pending'}:{self.slot}"

    def crashed(self, how: str, now: float) -> Crashed:
        """The head's outcome when the actor died under it (``how``: describe(exc))."""
        return Crashed(
            None,
            None,
            f"Ray actor on node {self.node_id[:8]}: {how}",
            now - self.head_started,
            self.pid,
            self.slot,
            self.worker_id,
        )

    def timed_out(self, timeout: float, now: float) -> TimedOut:
        """The head's outcome when it ran past ``timeout`` and the actor was killed."""
        return TimedOut(
            timeout, now - self.head_started, self.pid, self.slot, self.worker_id
        )

    def take_calls(self) -> list[Attempt]:
        """Every attempt this actor holds, oldest (the running head) first; it holds none
        afterwards."""
        held = [attempt for attempt, _ in self.inflight]
        self.inflight.clear()
        return held

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            ray.kill(self.handle, no_restart=True)


def describe(exc: BaseException) -> str:
    """One line for people: the error's type and the first line of its message."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:500]
