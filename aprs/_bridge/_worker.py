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
from collections import deque
from typing import Any

from ._protocol import (
    FrameDecoder,
    Init,
    RunBatch,
    SendBuffer,
    Shutdown,
    child_decoder,
    encode_header,
)
from ._runtime import MiniBatchContext, ScriptRuntime, load, setup_process

__all__ = ("MiniBatchContext", "main", "set_pdeathsig")

_EXIT_PARENT_GONE = 70
_READ_SIZE = 1 << 18  # bytes per read, into one reused buffer (no allocation per read)
_IOV_MAX = 512  # buffers per writev


class _Channel:
    """Blocking frame I/O on the two pipe fds (framing: ``_protocol``)."""

    def __init__(self, in_fd: int, out_fd: int) -> None:
        self._in = in_fd
        self._out = out_fd
        self._decoder = FrameDecoder(child_decoder)
        self._ready: deque[tuple[Any, bytes]] = deque()
        self._rbufs = [bytearray(_READ_SIZE)]
        self._rview = memoryview(self._rbufs[0])
        self._send = SendBuffer()

    def recv(self) -> tuple[Any, bytes] | None:
        """The next frame; None at end of input (a frame cut short counts as the end)."""
        ready = self._ready
        while not ready:
            n = os.readv(self._in, self._rbufs)
            if not n:
                return None
            frames = self._decoder.feed(self._rview[:n])
            if len(frames) == 1:
                return frames[0]  # the common case when the parent waits for this reply
            ready.extend(frames)
        return ready.popleft()

    def send(self, msg: Any, body: bytes = b"") -> None:
        header = encode_header(msg, len(body))
        parts: list[bytes | memoryview] = [header, body] if body else [header]
        written = os.writev(self._out, parts)  # one frame: usually all of it at once
        if written == len(header) + len(body):
            return
        out = self._send
        out.extend(parts)
        out.advance(written)
        while out:
            out.advance(os.writev(self._out, out.head(_IOV_MAX)))

    def close(self) -> None:
        os.close(self._in)


def _watch_parent(lifeline_fd: int) -> None:
    """Exit at once when the parent goes away (the lifeline pipe reads EOF)."""
    with contextlib.suppress(OSError):
        while os.read(lifeline_fd, 1):
            pass
    os._exit(_EXIT_PARENT_GONE)


def set_pdeathsig() -> None:
    """Die with the parent (Linux); used by every worker and by the fork server."""
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
    set_pdeathsig()
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
