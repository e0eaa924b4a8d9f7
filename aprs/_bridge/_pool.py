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
after a failed try: the Runner's isolation tries follow failures).

Workers start as fresh interpreters (``worker_start="spawn"``) or are forked by the fork
server (``_forkserver``, the default on Linux): same pipes, same main loop, same outcomes; a
forked worker's pid arrives with the zygote's reply, its exit code is relayed by the zygote
(which reaps it), and signals go through the zygote. The zygote dying is fatal
(``_on_zygote_gone``): its workers are killed with it and their batches requeued.

Worker states: STARTING (spawned, init() running) -> READY -> STOPPING -> EXITED. init()
raising or dying is retried ``max_init_tries`` times per slot; a hung init() once per slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import logging
import os
import signal
import subprocess
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .._backends._base import (
    Attempt,
    BackendListener,
    BackendStatistics,
    Crashed,
    Done,
    Failed,
    Outcome,
    TimedOut,
    WorkerSpec,
)
from .._errors import BackendError, ConfigError, EntryScriptError, InitFailedError
from ._forkserver import ForkServer, resolve_worker_start
from ._protocol import (
    BatchDone,
    BatchFailed,
    FrameDecoder,
    FrameTooLarge,
    Init,
    InitFailed,
    Ready,
    RunBatch,
    SendBuffer,
    Shutdown,
    ToParent,
    parent_decoder,
)

__all__ = ("LocalPool", "WorkerState")

log = logging.getLogger("aprs.pool")

# bytes per read: large enough that one read drains many frames. Reads go into one reused
# buffer: an os.read(fd, 256 KiB) allocates (often mmaps) 256 KiB per call, which measured
# +40 us per Runner round trip.
_READ_SIZE = 1 << 18
_PIPE_SIZE = (
    1 << 20
)  # F_SETPIPE_SZ: fewer wake-ups for large payloads (Linux default max)
_KILL_GRACE_S = 2.0  # terminate -> kill escalation for hung workers
_SHUTDOWN_GRACE_S = 10.0  # graceful stop: time for shutdown() before escalation
_F_SETPIPE_SZ = 1031
_PIPELINE_S = 0.0002  # adaptive depth: 1 + this / mean run() time, capped at max_depth
_IOV_MAX = 512  # buffers per writev (the OS limit is 1024)


