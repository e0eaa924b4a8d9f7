"""The life of each worker slot: start it, see it ready, time it, hear it die, replace it.

    _spawn(slot) ──► start_process (spawned), or the zygote forks it (_fork_worker; its pid
                     arrives in _on_forked) ──► Init frame (init_message, _slots), init
                     timer armed
    Ready        ──► _on_ready: READY, on_capacity (start() returns at the first one)
    InitFailed   ──► _on_init_failed: killed ──► _init_failed_reply (_slots)
    init timer   ──► _on_timer: killed ──► _init_hung (_slots)
    init failed  ──► respawn (up to max_init_tries; a hung init() not at all) or give the
                     slot up; every slot given up: fatal (InitFailedError) (_slots)
    run timer    ──► _on_timer: past the head's deadline: killed, _settle(TimedOut, lost)
    pipe EOF     ──► _on_eof ──► its exit code (_pool_reap) ──► _after_crash:
                     died in init(): _died_in_init (_slots); else _settle(Crashed, lost)
    zygote died  ──► _on_zygote_gone: its workers killed, their batches requeued, fatal
    lost worker  ──► _respawn (from _settle) ──► _spawn; a slot that cannot start: given up

``PoolLifecycle`` is the middle layer of the pool (``_pool_reap.PoolReaper`` ──►
``PoolLifecycle`` ──► ``_pool.LocalPool``): it calls down into the reaper, and up into
``LocalPool``'s hot path only through ``_send``, ``_on_readable`` and ``_settle`` (abstract
here, so a rename fails loudly). Init tries, timers and the fatal error follow the rules the Ray
backend follows too: it inherits them from ``_backends._slots.WorkerSlots``, and keeps the
one that differs: a hung init() is not tried again.

Invariants:
- One timer per worker, re-armed lazily: ``_arm_timer`` when an idle worker gets a batch; a
  timer that fires before the current head's deadline re-arms itself for it (the head moved
  on, or uvloop fired early).
- A worker that timed out or died counts one failed try, its head's; its reader is removed
  first, so a late reply cannot settle that try again.
- Nothing is respawned once the pool is closing; a fatal error is reported once (the first).
"""

from __future__ import annotations

import asyncio
import logging
import os
from abc import abstractmethod
from typing import Any

from .._backends._base import (
    Attempt,
    BackendListener,
    Crashed,
    Outcome,
    TimedOut,
    WorkerSpec,
)
from .._backends._slots import SlotState, WorkerSlots, init_message
from .._errors import BackendError
from ._forkserver import ForkServer
from ._pidfd import start_time
from ._pool_reap import PoolReaper
from ._pool_slot import _Worker, describe_exit, start_process, worker_pipes
from ._protocol import InitFailed

__all__ = ("PoolLifecycle",)

log = logging.getLogger("aprs.pool")


