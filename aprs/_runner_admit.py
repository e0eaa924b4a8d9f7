"""The Runner's admission: at most ``max_pending`` items accepted and not yet answered.

    call / submit ──► _admit_now(n): has_room(n) ──► admitted += n ──► queued, run ...
                        │ (call() tries it inline; otherwise, or on no room: _admit(n, wait))
                        │ no room, wait=False ──► RunnerOverloadedError (rejected += 1)
                        │ no room, wait=True  ──► a room future at the back of _room
                        ▼                          (FIFO), woken by _release, checked again
    answered / gave up ──► _release(n): admitted -= n ──► _wake_room: the oldest waiter
    aclose ──► _wake_room(everyone=True): every waiter sees the Runner closed

``RunnerAdmission`` is the base of ``_runner.Runner`` (the layering of the pool's
``_pool_reap`` / ``_pool_life``): it keeps its own state and calls up into ``Runner`` only
through ``_check_open`` (declared here for the type checker).

Invariants:
- ``_admitted`` is the sum of the ``n`` of every admission (``_admit_now`` that returned
  True, ``_admit`` that returned) not released yet; it is checked synchronously before anything is queued, so overload is
  answered in microseconds, with nothing to undo.
- Any ``n`` is admitted while nothing is (a request larger than ``max_pending`` still runs,
  alone); otherwise ``admitted + n <= max_pending``.
- A waiter cancelled while parked wakes the next one: the turn it may have been given is
  not lost.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from ._errors import RunnerOverloadedError

__all__ = ("RunnerAdmission",)


class RunnerAdmission:
    """Counts the items accepted and not yet answered; refuses or parks callers beyond."""

    def __init__(self, max_pending: int | None) -> None:
        self._max_pending = max_pending
        self._admitted = 0  # items accepted and not yet answered
        self._room: deque[asyncio.Future[None]] = deque()  # wait=True callers
        self._rejected = 0  # callers refused with RunnerOverloadedError

    if TYPE_CHECKING:  # the Runner's (_runner.py)

        def _check_open(self) -> None: ...

    def has_room(self, n: int = 1) -> bool:
        """Whether ``n`` more items would be admitted now, without waiting: within
        ``max_pending``, or any ``n`` while nothing is admitted. A service checks a
        request of several items with it before sending any of them (all or nothing)."""
        limit = self._max_pending
        return limit is None or self._admitted + n <= limit or self._admitted == 0

    def _admit_now(self, n: int) -> bool:
        """Admit ``n`` items if there is room now (no waiting, no coroutine)."""
        if self.has_room(n):
            self._admitted += n
            return True
        return False

    async def _admit(self, n: int, wait: bool) -> None:
        self._check_open()
        if self._admit_now(n):
            return
        limit = self._max_pending
        assert limit is not None
        if not wait:
            self._rejected += 1
            raise RunnerOverloadedError(self._admitted, limit)
        while not self.has_room(n):
            room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._room.append(room)
            try:
                await room
            except asyncio.CancelledError:
                self._wake_room()  # pass the turn on
                raise
            self._check_open()
        self._admitted += n

    def _release(self, n: int) -> None:
        self._admitted -= n
        if self._room:
            self._wake_room()

    def _wake_room(self, everyone: bool = False) -> None:
        while self._room:
            room = self._room.popleft()
            if not room.done():
                room.set_result(None)
                if not everyone:
                    return
