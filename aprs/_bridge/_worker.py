"""Child side of the bridge: everything that runs inside a worker process.

    python -m aprs._bridge._worker IN_FD OUT_FD LIFELINE_FD

    frames in (IN_FD) ──► Init: load script, init() ──► Ready | InitFailed ──► frames out (OUT_FD)
                      ──► RunBatch: unpickle, run(), encode ──► BatchDone | BatchFailed
                      ──► Shutdown / EOF: shutdown(), exit 0

Batches are handled strictly in the order they arrive; the parent relies on that to know which
batch a hung or crashed worker was running (the oldest unanswered one). The frame channel uses
dedicated pipe fds, so a user's ``print`` can never corrupt it; stdout and stderr go to the log
files under ``<output>/logs/user/``. The worker dies with its parent: PR_SET_PDEATHSIG on Linux,
and everywhere a daemon thread blocked on the lifeline pipe, which reads EOF when the parent is
gone (even after SIGKILL).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, BinaryIO

from .._tabular._batch import KIND_TABLE, read_table_batch
from .._tabular._output import TableOutput
from .._tabular._read import TableReadError
from ._protocol import (
    PREFIX,
    RESULT_COUNT,
    RESULT_PICKLE,
    RESULT_ROWS,
    BatchDone,
    BatchFailed,
    Init,
    InitFailed,
    Ready,
    RunBatch,
    Shutdown,
    child_decoder,
    encode_header,
)

__all__ = ("MiniBatchContext", "main")

_EXIT_PARENT_GONE = 70


class MiniBatchContext:
    """The optional second argument of ``run(mini_batch, mini_batch_context)``, as in Azure."""

    __slots__ = ("dataset", "minibatch_index", "partition_key_value")

    def __init__(
        self, minibatch_index: int, partition_key_value: dict[str, Any] | None = None
    ) -> None:
        self.minibatch_index = minibatch_index
        self.partition_key_value: dict[str, Any] = partition_key_value or {}
        self.dataset: Any = None

    def __repr__(self) -> str:
        return f"MiniBatchContext(minibatch_index={self.minibatch_index})"


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


def _redirect_stdio(log_dir: str, name: str) -> None:
    for sub, fd in (("stdout", 1), ("stderr", 2)):
        folder = os.path.join(log_dir, "user", sub)
        os.makedirs(folder, exist_ok=True)
        target = os.open(
            os.path.join(folder, f"{name}.{sub}.txt"),
            os.O_WRONLY | os.O_CREAT | os.O_APPEND,
            0o644,
        )
        os.dup2(target, fd)
        os.close(target)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]


def _import_script(init: Init) -> Any:
    """Import the entry script as a module, the way Azure's driver does."""
    script = init.entry_script
    if script.endswith(".py"):
        base = init.source_directory or os.path.dirname(os.path.abspath(script))
        path = script if os.path.isabs(script) else os.path.join(base, script)
        if init.source_directory and not os.path.isabs(script):
            rel = os.path.relpath(path, base)
        else:
            base, rel = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
        module_name = rel[:-3].replace(os.sep, ".").replace("/", ".")
    else:
        base, module_name = init.source_directory or os.getcwd(), script
    sys.path.insert(0, os.path.abspath(base))
    return importlib.import_module(module_name)


def _takes_context(run: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(run).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in positional)


def _failure(batch_id: int, exc: BaseException, started: float, where: str = "") -> Any:
    tb = "".join(traceback.format_exception(exc))
    message = f"{where}{exc}" if where else str(exc)
    return BatchFailed(
        batch_id, type(exc).__name__, message, tb, time.perf_counter() - started
    )


def _encode_result(result: Any, mode: int) -> tuple[int, bytes]:
    """Return (number of returned elements, body) or raise TypeError for a wrong type."""
    if type(result) is tuple:
        result = list(result)
    if isinstance(result, list):
        n = len(result)
        if mode == RESULT_COUNT:
            return n, b""
        if mode == RESULT_PICKLE:
            return n, pickle.dumps(result, protocol=5)
        if not n:
            return 0, b""
        return n, ("\n".join(map(str, result)) + "\n").encode()
    if hasattr(result, "to_csv") and hasattr(result, "columns"):  # a pandas DataFrame
        n = len(result)
        if mode == RESULT_COUNT:
            return n, b""
        if mode == RESULT_PICKLE:
            return n, pickle.dumps(result, protocol=5)
        text = result.to_csv(sep=" ", header=False, index=False) if n else ""
        return n, text.encode()
    raise TypeError(
        f"run() returned {type(result).__module__}.{type(result).__qualname__}; it must "
        "return a list (a tuple is converted) or a pandas DataFrame with one element per "
        "successfully processed item"
    )