class PoolLifecycle(PoolReaper, WorkerSlots[_Worker]):
    """Each slot's worker from spawn to death, its timers, and the pool's fatal errors."""

    _log = log

    def __init__(self, spec: WorkerSpec, listener: BackendListener) -> None:
        WorkerSlots.__init__(self, spec, listener, spec.process_count)  # sets _loop
        PoolReaper.__init__(self)
        self._workers: list[_Worker | None] = [None] * spec.process_count

    # -- the hot path: LocalPool (_pool.py) ---------------------------------------------

    @abstractmethod
    def _send(
        self, w: _Worker, msg: Any, body: bytes = b"", *, now: bool = False
    ) -> None:
        """Queue a frame for ``w``."""

    @abstractmethod
    def _on_readable(self, w: _Worker) -> None:
        """``w``'s pipe has replies (or EOF)."""

    @abstractmethod
    def _settle(
        self,
        w: _Worker,
        outcome: Outcome,
        *,
        lost: bool = False,
        refill: bool = True,
    ) -> None:
        """End ``w``'s head try with ``outcome``; ``lost``: requeue the rest, respawn."""

    # -- spawning -----------------------------------------------------------------------

    def _spawn(self, slot: int) -> None:
        """Start the worker of ``slot``, send it Init and arm its init timeout."""
        spec = self._spec
        if self._zygote is not None:
            w = self._fork_worker(slot, self._zygote)
        else:
            w = start_process(slot, spec)
        self._workers[slot] = w
        self._spawned += 1
        self._loop.add_reader(w.rfd, self._on_readable, w)
        self._send(
            w, init_message(spec, slot, spec.entry_script, spec.source_directory)
        )
        self._arm_init_timer(w)
        log.debug("started worker %d (pid %d; 0: forking)", slot, w.pid)

    def _fork_worker(self, slot: int, zygote: ForkServer) -> _Worker:
        """Ask the zygote for the worker of ``slot``; its pid arrives in ``_on_forked``."""
        w = _Worker(slot, None, *worker_pipes())
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
        w.started = start_time(pid)  # its identity, should it outlive the zygote
        self._by_pid[pid] = w
        if w.pending_signal:
            self._signal(w, w.pending_signal)

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
                and w.state is SlotState.READY
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

    # -- lifecycle events ---------------------------------------------------------------

    def _on_ready(self, w: _Worker) -> None:
        self._cancel_timer(w)
        if self._closing:
            return
        w.state = SlotState.READY
        self._slot_ready(w.index)
        self._listener.on_capacity()

    def _on_init_failed(self, w: _Worker, msg: InitFailed) -> None:
        self._cancel_timer(w)
        w.state = SlotState.STOPPING
        self._terminate(w)
        self._init_failed_reply(w.index, msg)

    def _on_timer(self, w: _Worker) -> None:
        w.timer = None
        if w.state is SlotState.STARTING:
            if not self._init_timer_due(w):
                return
            w.state = SlotState.STOPPING
            w.timed_out = True
            self._loop.remove_reader(w.rfd)  # a late Ready / InitFailed must not count
            self._terminate(w)
            what = (
                "init() did not finish"
                if w.pid
                else "the fork server did not fork the worker (an import of the entry "
                'script\'s libraries hangs there; worker_start="spawn" avoids it)'
            )
            self._init_hung(w.index, what, "worker")
            return
        if w.state is not SlotState.READY or not w.inflight:
            return
        if not self._run_timer_due(w):
            return
        now = self._loop.time()
        self._timed_out += 1
        w.timed_out = True
        self._loop.remove_reader(w.rfd)  # nothing it says from now on counts
        w.state = SlotState.STOPPING
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

    def _on_eof(self, w: _Worker) -> None:
        """The worker's pipe closed: it exited (or is exiting). Reap it, then decide."""
        self._loop.remove_reader(w.rfd)
        self._cancel_timer(w)
        if w.exited is None:
            self._watch_exit(w)
        assert w.exited is not None
        if w.state is SlotState.STOPPING or w.state is SlotState.EXITED:
            return
        was = w.state
        w.state = SlotState.EXITED
        fut = w.exited
        fut.add_done_callback(lambda f: self._after_crash(w, was, f))

    def _after_crash(
        self, w: _Worker, was: SlotState, fut: asyncio.Future[int]
    ) -> None:
        if w.orphaned:
            return  # its zygote died: reported once, as a fatal error (_on_zygote_gone)
        code = fut.result()
        how = describe_exit(code, oom_hint=not w.killed)
        if was is SlotState.STARTING:
            self._died_in_init(w.index, how)
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
            if w.state is not SlotState.EXITED:
                w.state = SlotState.STOPPING
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
                    f"{describe_exit(code)}, and the workers it had started were "
                    "stopped with it. Check the machine's free memory, or set "
                    'worker_start="spawn" (--worker-start spawn, or '
                    "APRS_WORKER_START=spawn) to start each worker as its own "
                    "interpreter."
                )
            )