class WorkerState(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"
    EXITED = "exited"


@dataclass(slots=True)
class _Worker:
    index: int
    proc: subprocess.Popen[bytes] | None  # spawned; None: forked by the zygote
    wfd: int
    rfd: int
    lifeline: int
    pid: int = 0  # 0 until the zygote replies with it
    child_fds: tuple[int, ...] = ()  # the worker's pipe ends, until it has them
    pending_signal: int = 0  # asked for before the pid was known
    exit_code: int | None = None  # relayed by the zygote
    orphaned: bool = False  # its zygote died: killed with it, not a crash of the script
    state: WorkerState = WorkerState.STARTING
    inflight: deque[Attempt] = field(default_factory=deque)
    out: SendBuffer = field(default_factory=SendBuffer)
    writing: bool = False  # the pipe was full: a writer callback drains ``out``
    dirty: bool = False  # in the pool's list of workers to flush this loop turn
    decoder: FrameDecoder[ToParent] = field(
        default_factory=lambda: FrameDecoder(parent_decoder)
    )
    head_started: float = 0.0
    deadline: float = 0.0
    timer: asyncio.TimerHandle | None = None
    timed_out: bool = False
    killed: bool = False  # the pool sent it SIGTERM/SIGKILL (no OOM hint then)
    exited: asyncio.Future[int] | None = None


class LocalPool:
    """A pool of worker processes, each running init() once and run() per mini-batch.

    Use from inside a running event loop: ``await pool.start()``, ``pool.try_submit(a)``,
    outcomes arrive through the listener, ``await pool.aclose()`` stops every process.
    """

    def __init__(self, spec: WorkerSpec, listener: BackendListener) -> None:
        self._spec = spec
        self._listener = listener
        self._loop = asyncio.get_running_loop()
        self._workers: list[_Worker | None] = [None] * spec.process_count
        self._init_tries = [0] * spec.process_count
        self._dead_slots: set[int] = set()
        self._ready_once = asyncio.Event()
        self._closing = False
        self._ewma_run_s: float | None = None  # mean run() time; None until measured
        # One batch per worker until run() has been timed: the first worker to be ready
        # must not take a pipeline's worth of possibly long batches from the others.
        self._depth = 1
        self._spawned = self._crashed = self._timed_out = self._init_failures = 0
        self._last_init_failure: InitFailed | None = None
        self._fatal: BaseException | None = None
        self._reaping: set[asyncio.Future[int]] = set()
        self._dirty: list[_Worker] = []
        self._rbufs = [bytearray(_READ_SIZE)]  # one read buffer for every worker
        self._rview = memoryview(self._rbufs[0])
        self._flush_scheduled = False
        self._owed = False  # replies settled in this read, before the one on_capacity
        self._zygote: ForkServer | None = None  # worker_start="fork-server"
        # forked workers whose exit the zygote has not relayed yet
        self._by_pid: dict[int, _Worker] = {}

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
        await self._ready_once.wait()
        if self._fatal is not None:
            raise self._fatal

    def abort(self) -> None:
        """The owner is stopping: respawn nothing more, and let start() return now."""
        self._closing = True
        self._ready_once.set()

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
            if w is not None
            and w.state is WorkerState.READY
            and len(w.inflight) < depth
        )

    def try_submit(self, attempt: Attempt) -> bool:
        """Send ``attempt`` to the least busy READY worker; False if all are full."""
        best: _Worker | None = None
        depth = self._depth
        for w in self._workers:
            if (
                w is None
                or w.state is not WorkerState.READY
                or len(w.inflight) >= depth
            ):
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

    def load(self) -> tuple[int, int, int]:
        ready = idle = busy = 0
        for w in self._workers:
            if w is None:
                continue
            n = len(w.inflight)
            busy += n
            if w.state is WorkerState.READY:
                ready += 1
                if not n:
                    idle += 1
        return ready, idle, busy

    def pids(self) -> list[int]:
        return [w.pid for w in self._workers if w is not None and w.pid]

    def fork_server_pid(self) -> int | None:
        """The zygote's pid, or None when workers are spawned (worker_start="spawn")."""
        return self._zygote.pid if self._zygote is not None else None

    def statistics(self) -> BackendStatistics:
        ready = sum(
            1 for w in self._workers if w is not None and w.state is WorkerState.READY
        )
        return BackendStatistics(
            workers_ready=ready,
            in_flight=self.in_flight(),
            spawned=self._spawned,
            crashed=self._crashed,
            timed_out=self._timed_out,
            init_failures=self._init_failures,
            depth=self._depth,
        )

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
            if w.state is WorkerState.READY and graceful:
                w.state = WorkerState.STOPPING
                self._send(w, Shutdown())
                self._loop.call_later(_SHUTDOWN_GRACE_S, self._terminate, w)
            elif w.state is not WorkerState.EXITED:
                w.state = WorkerState.STOPPING
                self._terminate(w)
            assert w.exited is not None
            waits.append(w.exited)
        waits.extend(self._reaping)
        if waits:
            await asyncio.shield(asyncio.gather(*waits, return_exceptions=True))
        if self._zygote is not None:  # after its workers: they die with it
            await asyncio.shield(self._zygote.close())

    # -- spawning -----------------------------------------------------------------------

    def _spawn(self, slot: int) -> None:
        """Start the worker of ``slot``, send it Init and arm its init timeout."""
        spec = self._spec
        if self._zygote is not None:
            w = self._fork_worker(slot, self._zygote)
        else:
            w = _start_process(slot, spec)
        self._workers[slot] = w
        self._spawned += 1
        self._loop.add_reader(w.rfd, self._on_readable, w)
        init = Init(
            spec.entry_script,
            spec.source_directory,
            spec.argv,
            slot,
            spec.result_mode,
            spec.logging_level,
            spec.log_dir,
            spec.output_dir,
            spec.redirect_stdio,
        )
        self._send(w, init)
        w.head_started = self._loop.time()
        w.deadline = w.head_started + self._init_timeout_s()
        w.timer = self._loop.call_at(w.deadline, self._on_timer, w)
        log.debug("started worker %d (pid %d; 0: forking)", slot, w.pid)

    def _fork_worker(self, slot: int, zygote: ForkServer) -> _Worker:
        """Ask the zygote for the worker of ``slot``; its pid arrives in ``_on_forked``."""
        w = _Worker(slot, None, *_worker_pipes())
        try:
            zygote.fork(w, slot, w.child_fds)
        except BaseException:
            for fd in (w.wfd, w.rfd, w.lifeline, *w.child_fds):
                os.close(fd)
            raise
        return w

    def _on_forked(self, w: _Worker, pid: int) -> None:
        """The zygote's reply to a fork request: the pid, or -errno when fork() failed."""
        for fd in w.child_fds:  # the worker has its own copies now (or never will)
            os.close(fd)
        w.child_fds = ()
        if pid < 0:
            log.error(
                "worker %d: the fork server could not fork it (%s)",
                w.index,
                os.strerror(-pid),
            )
            self._on_worker_gone(w, 1)  # its pipes read EOF: handled as a death
            return
        w.pid = pid
        self._by_pid[pid] = w
        if w.pending_signal:
            self._signal(w, w.pending_signal)

    def _on_worker_exit(self, pid: int, code: int) -> None:
        """The zygote reaped a worker (relayed in order after its fork reply)."""
        w = self._by_pid.pop(pid, None)
        if w is not None:
            self._on_worker_gone(w, code)

    def _on_worker_gone(self, w: _Worker, code: int) -> None:
        if w.exit_code is None:
            w.exit_code = code
        if w.exited is not None and not w.exited.done():
            w.exited.set_result(w.exit_code)

    def _on_zygote_gone(self, code: int) -> None:
        """The zygote exited: its workers died with it (PDEATHSIG). Fatal unless closing.

        Not restarted: every worker's batch would fail through no fault of the script,
        and a zygote that died once (the OOM killer, a signal) would likely die again. The
        batches its workers held go back to the owner (on_requeue) before the fatal error,
        which fails them with it (the Runner) or stops the job (they run on resume).
        """
        zygote = self._zygote
        assert zygote is not None
        every = {id(w): w for w in [*self._by_pid.values(), *self._workers] if w}
        lost: list[Attempt] = []
        for w in every.values():
            if w.proc is not None or w.exit_code is not None:
                continue  # exited (relayed) before the zygote died: already handled
            self._cancel_timer(w)
            if w.state is not WorkerState.EXITED:
                w.state = WorkerState.STOPPING
            lost.extend(w.inflight)
            w.inflight.clear()
            self._reap_orphan(w)
        self._by_pid.clear()
        if lost:
            self._listener.on_requeue(lost)
        if not self._closing:
            self._set_fatal(
                BackendError(
                    f"The worker fork server (pid {zygote.pid}) "
                    f"{_describe_exit(code)}, and the workers it had started were "
                    "stopped with it. Check the machine's free memory, or set "
                    'worker_start="spawn" (--worker-start spawn, or '
                    "APRS_WORKER_START=spawn) to start each worker as its own "
                    "interpreter."
                )
            )

    def _reap_orphan(self, w: _Worker) -> None:
        """Kill a worker of a dead zygote and resolve its exit once it is gone (pidfd)."""
        w.orphaned = True
        for fd in w.child_fds:
            os.close(fd)
        w.child_fds = ()
        try:
            pidfd = os.pidfd_open(w.pid) if w.pid else -1
        except OSError:
            pidfd = -1
        if pidfd < 0:
            self._on_worker_gone(w, -signal.SIGKILL)
            return
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)

        def on_exit() -> None:
            self._loop.remove_reader(pidfd)
            os.close(pidfd)
            self._on_worker_gone(w, -signal.SIGKILL)

        self._loop.add_reader(pidfd, on_exit)

    def _respawn(self, slot: int) -> None:
        """Replace the worker of ``slot``; a slot that cannot spawn is given up."""
        if self._closing:
            return
        try:
            self._spawn(slot)
        except OSError as exc:
            log.error("worker %d could not be started again: %s", slot, exc)
            self._dead_slots.add(slot)
            alive = any(
                w is not None
                and w.state is WorkerState.READY
                and i not in self._dead_slots
                for i, w in enumerate(self._workers)
            )
            if not alive:
                self._set_fatal(
                    BackendError(
                        f"No worker process can be started ({exc}). Check the machine's "
                        "process and file limits (ulimit -u / -n) and free memory."
                    )
                )

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
            if w.out and not w.writing and w.state is not WorkerState.EXITED:
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
            WorkerState.STARTING,
            WorkerState.READY,
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
        if kind is BatchDone:
            if not w.inflight:
                return  # nothing in flight: already accounted
            self._finish_head(w, msg.batch_id, msg.run_s)
            done = Done(msg.returned, body, msg.run_s, w.pid, w.index, items=msg.items)
            self._settle(w, done, refill=False)
        elif kind is BatchFailed:
            if not w.inflight:
                return
            self._finish_head(w, msg.batch_id, msg.run_s)
            failed = Failed(
                msg.error_type,
                msg.message,
                msg.traceback,
                body,
                msg.run_s,
                w.pid,
                w.index,
                items=msg.items,
            )
            self._settle(w, failed, refill=False)
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
            self._depth = self._spec.min_depth
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
        ewma = self._ewma_run_s
        ewma = run_s if ewma is None else ewma + 0.1 * (run_s - ewma)
        self._ewma_run_s = ewma
        # enough batches queued per worker to cover ~_PIPELINE_S of round trips and
        # wake-ups; 1 for batches long enough that queueing only hurts the tail
        depth = 1 + int(_PIPELINE_S / max(ewma, 1e-6))
        self._depth = max(min(depth, self._spec.max_depth), self._spec.min_depth)
        w.head_started = self._loop.time()

    # -- lifecycle events ---------------------------------------------------------------

    def _on_ready(self, w: _Worker) -> None:
        self._cancel_timer(w)
        if self._closing:
            return
        w.state = WorkerState.READY
        self._init_tries[w.index] = 0
        self._ready_once.set()
        self._listener.on_capacity()

    def _on_init_failed(self, w: _Worker, msg: InitFailed) -> None:
        self._cancel_timer(w)
        w.state = WorkerState.STOPPING
        self._terminate(w)
        if msg.kind in ("import", "no_run"):
            no_run = msg.kind == "no_run"
            detail = msg.message if no_run else f"{msg.error_type}: {msg.message}"
            self._set_fatal(
                EntryScriptError.in_worker(
                    self._spec.entry_script,
                    no_run=no_run,
                    detail=detail,
                    traceback_text=msg.traceback,
                )
            )
            return
        self._last_init_failure = msg
        self._init_failed_slot(
            w.index, f"init() raised {msg.error_type}: {msg.message}"
        )

    def _init_failed_slot(self, slot: int, reason: str, *, hung: bool = False) -> None:
        """A worker of ``slot`` did not get through init(): try again, or give the slot up.

        init() raising or the process dying is retried up to ``max_init_tries`` times per
        slot. A hung init() is not: each slot waits for it once, so a job whose init() hangs
        fails after one init timeout, not after ``max_init_tries`` of them.
        """
        self._init_failures += 1
        self._init_tries[slot] += 1
        tries = self._init_tries[slot]
        log.warning("worker %d: %s (init attempt %d)", slot, reason, tries)
        if self._closing:
            return
        if tries < self._spec.max_init_tries and not hung:
            self._respawn(slot)
            return
        self._dead_slots.add(slot)
        if len(self._dead_slots) == self._spec.process_count:
            last = self._last_init_failure
            self._set_fatal(
                InitFailedError.in_every_slot(
                    attempts=self._init_failures,
                    slots=self._spec.process_count,
                    last_failure=reason,
                    traceback_text=last.traceback if last and not hung else "",
                    hung=hung,
                )
            )

    def _set_fatal(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
            self._ready_once.set()
            self._listener.on_fatal(exc)

    def _on_timer(self, w: _Worker) -> None:
        w.timer = None
        if w.state is WorkerState.STARTING:
            if self._loop.time() < w.deadline:  # uvloop may fire up to 1 ms early
                w.timer = self._loop.call_at(w.deadline, self._on_timer, w)
                return
            timeout = self._init_timeout_s()
            w.state = WorkerState.STOPPING
            w.timed_out = True
            self._loop.remove_reader(w.rfd)  # a late Ready / InitFailed must not count
            self._terminate(w)
            what = (
                "init() did not finish"
                if w.pid
                else "the fork server did not fork the worker (an import of the entry "
                'script\'s libraries hangs there; worker_start="spawn" avoids it)'
            )
            self._init_failed_slot(
                w.index,
                f"{what} within {timeout:g} s, {self._init_bound()} (worker killed)",
                hung=True,
            )
            return
        if w.state is not WorkerState.READY or not w.inflight:
            return
        deadline = w.head_started + self._spec.run_timeout_s
        now = self._loop.time()
        if now < deadline:
            w.timer = self._loop.call_at(deadline, self._on_timer, w)
            return
        self._timed_out += 1
        w.timed_out = True
        self._loop.remove_reader(w.rfd)  # nothing it says from now on counts
        w.state = WorkerState.STOPPING
        log.warning(
            "worker %d (pid %d): run() on mini-batch %d exceeded run_invocation_timeout "
            "(%g s); terminating the worker",
            w.index,
            w.pid,
            w.inflight[0].batch_id,
            self._spec.run_timeout_s,
        )
        self._terminate(w)
        timed_out = TimedOut(
            self._spec.run_timeout_s, now - w.head_started, w.pid, w.index
        )
        self._settle(w, timed_out, lost=True)

    def _init_bound(self) -> str:
        if self._spec.init_timeout_s:
            return "the init timeout"
        return "the init timeout of 3 * run_invocation_timeout + 30 s"

    def _init_timeout_s(self) -> float:
        # Azure's bound for a stuck init(): 3 * run_invocation_timeout + 30 s
        spec = self._spec
        return spec.init_timeout_s or 3 * spec.run_timeout_s + 30

    def _arm_timer(self, w: _Worker) -> None:
        if w.timer is None:
            w.timer = self._loop.call_at(
                w.head_started + self._spec.run_timeout_s, self._on_timer, w
            )

    def _cancel_timer(self, w: _Worker) -> None:
        if w.timer is not None:
            w.timer.cancel()
            w.timer = None

    def _on_eof(self, w: _Worker) -> None:
        """The worker's pipe closed: it exited (or is exiting). Reap it, then decide."""
        self._loop.remove_reader(w.rfd)
        self._cancel_timer(w)
        if w.exited is None:
            self._watch_exit(w)
        assert w.exited is not None
        if w.state is WorkerState.STOPPING or w.state is WorkerState.EXITED:
            return
        was = w.state
        w.state = WorkerState.EXITED
        fut = w.exited
        fut.add_done_callback(lambda f: self._after_crash(w, was, f))

    def _after_crash(
        self, w: _Worker, was: WorkerState, fut: asyncio.Future[int]
    ) -> None:
        if w.orphaned:
            return  # its zygote died: reported once, as a fatal error (_on_zygote_gone)
        code = fut.result()
        how = _describe_exit(code, oom_hint=not w.killed)
        if was is WorkerState.STARTING:
            self._init_failed_slot(
                w.index, f"the worker process died during init(): {how}"
            )
            return
        self._crashed += 1
        log.warning("worker %d (pid %d) died: %s", w.index, w.pid, how)
        crashed = Crashed(
            code,
            -code if code < 0 else None,
            how,
            self._loop.time() - w.head_started,
            w.pid,
            w.index,
        )
        self._settle(w, crashed, lost=True)

    # -- stopping and reaping -----------------------------------------------------------

    def _terminate(self, w: _Worker) -> None:
        if w.exited is None:
            self._watch_exit(w)
        if w.exited is not None and w.exited.done():
            return
        w.killed = True
        self._signal(w, signal.SIGTERM)
        self._loop.call_later(_KILL_GRACE_S, self._kill, w)

    def _kill(self, w: _Worker) -> None:
        if w.exited is not None and w.exited.done():
            return
        log.warning(
            "worker %d (pid %d) ignored SIGTERM for %g s; sending SIGKILL",
            w.index,
            w.pid,
            _KILL_GRACE_S,
        )
        self._signal(w, signal.SIGKILL)
        if not w.pid and self._zygote is not None:
            # never forked: the zygote is stuck in its preload (an import that hangs);
            # killing it ends the wait (_on_zygote_gone resolves its workers)
            self._zygote.kill()

    def _signal(self, w: _Worker, sig: int) -> None:
        """Signal a worker: directly when spawned, through the zygote when forked by it.

        The zygote signals only a child it has not reaped, so a recycled pid is never hit.
        """
        if w.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                w.proc.send_signal(sig)
        elif not w.pid:  # the zygote has not answered yet: signal it on the reply
            if w.pending_signal != signal.SIGKILL:
                w.pending_signal = sig
        elif self._zygote is not None and w.exit_code is None:
            self._zygote.signal(w.pid, sig)

    def _watch_exit(self, w: _Worker) -> None:
        """Resolve ``w.exited`` with the exit code once the process is gone (no polling)."""
        fut: asyncio.Future[int] = self._loop.create_future()
        w.exited = fut
        self._reaping.add(fut)
        fut.add_done_callback(self._reaping.discard)
        fut.add_done_callback(lambda _f: self._release(w))
        if w.proc is None:  # forked: the zygote relays the exit (_on_worker_exit)
            if w.exit_code is not None:
                fut.set_result(w.exit_code)
            return
        proc = w.proc
        try:
            pidfd = os.pidfd_open(w.pid)
        except (AttributeError, OSError):
            waiter = self._loop.run_in_executor(None, proc.wait)

            def on_wait(f: asyncio.Future[int]) -> None:
                if not fut.done():
                    fut.set_result(f.result())

            waiter.add_done_callback(on_wait)
            return

        def on_exit() -> None:
            self._loop.remove_reader(pidfd)
            os.close(pidfd)
            if not fut.done():
                fut.set_result(proc.wait())

        self._loop.add_reader(pidfd, on_exit)

    def _release(self, w: _Worker) -> None:
        w.state = WorkerState.EXITED
        with contextlib.suppress(Exception):
            self._loop.remove_reader(w.rfd)
        w.out.clear()
        if w.writing:
            w.writing = False
            with contextlib.suppress(Exception):
                self._loop.remove_writer(w.wfd)
        for fd in (w.rfd, w.wfd, w.lifeline, *w.child_fds):
            with contextlib.suppress(OSError):
                os.close(fd)
        w.child_fds = ()


def _worker_pipes() -> tuple[int, int, int, int, tuple[int, int, int]]:
    """A worker's three pipes: (w_in, r_out, w_life, 0, the child's (r_in, w_out, r_life))."""
    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    r_life, w_life = os.pipe()
    for fd in (w_in, r_out):
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_SIZE)
    os.set_blocking(w_in, False)
    os.set_blocking(r_out, False)
    return w_in, r_out, w_life, 0, (r_in, w_out, r_life)


def _start_process(slot: int, spec: WorkerSpec) -> _Worker:
    """Start ``python -m aprs._bridge._worker`` with its three pipes (in, out, lifeline)."""
    w_in, r_out, w_life, _, (r_in, w_out, r_life) = _worker_pipes()
    cmd = [
        spec.python,
        "-m",
        "aprs._bridge._worker",
        str(r_in),
        str(w_out),
        str(r_life),
    ]
    try:
        proc = subprocess.Popen(
            cmd,
            pass_fds=(r_in, w_out, r_life),
            env=spec.env,
            stdin=subprocess.DEVNULL,
        )
    except BaseException:
        for fd in (w_in, r_out, w_life):
            os.close(fd)
        raise
    finally:
        for fd in (r_in, w_out, r_life):
            os.close(fd)
    return _Worker(slot, proc, w_in, r_out, w_life, proc.pid)


def _describe_exit(code: int, *, oom_hint: bool = True) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = (
            ", which usually means the machine ran out of memory"
            if -code == signal.SIGKILL and oom_hint
            else ""
        )
        return f"killed by {name} (exit code {code}){hint}"
    return f"exited with code {code}"