def _decode(
    chan: _Channel, msg: RunBatch, body: bytes, started: float
) -> tuple[Any, MiniBatchContext] | None:
    """(items, context) of a batch, or None when a failure was reported instead."""
    key_value: dict[str, Any] = {}
    dataset = None
    try:
        if msg.kind == KIND_TABLE:
            items, key_value, dataset = read_table_batch(body)
        else:
            items = pickle.loads(body)
            if msg.keyed:
                items, key_value = items
    except TableReadError as exc:  # the message names file and line: no traceback
        run_s = time.perf_counter() - started
        failed = BatchFailed(msg.batch_id, "TableReadError", str(exc), "", run_s)
        failed.items = exc.items
        chan.send(failed)
        return None
    except BaseException as exc:
        chan.send(_failure(msg.batch_id, exc, started, "could not unpickle input: "))
        return None
    context = MiniBatchContext(msg.batch_id, key_value)
    context.dataset = dataset
    return items, context


def _serve(chan: _Channel, module: Any, mode: int, output: TableOutput) -> None:
    """The worker's main loop: one RunBatch at a time, in arrival order."""
    run = module.run
    with_context = _takes_context(run)
    while True:
        frame = chan.recv()
        if frame is None:
            return
        msg, body = frame
        if isinstance(msg, Shutdown):
            return
        if not isinstance(msg, RunBatch):
            continue
        started = time.perf_counter()
        decoded = _decode(chan, msg, body, started)
        del body
        if decoded is None:
            continue
        items, context = decoded
        count = len(items) if msg.kind == KIND_TABLE else -1
        if count == 0:  # an empty DataFrame: run() is not called (as in Azure)
            chan.send(BatchDone(msg.batch_id, 0, 0.0, 0))
            continue
        try:
            result = run(items, context) if with_context else run(items)
        except BaseException as exc:
            if isinstance(exc, SystemExit):
                exc = RuntimeError(f"run() called sys.exit({exc.code!r})")
            failed = _failure(msg.batch_id, exc, started)
            failed.items = count
            chan.send(failed, _pickle_exc(exc, mode))
            continue
        try:
            if mode == RESULT_ROWS:
                returned, out = output.encode(result)
            else:
                returned, out = _encode_result(result, mode)
        except BaseException as exc:
            where = (
                ""
                if isinstance(exc, TypeError) and "run() returned" in str(exc)
                else ("could not encode run()'s result: ")
            )
            chan.send(_failure(msg.batch_id, exc, started, where))
            continue
        del result, items
        run_s = time.perf_counter() - started
        chan.send(BatchDone(msg.batch_id, returned, run_s, count), out)


def _pickle_exc(exc: BaseException, mode: int) -> bytes:
    if mode != RESULT_PICKLE:
        return b""
    try:
        return pickle.dumps(exc, protocol=5)
    except Exception:
        return b""


def _load_and_init(chan: _Channel, init: Init) -> Any | None:
    started = time.perf_counter()
    try:
        module = _import_script(init)
    except BaseException as exc:
        chan.send(_init_failed("import", exc))
        return None
    if not callable(getattr(module, "run", None)):
        msg = f"the entry script {init.entry_script} does not define a run(mini_batch) function"
        chan.send(InitFailed("no_run", "AttributeError", msg, ""))
        return None
    init_fn = getattr(module, "init", None)
    if callable(init_fn):
        try:
            init_fn()
        except BaseException as exc:
            chan.send(_init_failed("init", exc))
            return None
    chan.send(Ready(os.getpid(), time.perf_counter() - started))
    return module


def _init_failed(kind: str, exc: BaseException) -> InitFailed:
    tb = "".join(traceback.format_exception(exc))
    return InitFailed(kind, type(exc).__name__, str(exc), tb)


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
    name = f"worker{init.worker_index:03d}"
    if init.redirect_stdio and init.log_dir:
        _redirect_stdio(init.log_dir, name)
    logging.basicConfig(
        level=init.logging_level,
        format=f"%(asctime)s %(levelname)s {name} %(name)s: %(message)s",
    )
    sys.argv = [init.entry_script, *init.argv]
    from .._entry_script import install_shim

    install_shim(agent_name=name, output_dir=init.output_dir, log_dir=init.log_dir)
    module = _load_and_init(chan, init)
    if module is None:
        chan.recv()  # wait for the parent to stop us, so it can read the failure first
        return 0
    output = TableOutput.from_run_args(init.argv, init.source_directory)
    _serve(chan, module, init.result_mode, output)
    shutdown = getattr(module, "shutdown", None)
    if callable(shutdown):
        try:
            shutdown()
        except BaseException:
            logging.getLogger("aprs.worker").exception("shutdown() raised")
            return 3
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
