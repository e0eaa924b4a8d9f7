"""Parent side of the fork server: start the zygote, ask it for workers, hear their exits.

    ForkServer.start(spec, ...) ──► adopts spec.fork_server (a zygote the job started early,
                                    ``_launch``), else starts one (``Launch.start``)
    fork(token, slot, fds)      ──► b"F" + SCM_RIGHTS(fds)  ──► on_forked(token, pid or -errno)
    signal(pid, sig)            ──► b"K" (the zygote signals only a child it has not reaped,
                                    so a recycled pid is never hit)
    zygote reaped a worker      ──► on_exit(pid, exit code)   (Popen's convention: -N = signal N)
    control socket EOF          ──► on_gone(exit code of the zygote)
    close()                     ──► EOF to the zygote; resolves once it has exited

Every event arrives through one ``loop.add_reader`` on the control socket and the zygote's
pidfd: nothing polls. Replies to fork requests come back in request order (one
single-threaded server), so a FIFO of tokens matches them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import subprocess
from collections import deque
from collections.abc import Callable
from typing import Any

from .._backends._base import WorkerSpec
from ._launch import Launch, resolve_worker_start
from ._pidfd import resolve_exit
from ._zygote import REC

__all__ = ("ForkServer", "resolve_worker_start")

log = logging.getLogger("aprs.pool")

_RECV_SIZE = 1 << 16
_CLOSE_GRACE_S = 2.0  # close(): time to read EOF before the zygote is killed


class ForkServer:
    """One zygote process and its control socket; use from the event loop thread only."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        sock: socket.socket,
        on_forked: Callable[[Any, int], None],
        on_exit: Callable[[int, int], None],
        on_gone: Callable[[int], None],
    ) -> None:
        self.proc = proc
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._on_forked = on_forked
        self._on_exit = on_exit
        self._on_gone = on_gone
        self._waiting: deque[Any] = deque()  # tokens of fork requests not answered yet
        self.info: dict[str, Any] = {}  # what the zygote preloaded (its first message)
        self.exited: asyncio.Future[int] = self._loop.create_future()
        self._open = True
        self._loop.add_reader(sock.fileno(), self._on_readable)
        # exited: the zygote's exit code once it is gone (its pidfd; else a thread waits)
        resolve_exit(self._loop, proc, self.exited)

    @classmethod
    def start(
        cls,
        spec: WorkerSpec,
        on_forked: Callable[[Any, int], None],
        on_exit: Callable[[int, int], None],
        on_gone: Callable[[int], None],
    ) -> ForkServer:
        """Adopt the zygote the job started early (``spec.fork_server``), else start one."""
        early = spec.fork_server
        launch = early if isinstance(early, Launch) and early.adopt() else None
        if launch is None:
            launch = Launch.start(spec)
        return cls(launch.proc, launch.sock, on_forked, on_exit, on_gone)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def fork(self, token: Any, slot: int, fds: tuple[int, ...]) -> None:
        """Ask for a worker on ``fds``; ``on_forked(token, pid)`` follows. Raises OSError."""
        if not self._open:
            raise OSError("the worker fork server has exited")
        try:
            socket.send_fds(self._sock, [REC.pack(b"F", slot, 0)], list(fds))
        except (BrokenPipeError, ConnectionResetError):
            # it died before this request (a zygote started early may have, in its
            # preload): its EOF, already readable, reports that through on_gone
            return
        self._waiting.append(token)

    def signal(self, pid: int, sig: int) -> None:
        if self._open:
            with contextlib.suppress(OSError):
                self._sock.sendall(REC.pack(b"K", pid, sig))

    def close(self) -> asyncio.Future[int]:
        """Let the zygote exit (EOF on its socket); the future resolves when it has.

        A zygote still in its preload reads the EOF only afterwards: it is killed after
        ``_CLOSE_GRACE_S`` (it has no worker then, or they have all exited).
        """
        self._shut()
        if not self.exited.done():
            self._loop.call_later(_CLOSE_GRACE_S, self.kill)
        return self.exited

    def kill(self) -> None:
        """SIGKILL the zygote (its workers die with it); a no-op once it was reaped."""
        if self.proc.returncode is None and not self.exited.done():
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    def _shut(self) -> None:
        if self._open:
            self._open = False
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()

    def _on_readable(self) -> None:
        while self._open:
            try:
                data = self._sock.recv(_RECV_SIZE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._shut()
                self.exited.add_done_callback(lambda f: self._on_gone(f.result()))
                return
            self._record(data)

    def _record(self, data: bytes) -> None:
        if data[:1] == b"L":
            with contextlib.suppress(ValueError):
                self.info = json.loads(data[1:])
            log.debug("fork server (pid %d) preloaded %s", self.pid, self.info)
            return
        kind, a, b = REC.unpack(data)
        if kind == b"X":
            self._on_exit(a, b)
        elif kind in (b"P", b"E"):
            token = self._waiting.popleft()
            self._on_forked(token, a if kind == b"P" else -max(a, 1))
