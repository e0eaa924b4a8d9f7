"""One worker as the pool sees it: its record and states, its pipes, its start, its exit code.

    worker_pipes() ──► in   (parent writes frames)  ─┐
                       out  (parent reads replies)   ├─ the child's ends: spawned, passed to
                       life (EOF: the parent died)  ─┘  Popen; forked, sent to the zygote
    start_process(slot, spec) ──► python -m aprs._bridge._worker r_in w_out r_life ──► _Worker
    exit code (-N: signal N) ──► describe_exit ──► "killed by SIGKILL (exit code -9), ..."

    STARTING ──Ready──────────► READY
        │                         │ run() timed out; aclose
        │ init() failed or        ▼
        │ timed out; aclose ──► STOPPING ──its exit resolved (_release)──► EXITED
    STARTING or READY ──pipe EOF: it died (in init() or in run())──────────► EXITED

Invariants:
- ``inflight`` is in send order; the worker runs it strictly in that order, so its head is the
  batch running now, and ``head_started`` is when that run started.
- A record is touched only on the event loop thread (the pool's callbacks); no locks.
- The child's pipe ends are closed in the parent once the child has its copies: right after
  Popen (spawned), on the zygote's reply (forked: held in ``child_fds`` until then).
- No pool state here: these helpers start, or describe, one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import subprocess
from collections import deque
from dataclasses import dataclass, field

from .._backends._base import Attempt, WorkerSpec
from .._backends._slots import SlotState
from ._protocol import FrameDecoder, SendBuffer, ToParent, parent_decoder

__all__ = ("_Worker", "describe_exit", "start_process", "worker_pipes")

# F_SETPIPE_SZ: fewer wake-ups for large payloads (1 MiB: Linux's default maximum)
_F_SETPIPE_SZ = 1031
_PIPE_SIZE = 1 << 20


@dataclass(slots=True)
class _Worker:
    """The parent's record of one worker process: pipes, pid, batches in flight, timer."""

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
    started: int = 0  # a forked worker's start time (_pidfd.start_time), 0: unknown
    state: SlotState = SlotState.STARTING
    inflight: deque[Attempt] = field(default_factory=deque)
    out: SendBuffer = field(default_factory=SendBuffer)
    writing: bool = False  # the pipe was full: a writer callback drains ``out``
    dirty: bool = False  # in the pool's list of workers to flush this loop turn
    decoder: FrameDecoder[ToParent] = field(
        default_factory=lambda: FrameDecoder(parent_decoder)
    )
    head_started: float = 0.0
    timer: asyncio.TimerHandle | None = None
    timed_out: bool = False
    killed: bool = False  # the pool sent it SIGTERM/SIGKILL (no OOM hint then)
    exited: asyncio.Future[int] | None = None


def worker_pipes() -> tuple[int, int, int, int, tuple[int, int, int]]:
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


def start_process(slot: int, spec: WorkerSpec) -> _Worker:
    """Start ``python -m aprs._bridge._worker`` with its three pipes (in, out, lifeline)."""
    w_in, r_out, w_life, _, (r_in, w_out, r_life) = worker_pipes()
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


def describe_exit(code: int, *, oom_hint: bool = True) -> str:
    """An exit code (Popen's convention: -N = signal N) in words, for logs and errors."""
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
