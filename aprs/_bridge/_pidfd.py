"""Process exits as event-loop events: a pidfd turns readable once its process is gone.

    watch_exit(loop, pid, on_exit, kill=) ──► pidfd_open(pid) ──► (kill: SIGKILL through it)
                                          ──► loop.add_reader(pidfd) ... readable:
                                              remove_reader, close, on_exit()
                                          False: no pidfd (no pidfd_open, pid gone): the
                                          caller learns the exit another way
    resolve_exit(loop, proc, fut)         ──► fut.set_result(proc.wait()) once the child
                                              exited: watch_exit, else a thread waits

Used for the pool's spawned workers and orphans (``_pool_reap``) and the zygote
(``_forkserver``). Invariants: nothing polls; each pidfd is closed exactly once, when its
process is gone (a pidfd is readable from then on, so the reader fires once and goes);
a signal sent through the pidfd cannot hit a recycled pid.
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

__all__ = ("resolve_exit", "watch_exit")


def watch_exit(
    loop: asyncio.AbstractEventLoop,
    pid: int,
    on_exit: Callable[[], None],
    *,
    kill: bool = False,
) -> bool:
    """Call ``on_exit()`` on ``loop`` once process ``pid`` is gone (``kill``: SIGKILL it
    first, through the pidfd). False, and nothing happens, when no pidfd can be opened:
    no ``os.pidfd_open`` (not Linux, a kernel < 5.3) or no such process any more."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
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
