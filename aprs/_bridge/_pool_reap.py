"""Stopping and reaping the pool's workers: signals, the kill escalation, exit codes, fds.

    _terminate(w) ──► SIGTERM ──_KILL_GRACE_S──► _kill(w): SIGKILL
                                                 (never forked: kill the stuck zygote)
    _signal(w, sig) ──► spawned: Popen.send_signal
                        forked:  through the zygote; before its pid is known, held in
                                 ``pending_signal`` until the zygote's reply
    _watch_exit(w)  ──► w.exited: a future of the exit code (-N: signal N), resolved by
        spawned:      its pidfd turning readable (no pidfd: Popen.wait in a thread;
                      ``_pidfd.resolve_exit``)
        forked:       the zygote's relay ──► _on_worker_exit ──► _on_worker_gone
        zygote died:  _reap_orphan: SIGKILL through a pidfd, resolved once it is gone
                      (``_pidfd.watch_exit``; no pidfd: at once)
    w.exited resolved ──► _release(w): EXITED, reader / writer removed, every fd closed

``PoolReaper`` is the bottom layer of the pool (``PoolReaper`` ──► ``_pool_life.PoolLifecycle``
──► ``_pool.LocalPool``, the layering of asyncio's ``base_events`` / ``selector_events``): its
methods use only the state set up here (and the event loop, which ``WorkerSlots`` keeps for
the whole pool) and never call into the layers above.

Invariants:
- No polling: every exit arrives as an event (a pidfd reader, the zygote's relay).
- A pid is never signalled once reaped (Popen.send_signal polls first; the zygote signals only
  a child it has not reaped), so a recycled pid is never hit.
- Every exit future is in ``_reaping`` until it resolves: ``aclose`` waits for all of them.
- A started worker's pipes (in, out, lifeline) are closed in ``_release``, once its exit is
  known, and only there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from .._backends._slots import SlotState
from ._forkserver import ForkServer
from ._pidfd import resolve_exit, watch_exit
from ._pool_slot import _Worker

__all__ = ("PoolReaper",)

log = logging.getLogger("aprs.pool")

_KILL_GRACE_S = 2.0  # terminate -> kill escalation for hung workers


class PoolReaper:
    """The pool's processes at the OS level: signal them, learn their exits, free their fds."""

    _loop: (
        asyncio.AbstractEventLoop
    )  # set once, by WorkerSlots.__init__ (_backends/_slots)

    def __init__(self) -> None:
        self._zygote: ForkServer | None = None  # worker_start="fork-server"
        # forked workers whose exit the zygote has not relayed yet
        self._by_pid: dict[int, _Worker] = {}
        self._reaping: set[asyncio.Future[int]] = set()

    # -- signals -------------------------------------------------------------------------

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

    # -- exits ---------------------------------------------------------------------------

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
        resolve_exit(self._loop, w.proc, fut)

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

    def _reap_orphan(self, w: _Worker) -> None:
        """Kill a worker of a dead zygote and resolve its exit once it is gone (pidfd)."""
        w.orphaned = True
        for fd in w.child_fds:
            os.close(fd)
        w.child_fds = ()

        def gone() -> None:
            self._on_worker_gone(w, -signal.SIGKILL)

        # no pid (never forked) or no pidfd (gone already), or its pid names another
        # process by now (reaped by init and reused): nothing to wait for or kill; not our
        # child (the zygote's), so no thread can wait for it either
        if not (
            w.pid and watch_exit(self._loop, w.pid, gone, kill=True, started=w.started)
        ):
            gone()

    def _release(self, w: _Worker) -> None:
        w.state = SlotState.EXITED
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
