"""RayBackend: the workers are Ray actors; scheduler, writer, accounting and journal stay here.

    start() ──► connect (address | RAY_ADDRESS | a new Ray on this machine; the code travels
                as the runtime env's working_dir + py_modules)
            ──► placement group: node_count bundles of process_count workers (STRICT_SPREAD)
            ──► one actor per slot, pinned to its node's bundle: start(init) + lifeline()
    try_submit(Attempt) ──► actor.run.remote(batch_id, kind, payload)   (big payloads go
                            through the object store; up to ``depth`` calls queued per actor:
                            1 until run() is timed, then 1 + 50 ms / mean run() up to 16,
                            never below WorkerSpec.min_depth, which is also the depth after
                            a failed or lost call: the local pool's rule, _slots._run_timed)
                            or, ship_inputs, actor.run_shipped.remote(..., file bytes/refs)
                            (the producer read them in a thread: ship_files, _ray_ship)
    a ref resolves (Ray's thread) ──► call_soon_threadsafe ──► drain that actor's finished
                            heads in order ──► listener.on_outcome(Done | Failed)
    lifeline fails / a call raises RayActorError ──► the actor or its node died: the head gets
                            Crashed, the rest are requeued untouched, a replacement starts in
                            the same bundle (init() again)
    head deadline (one lazy timer per actor) ──► ray.kill: head TimedOut, rest requeued,
                            replacement
    both losses (_on_death, _on_hung) end in _lose(actor, Crashed | TimedOut)

Invariants (the local pool's, see ``_base``): an actor runs its calls strictly in submission
order (max_concurrency 1), so the oldest unanswered call is the running one; every submitted
try ends in exactly one outcome or one requeue, decided on the event loop thread, once per
actor generation (a replaced actor's late replies are ignored, so a batch is never reported
twice); no actor outlives ``aclose``.

Around it: ``_ray_connect`` (which Ray, what code travels, each actor's Init), ``_ray_place``
(the placement group), ``_ray_slot`` (one actor's record, the outcomes its loss gives), the actor
class ``_ray_actor``, shipped inputs ``_ray_ship``, the workers' logs ``_ray_logs``. Init
tries, timers and the fatal error are the local pool's rules (``_slots.WorkerSlots``, which
both inherit) but for one: an actor whose init() timed out is tried again (it may only have
had no node to go to).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError

from .._bridge._protocol import BatchDone, InitFailed
from .._errors import BackendError
from ._base import (
    Attempt,
    BackendListener,
    Crashed,
    TimedOut,
    WorkerSpec,
    reply_outcome,
)
from ._options import RayOptions
from ._ray_actor import LIFELINE_GROUP, remote_class
from ._ray_connect import actor_init, connect, job_env
from ._ray_logs import WorkerLogs
from ._ray_place import Placement
from ._ray_ship import ShippedFiles, ship_files
from ._ray_slot import Actor as _Actor  # one slot's actor record (_ray_slot)
from ._ray_slot import describe
from ._slots import SlotState, WorkerSlots

__all__ = ("RayBackend",)

log = logging.getLogger("aprs.ray")

# adaptive depth: 1 + this / mean run() time, so each actor has about 50 ms of work queued.
# A Ray call's round trip is ~1 ms here and more across nodes; with 5 ms, 10 ms batches ran
# one at a time and spent 40-50 % of the time waiting (7.0-7.5 ms per batch on 2 actors
# against an ideal 5.0; 5.8-6.1 ms with 50 ms). The end-of-job imbalance this allows is
# about 50 ms per actor; long batches still go one at a time.
_PIPELINE_S = 0.05
_MAX_DEPTH = 16  # calls queued per actor, at most


class RayBackend(WorkerSlots[_Actor]):
    """node_count x process_count actors, each running init() once and run() per batch."""

    _WORKER = "Ray worker actor"
    # an actor that cannot be placed (its node gone) times out in STARTING like a hung
    # init(); its replacement may find a node, so a timeout counts one init try
    _RETRY_HUNG_INIT = True
    _log = log

    def __init__(self, spec: WorkerSpec, listener: BackendListener) -> None:
        self._opts: RayOptions = spec.ray or RayOptions()
        self._nodes = max(1, spec.node_count)
        self._slots = self._nodes * spec.process_count
        super().__init__(spec, listener, self._slots)
        self._actors: list[_Actor | None] = [None] * self._slots
        # calls per actor: 1 until run() is timed, then adaptive (_run_timed), at most 16
        self._max_depth = min(spec.max_depth, _MAX_DEPTH)
        self._job_id = uuid.uuid4().hex[:8]
        self._owns_ray = False
        self._ship_code = False
        self._placement = Placement(self._opts, self._nodes, spec.process_count)
        self._cls: Any = None
        self._env = job_env(spec.env)
        self._logs = WorkerLogs(spec.log_dir)
        self._t0 = 0.0
        self.connect_s: float | None = None  # ray.init (or reuse) took this long
        self.first_ready_s: float | None = None  # start() to the first init() done
        self.ready_s: float | None = None  # start() to every actor's init() done

    # -- Backend ------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, place every actor, return once one has run init()."""
        self._t0 = time.perf_counter()
        self._connect()
        self.connect_s = time.perf_counter() - self._t0
        log.info("Ray: connected in %.2f s", self.connect_s)
        self._cls = remote_class(ray)
        await self._place()
        for slot in range(self._slots):
            self._spawn(slot)
        await self._wait_ready()

    def try_submit(self, attempt: Attempt) -> bool:
        """Queue ``attempt`` on the least busy ready actor; False when all are full."""
        best: _Actor | None = None
        for a in self._actors:
            if (
                a is None
                or a.state is not SlotState.READY
                or len(a.inflight) >= self._depth
            ):
                continue
            if best is None or len(a.inflight) < len(best.inflight):
                best = a
                if not a.inflight:
                    break
        if best is None:
            return False
        shipped: ShippedFiles | None = attempt.files
        if shipped is None:
            ref = best.handle.run.remote(
                attempt.batch_id, attempt.kind, attempt.payload
            )
        else:  # the refs are top-level arguments: fetched to the node before the call
            ref = best.handle.run_shipped.remote(
                attempt.batch_id,
                attempt.kind,
                attempt.payload,
                (shipped.paths, shipped.inline),
                *shipped.refs,
            )
        fut = self._watch(ref, self._on_run_done, best)
        if not best.inflight:
            best.head_started = self._loop.time()
            self._arm_timer(best)
        best.inflight.append((attempt, fut))
        return True

    def ship_files(self, paths: list[str]) -> ShippedFiles:
        """Read a batch's files for shipping (ship_inputs); blocking, call it in a thread."""
        return ship_files(paths)

    def capacity(self) -> int:
        return sum(
            max(0, self._depth - len(a.inflight))
            for a in self._actors
            if a is not None and a.state is SlotState.READY
        )

    def kill_now(self) -> None:
        self._closing = True
        for a in self._actors:
            if a is not None:
                a.kill()

    async def aclose(self, *, graceful: bool) -> None:
        """Stop every actor (graceful: the scripts' shutdown() first), then disconnect."""
        self._closing = True
        self._ready_once.set()
        stops: list[asyncio.Future[Any]] = []
        for a in self._actors:
            if a is None:
                continue
            self._cancel_timer(a)
            if graceful and a.state is SlotState.READY:
                stop = self._watch(a.handle.stop.remote(), self._on_stopped, a)
                stops.append(asyncio.wrap_future(stop, loop=self._loop))
            a.state = SlotState.STOPPING
        if stops:
            await asyncio.wait(stops, timeout=self._SHUTDOWN_GRACE_S)
        for a in self._actors:
            if a is not None:
                a.kill()
        self._disconnect()

    def _records(self) -> list[_Actor | None]:
        return self._actors

    # -- connecting and placing ---------------------------------------------------------

    def _connect(self) -> None:
        conn = connect(self._opts, self._spec, self._slots)
        self._owns_ray, self._ship_code = conn.owns_ray, conn.ship_code

    async def _place(self) -> None:
        """Reserve one bundle per node; a cluster too small is an error after a bounded wait."""
        try:
            await self._placement.reserve(self._loop)
        except BackendError:
            self._disconnect()
            raise

    def _disconnect(self) -> None:
        self._placement.release()
        self._logs.close()
        if self._owns_ray:
            self._owns_ray = False
            ray.shutdown()

    # -- spawning -----------------------------------------------------------------------

    def _spawn(self, slot: int) -> None:
        options = self._placement.actor_options(slot)
        handle = self._cls.options(**options).remote(self._env, self._job_id, slot)
        a = _Actor(slot, self._placement.bundle_of(slot), handle)
        self._actors[slot] = a
        self._spawned += 1
        init = actor_init(self._spec, slot, ship_code=self._ship_code)
        self._watch(handle.start.remote(init, self._ship_code), self._on_started, a)
        life = handle.lifeline.options(concurrency_group=LIFELINE_GROUP).remote()
        self._watch(life, self._on_lifeline, a)
        self._arm_init_timer(a)

    def _respawn(self, slot: int) -> None:
        if not self._closing:
            self._spawn(slot)

    def _watch(
        self, ref: Any, callback: Callable[[_Actor, Future[Any]], None], a: _Actor
    ) -> Future[Any]:
        """The future of ``ref``; ``callback(a, future)`` runs on the loop once it resolves."""
        fut: Future[Any] = ref.future()
        loop = self._loop

        def resolved(f: Future[Any]) -> None:
            with contextlib.suppress(
                RuntimeError
            ):  # the loop is closed: nobody listens
                loop.call_soon_threadsafe(callback, a, f)

        fut.add_done_callback(resolved)
        return fut

    # -- replies ------------------------------------------------------------------------

    def _current(self, a: _Actor) -> bool:
        return self._actors[a.slot] is a

    def _on_started(self, a: _Actor, fut: Future[Any]) -> None:
        if not self._current(a) or a.state is not SlotState.STARTING:
            return
        try:
            reply, node_id, logs = fut.result()
        except RayActorError as exc:
            self._on_death(a, exc)
            return
        except Exception as exc:  # e.g. RuntimeEnvSetupError: no actor can start
            self._set_fatal(
                BackendError(
                    f"Ray could not start a worker actor: {type(exc).__name__}: {exc}. "
                    "Check that the cluster's nodes can run this Python and install the "
                    "runtime environment (working_dir / py_modules)."
                )
            )
            return
        a.node_id = node_id
        self._logs.append(a.node_id, logs)
        self._cancel_timer(a)
        if isinstance(reply, InitFailed):
            a.state = SlotState.EXITED
            a.kill()
            self._init_failed_reply(a.slot, reply)
            return
        if self._closing:
            return
        a.state = SlotState.READY
        a.pid = reply.pid
        self._slot_ready(a.slot)
        if self.first_ready_s is None:
            self.first_ready_s = time.perf_counter() - self._t0
            log.info("Ray: first worker actor ready after %.2f s", self.first_ready_s)
        if self.ready_s is None and all(
            x is not None and x.state is SlotState.READY for x in self._actors
        ):
            self.ready_s = time.perf_counter() - self._t0
            log.info(
                "Ray: all %d worker actors ready after %.2f s",
                self._slots,
                self.ready_s,
            )
        self._listener.on_capacity()

    def _on_run_done(self, a: _Actor, _fut: Future[Any]) -> None:
        """Deliver every finished call at the head of ``a``'s queue, in order."""
        if not self._current(a) or a.state is not SlotState.READY:
            return
        delivered = False
        while a.inflight and a.inflight[0][1].done():
            attempt, fut = a.inflight[0]
            try:
                reply, body, logs = fut.result()
            except RayError as exc:  # the actor (or its node) died under this call
                self._on_death(a, exc)
                return
            a.inflight.popleft()
            self._logs.append(a.node_id, logs)
            self._finish_head(a, reply.run_s, ok=type(reply) is BatchDone)
            delivered = True
            outcome = reply_outcome(reply, body, a.pid, a.slot, a.worker_id)
            self._listener.on_outcome(attempt, outcome)
            if not self._current(a) or a.state is not SlotState.READY:
                return  # the owner stopped us from inside on_outcome
        if delivered:
            self._listener.on_capacity()

    def _finish_head(self, a: _Actor, run_s: float, *, ok: bool) -> None:
        self._cancel_timer(a)
        if ok:
            self._run_timed(run_s, _PIPELINE_S)
        else:  # min_depth (1 for jobs) until the next success, as the local pool
            self._depth = self._min_depth
        a.head_started = self._loop.time()
        if a.inflight:
            self._arm_timer(a)

    def _on_lifeline(self, a: _Actor, fut: Future[Any]) -> None:
        exc = fut.exception()
        if exc is not None:
            # calls that finished before the death may have their replies queued behind
            # this notice (each future calls back through call_soon_threadsafe): deliver
            # them first, so the crash is charged to the call that was really running
            self._on_run_done(a, fut)
            self._on_death(a, exc)

    def _on_stopped(self, a: _Actor, fut: Future[Any]) -> None:
        with contextlib.suppress(Exception):
            code, logs = fut.result()
            self._logs.append(a.node_id, logs)
            if code:
                log.warning("worker %s: shutdown() raised (see its log)", a.worker_id)

    # -- failures -----------------------------------------------------------------------

    def _on_death(self, a: _Actor, exc: BaseException) -> None:
        """The actor died (killed, crashed, its node gone): once per actor."""
        if not self._current(a) or a.state in (SlotState.STOPPING, SlotState.EXITED):
            return
        was, a.state = a.state, SlotState.EXITED
        self._cancel_timer(a)
        a.kill()  # "unavailable" may still run: make sure nothing answers twice
        how = describe(exc)
        if was is SlotState.STARTING:
            self._died_in_init(a.slot, how)
            return
        self._crashed += 1
        log.warning("worker %s died: %s", a.worker_id, how)
        self._lose(a, a.crashed(how, self._loop.time()))

    def _on_timer(self, a: _Actor) -> None:
        a.timer = None
        if a.state is SlotState.STARTING:
            if self._init_timer_due(a):
                a.state = SlotState.EXITED
                a.kill()
                what = f"the {self._WORKER} was not placed, or did not finish init(),"
                self._init_hung(a.slot, what, "actor")
            return
        if a.state is not SlotState.READY or not a.inflight:
            return
        if self._run_timer_due(a):
            self._on_hung(a, self._loop.time())

    def _on_hung(self, a: _Actor, now: float) -> None:
        self._timed_out += 1
        a.state = SlotState.EXITED
        a.kill()
        timeout = self._spec.run_timeout_s
        log.warning(
            "worker %s: run() on mini-batch %d exceeded run_invocation_timeout (%g s); "
            "killing the actor",
            a.worker_id,
            a.inflight[0][0].batch_id,
            timeout,
        )
        self._lose(a, a.timed_out(timeout, now))

    def _lose(self, a: _Actor, outcome: Crashed | TimedOut) -> None:
        """``a`` is lost (died, or killed hung): its head gets ``outcome``, the calls behind
        it never started go back to the queue untouched, behind the head's retry;
        then a replacement starts and the owner hears there is room."""
        self._depth = self._min_depth
        held = a.take_calls()
        if held:
            head, rest = held[0], held[1:]
            if rest:
                self._listener.on_requeue(rest)
            self._listener.on_outcome(head, outcome)
        self._respawn(a.slot)
        self._listener.on_capacity()
