"""Process exits as event-loop events: a pidfd turns readable once its process is gone.

    watch_exit(loop, pid, on_exit, kill=, started=)
                                          ──► pidfd_open(pid) ──► started given and not
                                              the process's start time: not ours, False
                                          ──► (kill: SIGKILL through it)
                                          ──► loop.add_reader(pidfd) ... readable:
                                              remove_reader, close, on_exit()
                                          False: no pidfd (no pidfd_open, pid gone): the
                                          caller learns the exit another way
    resolve_exit(loop, proc, fut)         ──► fut.set_result(proc.wait()) once the child
                                              exited: watch_exit, else a thread waits

Used for the pool's spawned workers and orphans (``_pool_reap``) and the zygote
(``_forkserver``). Invariants: nothing polls; each pidfd is closed exactly once, when its
process is gone (a pidfd is readable from then on, so the reader fires once and goes);
a pidfd names one process for good, so a signal sent through it reaches that process or
none. Which process it names is decided at ``pidfd_open``: for a process that is not our
child (a worker of a dead fork server, reaped by init) the pid may have been recycled by
then, so the caller passes the start time it recorded (``start_time``, read while the
process was surely its own) and a different process is left alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio
    import subprocess

__all__ = ("resolve_exit", "start_time", "watch_exit")


def start_time(pid: int) -> int:
    """When process ``pid`` started, in clock ticks since boot (/proc/PID/stat field 22);
    0 when unknown (no /proc, no such process)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        # the command name (field 2) may hold spaces and parentheses: split after its end
        return int(stat[stat.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def watch_exit(
    loop: asyncio.AbstractEventLoop,
    pid: int,
    on_exit: Callable[[], None],
    *,
    kill: bool = False,
    started: int = 0,
) -> bool:
    """Call ``on_exit()`` on ``loop`` once process ``pid`` is gone (``kill``: SIGKILL it
    first, through the pidfd). False, and nothing happens, when no pidfd can be opened:
    no ``os.pidfd_open`` (not Linux, a kernel < 5.3) or no such process any more, or when
    ``started`` (``start_time`` of the process meant) is given and ``pid`` now names a
    process that started at another time (ours is gone and its pid was reused)."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return False
    if started and start_time(pid) != started:
        os.close(pidfd)
        return False
    if kill:
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)

    def on_readable() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        on_exit()

    loop.add_reader(pidfd, on_readable)
    return True


def resolve_exit(
    loop: asyncio.AbstractEventLoop,
    proc: subprocess.Popen[bytes],
    fut: asyncio.Future[int],
) -> None:
    """Resolve ``fut`` (unless done already) with the exit code of our child ``proc`` once
    it has exited (Popen's convention: -N = signal N). Without a pidfd a thread waits."""

    def resolve(code: int) -> None:
        if not fut.done():
            fut.set_result(code)

    if proc.returncode is not None:  # reaped already: its pid may be another's by now
        resolve(proc.returncode)
    elif not watch_exit(loop, proc.pid, lambda: resolve(proc.wait())):
        waiter = loop.run_in_executor(None, proc.wait)
        waiter.add_done_callback(lambda f: resolve(f.result()))
