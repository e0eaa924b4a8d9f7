"""Process exits as loop events (aprs._bridge._pidfd), on real child processes.

Each test starts its children outside the event loop (blocking calls), then watches them
on a fresh loop, and checks the exit code or the call that follows their exit, and that no
pidfd is left open. "no pidfd" is a platform or kernel without ``os.pidfd_open``, where a
thread waits for the child instead.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from aprs._bridge._pidfd import resolve_exit, start_time, watch_exit

pytestmark = pytest.mark.skipif(
    not hasattr(os, "pidfd_open"), reason="needs Linux pidfds"
)

EXITS_3 = [sys.executable, "-c", "raise SystemExit(3)"]
SLEEPS = [sys.executable, "-c", "import time; time.sleep(3600)"]


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def exit_codes(*procs: subprocess.Popen[bytes]) -> list[int]:
    """resolve_exit for each of ``procs`` on a fresh loop: their exit codes."""

    async def watch() -> list[int]:
        loop = asyncio.get_running_loop()
        futs: list[asyncio.Future[int]] = []
        for proc in procs:
            futs.append(loop.create_future())
            resolve_exit(loop, proc, futs[-1])
        return await asyncio.wait_for(asyncio.gather(*futs), 60)

    return asyncio.run(watch())


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "no-pidfd"])
def test_resolve_exit_gives_the_exit_code_and_closes_its_pidfd(
    pidfd: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The future gets the child's exit code; with a pidfd it is closed again, without
    one (no os.pidfd_open) a thread waits."""
    if not pidfd:
        monkeypatch.delattr(os, "pidfd_open")
    proc = subprocess.Popen(EXITS_3)
    before = open_fds()
    assert exit_codes(proc) == [3]
    assert open_fds() == before


def test_resolve_exit_of_a_child_exited_before_the_watch() -> None:
    """A child already exited (not reaped: its pidfd is readable at once) and one already
    reaped (its pid may be reused: not watched) both give their exit code."""
    zombie = subprocess.Popen(EXITS_3)
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, left unreaped
    reaped = subprocess.Popen(EXITS_3)
    reaped.wait()
    before = open_fds()
    assert exit_codes(zombie, reaped) == [3, 3]
    assert zombie.returncode == 3, "reaped once its exit was seen"
    assert open_fds() == before


def test_watch_exit_kill_sends_sigkill_and_calls_back_once_it_is_gone() -> None:
    """kill=True: SIGKILL through the pidfd, on_exit() once the process is gone."""
    proc = subprocess.Popen(SLEEPS)
    before = open_fds()
    calls: list[int] = []

    async def watch() -> None:
        gone = asyncio.Event()

        def on_exit() -> None:
            calls.append(proc.pid)
            gone.set()

        assert watch_exit(asyncio.get_running_loop(), proc.pid, on_exit, kill=True)
        await asyncio.wait_for(gone.wait(), 60)
        await asyncio.sleep(0)  # a second on_exit would run here

    asyncio.run(watch())
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert calls == [proc.pid]
    assert open_fds() == before


def test_watch_exit_of_no_such_process_is_false() -> None:
    """A pid with no process (reaped) opens no pidfd: False, on_exit is never called."""
    proc = subprocess.Popen(EXITS_3)
    proc.wait()
    before = open_fds()

    async def watch() -> bool:
        loop = asyncio.get_running_loop()
        return watch_exit(loop, proc.pid, lambda: pytest.fail("called"))

    assert not asyncio.run(watch())
    assert open_fds() == before


def test_start_time_of_a_process_and_of_none() -> None:
    """A live process has a start time (the same on every read); no process has 0."""
    proc = subprocess.Popen(SLEEPS)
    try:
        assert start_time(proc.pid) > 0
        assert start_time(proc.pid) == start_time(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert start_time(proc.pid) == 0


def test_watch_exit_kill_spares_a_process_that_started_at_another_time() -> None:
    """started= is the start time of the process meant: a pid that names a process that
    started at another time (ours reaped, the pid reused) is neither killed nor watched,
    and one that matches is killed."""
    proc = subprocess.Popen(SLEEPS)
    mine = start_time(proc.pid)
    before = open_fds()

    async def watch(started: int) -> bool:
        loop = asyncio.get_running_loop()
        gone = loop.create_future()
        if not watch_exit(
            loop, proc.pid, lambda: gone.set_result(None), kill=True, started=started
        ):
            return False
        await asyncio.wait_for(gone, 10)
        return True

    try:
        assert not asyncio.run(watch(mine + 1))  # another process's start time
        assert proc.poll() is None  # alive: not signalled
        assert open_fds() == before
        assert asyncio.run(watch(mine))
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert open_fds() == before
