"""Parent side of the local backend: the process pool and the lifecycle of each worker.

    try_submit(Attempt) ──► the READY worker with the fewest batches in flight
                        ──► SendBuffer ──► one writev per worker per loop turn (rest: add_writer)
    worker pipe readable (loop.add_reader) ──► FrameDecoder ──► _dispatch
    BatchDone / BatchFailed                 ──┐
    head deadline passed (one lazy timer)   ──┼─► _settle: the one place a try ends
    pipe EOF (died; exit code: pidfd, or    ──┘   head -> Done | Failed | TimedOut | Crashed,
      relayed by the fork server)
                                                  lost worker: requeue the rest, respawn

Why callbacks and not one task per worker: a task wake-up per frame costs more than the frame
itself at 50k batches/s; a persistent ``add_reader`` callback parses every frame that arrived in
one ``os.read`` (the approach of asyncio's own transports). All state is touched only from the
event loop thread, so there are no locks. See docs/architecture.md for the measured numbers.

Pipelining: each worker gets up to ``depth`` batches at once so it never waits for a round trip.
It runs them strictly in order, so the parent knows which batch is running (the oldest
unanswered one, "the head") and when it started (when the previous one finished), and times
every run() call on its own. When a worker hangs or dies, only the head counts a failed try; the
batches queued behind it were never started and go back to the front of the queue untouched.
``depth`` adapts to the measured run() time: up to 32 for tiny batches, 1 for long ones
(a long batch queued behind another would hurt the tail while another worker sits idle), and
drops to ``min_depth`` (1 for jobs) after any failure until the next success, so a failing job
stops after a few calls. ``WorkerSpec.min_depth`` is the floor: the Runner uses 2, because its
micro-batcher queues a batch behind a busy worker only when every worker is busy, and that
batch should wait in the worker's pipe rather than one round trip away in the parent (also
after a failed try: the Runner's isolation tries follow failures). The rule is shared with
Ray (``_backends/_slots.WorkerSlots._run_timed``); only the pipeline time differs.

Workers start as fresh interpreters (``worker_start="spawn"``) or are forked by the fork
server (``_forkserver``, the default on Linux): same pipes, same main loop, same outcomes; a
forked worker's pid arrives with the zygote's reply, its exit code is relayed by the zygote
(which reaps it), and signals go through the zygote. The zygote dying is fatal
(``_on_zygote_gone``): its workers are killed with it and their batches requeued.

Worker states: STARTING (spawned, init() running) -> READY -> STOPPING -> EXITED (drawn in
``_pool_slot``). init() raising or dying is retried ``max_init_tries`` times per slot; a hung
init() once per slot.

This module keeps the API and the hot path (pick a worker, frames out, replies in, settle);
``LocalPool`` inherits the rest, layered as asyncio's selector loop is on ``base_events``:

    _pool_slot   _Worker: one worker's record (states: SlotState); its pipes, start, exit code
    _pool_reap   PoolReaper: signals, the SIGTERM -> SIGKILL escalation, exits, fds
    _pool_life   PoolLifecycle(PoolReaper, WorkerSlots): spawn, ready, init failures, timers,
                 deaths, respawn (WorkerSlots: the init and timer rules Ray shares, _backends/_slots)
    _pool        LocalPool(PoolLifecycle): start / try_submit / aclose, writes, reads, _settle
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

import msgspec

from .._backends._base import (
    Attempt,
    BackendListener,
    Done,
    Outcome,
    WorkerSpec,
    reply_outcome,
)
from .._backends._slots import SlotState
from .._errors import BackendError, ConfigError
from ._forkserver import ForkServer, resolve_worker_start
from ._pool_life import PoolLifecycle
from ._pool_slot import _Worker
from ._protocol import (
    BatchDone,
    BatchFailed,
    FrameTooLarge,
    InitFailed,
    Ready,
    RunBatch,
    Shutdown,
)

__all__ = ("LocalPool",)

log = logging.getLogger("aprs.pool")

# bytes per read: large enough that one read drains many frames. Reads go into one reused
# buffer: an os.read(fd, 256 KiB) allocates (often mmaps) 256 KiB per call, which measured
# +40 us per Runner round trip.
_READ_SIZE = 1 << 18
_PIPELINE_S = 0.0002  # adaptive depth: 1 + this / mean run() time, capped at max_depth
_IOV_MAX = 512  # buffers per writev (the OS limit is 1024)


class LocalPool(PoolLifecycle):
    """A pool of worker processes, each running init() once and run() per mini-batch.

    Use from inside a running event loop: ``await pool.start()``, ``pool.try_submit(a)``,
    outcomes arrive through the listener, ``await pool.aclose()`` stops every process.
    """

    def __init__(self, spec: WorkerSpec, listener: BackendListener) -> None:
        super().__init__(spec, listener)  # _depth: 1 until run() is timed (_slots)
        self._dirty: list[_Worker] = []
        self._rbufs = [bytearray(_READ_SIZE)]  # one read buffer for every worker
        self._rview = memoryview(self._rbufs[0])
        self._flush_scheduled = False
        self._owed = False  # replies settled in this read, before the one on_capacity

    # -- public -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker; return once one is READY. Raises if none can start.

        With the fork server (``worker_start``, see ``_forkserver``) the zygote is started
        first and the workers' fork requests queue behind its preload.
        """
        mode = resolve_worker_start(self._spec.worker_start)
        try:
            if mode == "fork-server":
                self._zygote = ForkServer.start(
                    self._spec,
                    self._on_forked,
                    self._on_worker_exit,
                    self._on_zygote_gone,
                )
            for slot in range(self._spec.process_count):
                self._spawn(slot)
        except OSError as exc:
            await self.aclose(graceful=False)
            python = self._spec.python
            if isinstance(exc, (FileNotFoundError, PermissionError)):
                raise ConfigError(
                    f"environment={python!r}: the worker interpreter cannot be started "
                    f"({exc.strerror}). Set environment to a Python executable that has "
                    "aprs installed, or leave it unset to use this one."
                ) from exc
            raise BackendError(
                f"Worker processes cannot be started ({exc}). Check the machine's "
                "process and file limits (ulimit -u / -n) and free memory."
            ) from exc
        await self._wait_ready()

    def kill_now(self) -> None:
        """Kill every worker with SIGKILL, synchronously (the second Ctrl-C)."""
        for w in self._workers:
            if w is not None:
                self._signal(w, signal.SIGKILL)
        if self._zygote is not None and any(w and not w.pid for w in self._workers):
            self._zygote.kill()  # still preloading: its workers die with it

    def capacity(self) -> int:
        """How many attempts try_submit would accept right now."""
        depth = self._depth
        return sum(
            depth - len(w.inflight)
            for w in self._workers
            if w is not None and w.state is SlotState.READY and len(w.inflight) < depth
        )

    def try_submit(self, attempt: Attempt) -> bool:
        """Send ``attempt`` to the least busy READY worker; False if all are full."""
        best: _Worker | None = None
        depth = self._depth
        for w in self._workers:
            if w is None or w.state is not SlotState.READY or len(w.inflight) >= depth:
                continue
            if (
                best is None
                or len(w.inflight) < len(best.inflight)
                # as busy: the one whose running batch started first frees up first
                or (
                    len(w.inflight) == len(best.inflight)
                    and w.head_started < best.head_started
                )
            ):
                best = w
                if not w.inflight:
                    break
        if best is None:
            return False
        idle = not best.inflight
        if idle:
            best.head_started = self._loop.time()
            self._arm_timer(best)
        best.inflight.append(attempt)
        # an idle worker waits for this frame: send it now (latency); busy ones coalesce
        self._send(
            best,
            RunBatch(attempt.batch_id, attempt.attempt, attempt.kind),
            attempt.payload,
            now=idle,
        )
        return True

    def in_flight(self) -> int:
        return sum(len(w.inflight) for w in self._workers if w is not None)

    def pids(self) -> list[int]:
        return [w.pid for w in self._workers if w is not None and w.pid]

    def fork_server_pid(self) -> int | None:
        """The zygote's pid, or None when workers are spawned (worker_start="spawn")."""
        return self._zygote.pid if self._zygote is not None else None

    def _records(self) -> list[_Worker | None]:
        return self._workers

    async def aclose(self, *, graceful: bool = True) -> None:
        """Stop every worker; no process outlives this call.

        graceful: send Shutdown (the worker finishes what it holds, calls shutdown(), exits),
        then escalate after a grace period. Otherwise terminate at once, then kill.
        """
        self._closing = True
        waits: list[asyncio.Future[int]] = []
        for w in self._workers:
            if w is None:
                continue
            self._cancel_timer(w)
            if w.exited is None:
                self._watch_exit(w)
            if w.state is SlotState.READY and graceful:
                w.state = SlotState.STOPPING
                self._send(w, Shutdown())
                self._loop.call_later(self._SHUTDOWN_GRACE_S, self._terminate, w)
            elif w.state is not SlotState.EXITED:
                w.state = SlotState.STOPPING
                self._terminate(w)
            assert w.exited is not None
            waits.append(w.exited)
        waits.extend(self._reaping)
        if waits:
            await asyncio.shield(asyncio.gather(*waits, return_exceptions=True))
        if self._zygote is not None:  # after its workers: they die with it
            await asyncio.shield(self._zygote.close())

    # -- writing ------------------------------------------------------------------------

    def _send(
        self, w: _Worker, msg: Any, body: bytes = b"", *, now: bool = False
    ) -> None:
        """Queue a frame; every worker's queued frames go out in one writev per loop turn.

        Coalescing matters: a pipe write that wakes the reader costs several microseconds,
        more than everything else the parent does per mini-batch. ``now``: an idle worker
        waits for this frame, so write it at once when nothing is queued ahead of it.
        """
        out = w.out
        out.add(msg, body)
        if w.writing:
            return  # the pipe is full: _on_writable sends it
        if now and len(out) <= 2:
            self._write(w)
        elif not w.dirty:
            w.dirty = True
            self._dirty.append(w)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush_all)

    def _flush_all(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        for w in dirty:
            w.dirty = False
            if w.out and not w.writing and w.state is not SlotState.EXITED:
                self._write(w)

    def _write(self, w: _Worker) -> None:
        """Write what the pipe takes; when it is full, wait for it to drain (add_writer)."""
        out = w.out
        try:
            while out:
                out.advance(os.writev(w.wfd, out.head(_IOV_MAX)))
        except BlockingIOError:
            if not w.writing:
                w.writing = True
                self._loop.add_writer(w.wfd, self._write, w)
            return
        except OSError:
            out.clear()  # the worker is gone; EOF on its read pipe handles it
        if w.writing:
            w.writing = False
            self._loop.remove_writer(w.wfd)

    # -- reading ------------------------------------------------------------------------

    def _on_readable(self, w: _Worker) -> None:
        try:
            n = os.readv(w.rfd, self._rbufs)
        except BlockingIOError:
            return
        except OSError:
            n = 0
        if not n:
            self._on_eof(w)
            return
        try:
            frames = w.decoder.feed(self._rview[:n])
        except (FrameTooLarge, msgspec.DecodeError) as exc:
            for msg, body in getattr(exc, "frames", ()):
                self._dispatch(w, msg, body)
            self._owed = False
            self._on_corrupt(w, exc)
            self._listener.on_capacity()
            return
        for msg, body in frames:
            self._dispatch(w, msg, body)
        if self._owed:
            self._owed = False
            self._listener.on_capacity()

    def _on_corrupt(self, w: _Worker, exc: Exception) -> None:
        """The worker's stream cannot be read: kill it and treat it as a crash."""
        if self._workers[w.index] is not w or w.state not in (
            SlotState.STARTING,
            SlotState.READY,
        ):
            return
        log.error(
            "worker %d (pid %d) sent an unreadable frame (%s); killing it",
            w.index,
            w.pid,
            exc,
        )
        self._terminate(w)
        self._on_eof(w)

    def _dispatch(self, w: _Worker, msg: Any, body: bytes) -> None:
        if w.timed_out or self._workers[w.index] is not w:
            return  # a reply that raced a timeout or a replacement: already accounted
        kind = type(msg)
        if kind is BatchDone or kind is BatchFailed:
            if not w.inflight:
                return  # nothing in flight: already accounted
            self._finish_head(w, msg.batch_id, msg.run_s)
            self._settle(w, reply_outcome(msg, body, w.pid, w.index), refill=False)
        elif kind is Ready:
            if not w.pid:  # Ready overtook the zygote's reply
                w.pid = msg.pid
            self._on_ready(w)
        elif kind is InitFailed:
            self._on_init_failed(w, msg)

    def _settle(
        self, w: _Worker, outcome: Outcome, *, lost: bool = False, refill: bool = True
    ) -> None:
        """Every way a try ends, in one place.

        Finish the head (the batch the worker was running), and when the worker is ``lost``
        (timed out or died) hand the batches queued behind it back untouched, in order, and
        before the head's outcome, so that a retry of the head is queued ahead of them. Any
        failure drops the depth to one batch per worker until the next success: a job that
        is failing fast crosses its threshold after a few run() calls, not after a
        pipeline's worth of them. Then report the outcome, replace a lost worker, and say
        there is room; ``refill=False`` (replies read together): once, after the last of
        them (``_on_readable``), so the owner fills once per read, not once per reply.
        """
        head = w.inflight.popleft() if w.inflight else None
        if type(outcome) is not Done:
            self._depth = self._min_depth
        if lost:
            rest = list(w.inflight)
            w.inflight.clear()
            if rest:
                self._listener.on_requeue(rest)
        if head is not None:
            self._listener.on_outcome(head, outcome)
        if lost:
            self._respawn(w.index)
        if refill:
            self._listener.on_capacity()
        else:
            self._owed = True

    def _finish_head(self, w: _Worker, batch_id: int, run_s: float) -> None:
        head = w.inflight[0]
        if head.batch_id != batch_id:  # pragma: no cover - protocol invariant
            raise RuntimeError(
                f"worker {w.index} answered {batch_id}, expected {head.batch_id}"
            )
        # enough batches queued per worker to cover ~_PIPELINE_S of round trips and
        # wake-ups; 1 (min_depth) for batches long enough that queueing only hurts the tail
        self._run_timed(run_s, _PIPELINE_S)
        w.head_started = self._loop.time()
