"""A backend's worker slots: each one's init() tries and timer, and the first fatal error.

    spawn       ──► _arm_init_timer(rec): rec.timer at now + the init timeout
    ready       ──► _slot_ready(slot): its init tries back to 0; start() may return
    InitFailed  ──► _init_failed_reply(slot, msg): the script does not load (import, no
                    run()): fatal (EntryScriptError); init() raised ──► _init_failed_slot
    died in it  ──► _died_in_init(slot, how) ──► _init_failed_slot
    init timer  ──► _init_timer_due(rec): early? re-armed; due: the backend kills the
                    worker ──► _init_hung(slot, what, killed) ──► _init_failed_slot(hung)
    _init_failed_slot ──► _respawn(slot) up to max_init_tries, else the slot is given up;
                          every slot given up: fatal (InitFailedError)
    head started ──► _arm_timer(rec): one lazy timer at head_started + run_invocation_timeout
    run timer   ──► _run_timer_due(rec): early (the head moved on)? re-armed; due: the
                    backend kills the worker, the head TimedOut
    run() timed ──► _run_timed(run_s, pipeline_s): the tries per worker (``_depth``) follow
                    the mean run() time, within [min_depth, max_depth]; a failed try sets
                    ``_min_depth`` (the backend, where it settles the try)
    init_message(spec, slot, script, source) ──► the Init each slot's worker starts with

    SlotState   STARTING ──► READY ──► STOPPING ──► EXITED: a worker's (a process's, an
                actor's) state, on both backends' records (``_Worker``, ``Actor``)

``WorkerSlots`` is an ABC inherited by both backends that host workers, the local pool
(``_bridge/_pool_life.PoolLifecycle``) and Ray (``_ray.RayBackend``), so both start, time
and give up on workers by the same rules and say so in the same words. It also holds what
the two would otherwise each repeat: the end of start() (``_wait_ready``: one worker ready,
or the fatal error raised), ``abort()``, ``load()`` and ``statistics()`` (from ``_records()``), the
spawned / crashed / timed-out counters, the adaptive depth and its ``WorkerSpec.min_depth``
floor (``_run_timed``), and the grace a graceful ``aclose`` gives the
scripts' shutdown() (``_SHUTDOWN_GRACE_S``). A backend supplies ``_respawn(slot)``,
``_on_timer(rec)`` and ``_records()``, its logger (``_log``), its pipeline time (the
``pipeline_s`` of ``_run_timed``), what it calls its workers (``_WORKER``) and whether a hung init() is tried
again (``_RETRY_HUNG_INIT``), the one rule that differs: a local worker whose init() hung
would hang again, while a Ray actor that timed out in ``STARTING`` may only have had no
node to go to (its node gone), which a replacement can get.

Invariants: the depth is 1 until run() is timed, then never below ``min_depth`` (after a
failed try too); a slot's init tries go back to 0 once its worker is ready; a slot given up is
never respawned; a fatal error is reported once (the first); nothing is respawned once
the backend is closing.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence, Sized
from typing import TYPE_CHECKING, ClassVar, Generic, Protocol, TypeVar

from .._bridge._protocol import Init
from .._errors import AZURE_INIT_BOUND, EntryScriptError, InitFailedError
from ._base import BackendStatistics

if TYPE_CHECKING:
    from .._bridge._protocol import InitFailed
    from ._base import BackendListener, WorkerSpec

__all__ = ("SlotState", "WorkerSlots", "init_message")


def init_message(
    spec: WorkerSpec, slot: int, entry_script: str, source_directory: str | None
) -> Init:
    """What the worker of ``slot`` is told first: the script as that worker finds it (Ray
    ships the code elsewhere: ``_ray_connect.actor_init``) and the spec's settings."""
    return Init(
        entry_script,
        source_directory,
        spec.argv,
        slot,
        spec.result_mode,
        spec.logging_level,
        spec.log_dir,
        spec.output_dir,
        spec.redirect_stdio,
    )


class SlotState(enum.Enum):
    """Where a slot's worker (a process, a Ray actor) is in its life: STARTING (init()
    running) -> READY -> STOPPING -> EXITED (drawn in ``_bridge/_pool_slot`` and
    ``_ray_slot``)."""

    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"
    EXITED = "exited"


class SlotRecord(Protocol):
    """What a backend's record of one worker has for its timer and the statistics
    (``_Worker``, ``Actor``)."""

    timer: asyncio.TimerHandle | None
    head_started: float  # spawn time while it starts; then when its running batch began
    state: SlotState

    @property
    def inflight(self) -> Sized: ...  # its tries, oldest (the running head) first


