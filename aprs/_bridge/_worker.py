"""Child side of the bridge: the pipe main loop of a worker process.

    python -m aprs._bridge._worker IN_FD OUT_FD LIFELINE_FD

    frames in (IN_FD) ──► Init: setup_process, load script, init() ──► Ready | InitFailed
                      ──► RunBatch: runtime.run_batch() ──► BatchDone | BatchFailed ──► OUT_FD
                      ──► Shutdown / EOF: shutdown(), exit 0

What is done with a batch (decode, run(), encode) lives in ``_runtime``, shared with Ray
actors; this module only moves frames. Batches are handled strictly in the order they arrive;
the parent relies on that to know which batch a hung or crashed worker was running (the oldest
unanswered one). The frame channel uses dedicated pipe fds, so a user's ``print`` can never
corrupt it; stdout and stderr go to the log files under ``<output>/logs/user/``. The worker
dies with its parent: PR_SET_PDEATHSIG on Linux, and everywhere a daemon thread blocked on the
lifeline pipe, which reads EOF when the parent is gone (even after SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Any, BinaryIO

from ._protocol import (
    PREFIX,
    Init,
    RunBatch,
    Shutdown,
    child_decoder,
    encode_header,
)
from ._runtime import MiniBatchContext, ScriptRuntime, load, setup_process

__all__ = ("MiniBatchContext", "main")

_EXIT_PARENT_GONE = 70


class _Channel:
    """Blocking frame I/O on the two pipe fds."""

    def __init__(self, in_fd: int, out_fd: int) -> None:
        self._in: BinaryIO = open(in_fd, "rb", buffering=1 << 16)  # noqa: SIM115
        self._out = out_fd

    def recv(self) -> tuple[Any, bytes] | None:
        prefix = self._in.read(PREFIX.size)
        if len(prefix) < PREFIX.size:
            return None
        header_len, body_len = PREFIX.unpack(prefix)
        header = self._in.read(header_len)
        body = self._in.read(body_len) if body_len else b""
        if len(header) < header_len or len(body) < body_len:
            return None
        return child_decoder.decode(header), body

    def send(self, msg: Any, body: bytes = b"") -> None:
        parts: list[bytes | memoryview] = [encode_header(msg, len(body))]
        if body:
            parts.append(body)
        while parts:
            n = os.writev(self._out, parts)
            while parts and n >= len(parts[0]):
                n -= len(parts[0])
                parts.pop(0)
            if n:
                parts[0] = memoryview(parts[0])[n:]


def _watch_parent(lifeline_fd: int) -> None:
    """Exit at once when the parent goes away (the lifeline pipe reads EOF)."""
    with contextlib.suppress(OSError):
        while os.read(lifeline_fd, 1):
            pass
    os._exit(_EXIT_PARENT_GONE)


def _set_pdeathsig() -> None:
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _serve(chan: _Channel, runtime: ScriptRuntime) -> None:
    """The worker's main loop: one RunBatch at a time, in arrival order."""
    run_batch = runtime.run_batch
    while True:
        frame = chan.recv()
        if frame is None:
            return
        msg, body = frame
        if isinstance(msg, Shutdown):
            return
        if not isinstance(msg, RunBatch):
            continue
        del frame
        reply, out = run_batch(msg.batch_id, msg.kind, body)
        chan.send(reply, out)


def main(argv: list[str] | None = None) -> int:
    """Entry point of a worker process."""
    in_fd, out_fd, lifeline_fd = (int(a) for a in (argv or sys.argv[1:])[:3])
    for fd in (in_fd, out_fd, lifeline_fd):
        os.set_inheritable(fd, False)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent coordinates Ctrl-C
    _set_pdeathsig()
    threading.Thread(target=_watch_parent, args=(lifeline_fd,), daemon=True).start()
    chan = _Channel(in_fd, out_fd)
    frame = chan.recv()
    if frame is None or not isinstance(frame[0], Init):
        return 0
    init: Init = frame[0]
    setup_process(init)
    runtime, reply = load(init)
    chan.send(reply)
    if runtime is None:
        chan.recv()  # wait for the parent to stop us, so it can read the failure first
        return 0
    _serve(chan, runtime)
    return runtime.shutdown()


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