R = TypeVar("R", bound=SlotRecord)


class WorkerSlots(ABC, Generic[R]):
    """Init tries per slot, the init and run timers, and the backend's first fatal error."""

    _WORKER: ClassVar[str] = "worker process"  # what the messages call one worker
    # True: a hung init() counts one try, as a failure does; False: it ends its slot
    _RETRY_HUNG_INIT: ClassVar[bool] = False
    _log: ClassVar[logging.Logger] = logging.getLogger("aprs")  # the backend's logger
    # graceful stop (aclose): time for the scripts' shutdown() before the workers are killed
    _SHUTDOWN_GRACE_S: ClassVar[float] = 10.0

    def __init__(self, spec: WorkerSpec, listener: BackendListener, slots: int) -> None:
        self._spec = spec
        self._listener = listener
        self._loop = asyncio.get_running_loop()
        # tries queued per worker (try_submit): one until run() has been timed, so the
        # first worker ready does not take a pipeline's worth of possibly long batches
        # from the others; then _run_timed's; min_depth after a failed try (the backend
        # sets it) until the next success, so a failing job stops after a few calls
        self._depth = 1
        self._min_depth = spec.min_depth
        self._max_depth = spec.max_depth  # a backend may cap it lower (Ray: 16)
        self._ewma_run_s: float | None = None  # mean run() time; None until measured
        self._init_tries = [0] * slots
        self._dead_slots: set[int] = set()
        self._init_failures = 0
        self._last_init_failure: InitFailed | None = None
        self._ready_once = asyncio.Event()  # start() returns: one is ready, or fatal
        self._closing = False
        self._fatal: BaseException | None = None
        # workers spawned, crashed, timed out, over the backend's life
        self._spawned = self._crashed = self._timed_out = 0

    async def _wait_ready(self) -> None:
        """The end of start(): wait until one worker is ready; raise the fatal error if
        none can start."""
        await self._ready_once.wait()
        if self._fatal is not None:
            raise self._fatal

    def abort(self) -> None:
        """The owner is stopping: respawn nothing more, and let start() return now."""
        self._closing = True
        self._ready_once.set()

    # -- the backend's ------------------------------------------------------------------

    @abstractmethod
    def _respawn(self, slot: int) -> None:
        """Start a new worker in ``slot`` (nothing once closing)."""

    @abstractmethod
    def _on_timer(self, rec: R) -> None:
        """``rec``'s timer fired: its init() or its head's run() may be past due."""

    @abstractmethod
    def _records(self) -> Sequence[R | None]:
        """Each slot's current record (None before its first spawn)."""

    def load(self) -> tuple[int, int, int]:
        """(ready, idle: ready and holding nothing, batches in flight), in one pass."""
        ready = idle = busy = 0
        for rec in self._records():
            if rec is None:
                continue
            n = len(rec.inflight)
            busy += n
            if rec.state is SlotState.READY:
                ready += 1
                if not n:
                    idle += 1
        return ready, idle, busy

    def statistics(self) -> BackendStatistics:
        records = [r for r in self._records() if r is not None]
        return BackendStatistics(
            workers_ready=sum(1 for r in records if r.state is SlotState.READY),
            in_flight=sum(len(r.inflight) for r in records),
            spawned=self._spawned,
            crashed=self._crashed,
            timed_out=self._timed_out,
            init_failures=self._init_failures,
            depth=self._depth,
        )

    # -- depth --------------------------------------------------------------------------

    def _run_timed(self, run_s: float, pipeline_s: float) -> None:
        """A run() took ``run_s``: the mean follows it, and the depth becomes the tries
        that cover ``pipeline_s`` (the backend's round trips), ``1 + pipeline_s / mean``,
        within [min_depth, max_depth] (min_depth wins); 1 for long batches, which
        queued behind another would only hurt the tail while another worker idles."""
        ewma = self._ewma_run_s
        ewma = run_s if ewma is None else ewma + 0.1 * (run_s - ewma)
        self._ewma_run_s = ewma
        depth = 1 + int(pipeline_s / max(ewma, 1e-6))
        self._depth = max(min(depth, self._max_depth), self._min_depth)

    # -- timers -------------------------------------------------------------------------

    def _init_timeout_s(self) -> float:
        # AZURE_INIT_BOUND unless the spec sets its own
        spec = self._spec
        return spec.init_timeout_s or 3 * spec.run_timeout_s + 30

    def _init_bound(self) -> str:
        if self._spec.init_timeout_s:
            return "the init timeout"
        return f"the init timeout of {AZURE_INIT_BOUND}"

    def _arm_init_timer(self, rec: R) -> None:
        """A new worker's timer: it must be ready within the init timeout from now."""
        rec.head_started = self._loop.time()
        rec.timer = self._loop.call_at(
            rec.head_started + self._init_timeout_s(), self._on_timer, rec
        )

    def _init_timer_due(self, rec: R) -> bool:
        """True once the init timeout really passed; a timer that fired early (uvloop: up
        to 1 ms) is re-armed and False."""
        deadline = rec.head_started + self._init_timeout_s()
        if self._loop.time() < deadline:
            rec.timer = self._loop.call_at(deadline, self._on_timer, rec)
            return False
        return True

    def _run_timer_due(self, rec: R) -> bool:
        """True once the running head's run_invocation_timeout really passed; a timer that
        fired before it (the head moved on, or uvloop fired early) is re-armed and False."""
        deadline = rec.head_started + self._spec.run_timeout_s
        if self._loop.time() < deadline:
            rec.timer = self._loop.call_at(deadline, self._on_timer, rec)
            return False
        return True

    def _arm_timer(self, rec: R) -> None:
        if rec.timer is None:
            rec.timer = self._loop.call_at(
                rec.head_started + self._spec.run_timeout_s, self._on_timer, rec
            )

    def _cancel_timer(self, rec: R) -> None:
        if rec.timer is not None:
            rec.timer.cancel()
            rec.timer = None

    # -- init() outcomes ----------------------------------------------------------------

    def _slot_ready(self, slot: int) -> None:
        self._init_tries[slot] = 0
        self._ready_once.set()

    def _init_failed_reply(self, slot: int, msg: InitFailed) -> None:
        """The worker of ``slot`` answered InitFailed (the backend stopped it already)."""
        if msg.kind in ("import", "no_run"):
            no_run = msg.kind == "no_run"
            detail = msg.message if no_run else f"{msg.error_type}: {msg.message}"
            self._set_fatal(
                EntryScriptError.in_worker(
                    self._spec.entry_script,
                    no_run=no_run,
                    detail=detail,
                    traceback_text=msg.traceback,
                    worker=self._WORKER,
                )
            )
            return
        self._last_init_failure = msg
        self._init_failed_slot(slot, f"init() raised {msg.error_type}: {msg.message}")

    def _died_in_init(self, slot: int, how: str) -> None:
        self._init_failed_slot(slot, f"the {self._WORKER} died during init(): {how}")

    def _init_hung(self, slot: int, what: str, killed: str) -> None:
        """``what`` did not happen within the init timeout; the backend killed ``killed``."""
        reason = f"{what} within {self._init_timeout_s():g} s, {self._init_bound()}"
        self._init_failed_slot(slot, f"{reason} ({killed} killed)", hung=True)

    def _init_failed_slot(self, slot: int, reason: str, *, hung: bool = False) -> None:
        """A worker of ``slot`` did not get through init(): try again, or give the slot up.

        init() raising or the worker dying is retried up to ``max_init_tries`` times per
        slot; a hung init() too where ``_RETRY_HUNG_INIT``, else each slot waits for it
        once, so a job whose init() hangs fails after one init timeout, not after
        ``max_init_tries`` of them.
        """
        self._init_failures += 1
        self._init_tries[slot] += 1
        tries = self._init_tries[slot]
        self._log.warning("worker slot %d: %s (init attempt %d)", slot, reason, tries)
        if self._closing:
            return
        if tries < self._spec.max_init_tries and (self._RETRY_HUNG_INIT or not hung):
            self._respawn(slot)
            return
        self._dead_slots.add(slot)
        if len(self._dead_slots) == len(self._init_tries):
            last = self._last_init_failure
            self._set_fatal(
                InitFailedError.in_every_slot(
                    attempts=self._init_failures,
                    slots=len(self._init_tries),
                    last_failure=reason,
                    traceback_text=last.traceback if last and not hung else "",
                    hung=hung,
                    hangs_retried=self._RETRY_HUNG_INIT,
                    init_timeout_s=self._init_timeout_s(),
                    init_timeout_set=bool(self._spec.init_timeout_s),
                )
            )

    def _set_fatal(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
            self._ready_once.set()
            self._listener.on_fatal(exc)
