"""Worker side, transport independent: host an entry script and run mini-batches through it.

    setup_process(init)             stdio to log files, logging, sys.argv, the azureml layer
    load(init) ──► import the script (source_directory on sys.path), init()
               ──► (ScriptRuntime, Ready) | (None, InitFailed)
    runtime.run_batch(batch_id, kind, payload)
               ──► decode payload by kind (KIND_TABLE: read the slice with pyarrow, a DataFrame)
               ──► run(mini_batch[, context]) (not for an empty DataFrame)
               ──► encode per result_mode (rows: TableOutput, by append_row_file_name)
               ──► (BatchDone, body) | (BatchFailed, pickled exception or b"")
    runtime.shutdown() ──► the script's shutdown(), if any

Used by the pipe worker (``_worker``) and by Ray actors: nothing here knows pipes, fds or the
parent side (this module must stay importable without asyncio or subprocess). Replies are the
protocol's records, so any transport can carry them.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import os
import pickle
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._tabular._output import TableOutput, wrong_result
from ._protocol import (
    KIND_ITEMS,
    KIND_KEYED,
    KIND_TABLE,
    RESULT_COUNT,
    RESULT_PICKLE,
    RESULT_ROWS,
    BatchDone,
    BatchFailed,
    Init,
    InitFailed,
    Ready,
)

__all__ = (
    "MiniBatchContext",
    "ScriptRuntime",
    "import_script",
    "load",
    "setup_process",
)

log = logging.getLogger("aprs.worker")


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


def worker_name(init: Init) -> str:
    return f"worker{init.worker_index:03d}"


def setup_process(init: Init) -> None:
    """Prepare this process to host the script: stdio, logging, sys.argv, azureml layer."""
    name = worker_name(init)
    if init.redirect_stdio and init.log_dir:
        _redirect_stdio(init.log_dir, name)
    logging.basicConfig(
        level=init.logging_level,
        format=f"%(asctime)s %(levelname)s {name} %(name)s: %(message)s",
    )
    sys.argv = [init.entry_script, *init.argv]
    from .._compat import activate  # Azure ML compatibility layer, last on sys.path

    activate(
        worker_index=init.worker_index, output_dir=init.output_dir, log_dir=init.log_dir
    )


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


@dataclass(frozen=True, slots=True)
class ScriptLocation:
    """Where an entry script is and how it is imported; see :func:`locate_script`."""

    spec: str  # what workers are given: relative to source_directory, absolute, or a module
    source_directory: str | None  # absolute
    path: str | None  # the absolute file path; None for a module name
    import_root: str  # the folder put first on sys.path
    module_name: str


def locate_script(entry_script: str, source_directory: str | None) -> ScriptLocation:
    """Resolve an entry script, the one place that does it (job, Runner and worker).

    A ``.py`` path is relative to ``source_directory`` (else to the working directory).
    Inside ``source_directory`` it is imported as a dotted module from there (so
    ``pkg/score.py`` is ``pkg.score``, as in Azure); elsewhere from its own folder. Any other
    name is a module imported from ``source_directory`` (else the working directory).
    """
    source = os.path.abspath(source_directory) if source_directory else None
    base = source or os.getcwd()
    if not entry_script.endswith(".py"):
        return ScriptLocation(entry_script, source, None, base, entry_script)
    path = os.path.abspath(os.path.join(base, entry_script))
    if source is not None and os.path.commonpath([source, path]) == source:
        rel = spec = os.path.relpath(path, source)
        root = source
    else:
        root, rel, spec = os.path.dirname(path), os.path.basename(path), path
    module_name = rel[:-3].replace(os.sep, ".")
    return ScriptLocation(spec, source, path, root, module_name)


def import_script(entry_script: str, source_directory: str | None) -> Any:
    """Import the entry script as a module, the way Azure's driver does."""
    where = locate_script(entry_script, source_directory)
    sys.path.insert(0, where.import_root)
    return importlib.import_module(where.module_name)


def load(init: Init) -> tuple[ScriptRuntime | None, Ready | InitFailed]:
    """Import the script and call its init(): the runtime and Ready, or None and InitFailed."""
    started = time.perf_counter()
    try:
        module = import_script(init.entry_script, init.source_directory)
    except BaseException as exc:
        return None, _init_failed("import", exc)
    if not callable(getattr(module, "run", None)):
        msg = f"the entry script {init.entry_script} does not define a run(mini_batch) function"
        return None, InitFailed("no_run", "AttributeError", msg, "")
    init_fn = getattr(module, "init", None)
    if callable(init_fn):
        try:
            init_fn()
        except BaseException as exc:
            return None, _init_failed("init", exc)
    ready = Ready(os.getpid(), time.perf_counter() - started)
    try:
        output = TableOutput.from_run_args(init.argv, init.source_directory)
    except ValueError:  # a bad settings file: the job checked it; the Runner keeps text
        output = TableOutput()
    return ScriptRuntime(module, init.result_mode, output), ready


def _init_failed(kind: str, exc: BaseException) -> InitFailed:
    tb = "".join(traceback.format_exception(exc))
    return InitFailed(kind, type(exc).__name__, str(exc), tb)


class ScriptRuntime:
    """A loaded entry script whose init() returned: runs mini-batches, one at a time."""

    def __init__(
        self, module: Any, result_mode: int, output: TableOutput | None = None
    ) -> None:
        self.module = module
        self.result_mode = result_mode
        self.output = output or TableOutput()
        self._run: Callable[..., Any] = module.run
        self._with_context = _takes_context(self._run)

    def run_batch(
        self, batch_id: int, kind: int, payload: bytes
    ) -> tuple[BatchDone | BatchFailed, bytes]:
        """Decode, run() and encode one mini-batch: (reply, body). Never raises."""
        started = time.perf_counter()
        try:
            items, context = _decode(batch_id, kind, payload)
        except BaseException as exc:
            return _decode_failure(batch_id, exc, started), b""
        del payload
        if kind == KIND_TABLE and _rows_only(items):  # isolate_failures: count only
            return BatchDone(
                batch_id, 0, time.perf_counter() - started, items.rows
            ), b""
        count = len(items) if kind == KIND_TABLE else -1  # rows read, reported back
        if count == 0:  # an empty DataFrame: run() is not called (as in Azure)
            return BatchDone(batch_id, 0, time.perf_counter() - started, 0), b""
        try:
            result = (
                self._run(items, context) if self._with_context else self._run(items)
            )
        except BaseException as exc:
            if isinstance(exc, SystemExit):
                exc = RuntimeError(f"run() called sys.exit({exc.code!r})")
            failed = _failure(batch_id, exc, started)
            failed.items = count
            return failed, self._pickle_exc(exc)
        try:
            if self.result_mode == RESULT_ROWS:
                returned, out = self.output.encode(result)
            else:
                returned, out = _encode_result(result, self.result_mode)
        except BaseException as exc:
            where = (
                ""
                if isinstance(exc, TypeError) and "run() returned" in str(exc)
                else "could not encode run()'s result: "
            )
            return _failure(batch_id, exc, started, where), b""
        del result, items
        return BatchDone(batch_id, returned, time.perf_counter() - started, count), out

    def shutdown(self) -> int:
        """Call the script's shutdown() if it has one; 0, or 3 when it raised."""
        shutdown = getattr(self.module, "shutdown", None)
        if callable(shutdown):
            try:
                shutdown()
            except BaseException:
                log.exception("shutdown() raised")
                return 3
        return 0

    def _pickle_exc(self, exc: BaseException) -> bytes:
        if self.result_mode != RESULT_PICKLE:
            return b""
        try:
            return pickle.dumps(exc, protocol=5)
        except Exception:
            return b""


def _decode(batch_id: int, kind: int, payload: bytes) -> tuple[Any, MiniBatchContext]:
    """(mini_batch, context) from a payload of the given kind."""
    if kind == KIND_TABLE:
        from .._tabular._batch import read_table_batch

        frame, key_value, dataset = read_table_batch(payload)
        context = MiniBatchContext(batch_id, key_value)
        context.dataset = dataset
        return frame, context
    data = pickle.loads(payload)
    if kind == KIND_ITEMS:
        return data, MiniBatchContext(batch_id)
    if kind == KIND_KEYED:
        items, key_value = data
        return items, MiniBatchContext(batch_id, key_value)
    raise ValueError(f"unknown mini-batch payload kind {kind}")


def _rows_only(items: Any) -> bool:
    """Is this a table's row count (``RowsRead``) rather than a DataFrame?"""
    from .._tabular._batch import RowsRead

    return type(items) is RowsRead


def _decode_failure(batch_id: int, exc: BaseException, started: float) -> BatchFailed:
    """A payload that cannot be decoded; a table read error is reported as its message."""
    items = getattr(exc, "items", None)
    if type(exc).__name__ == "TableReadError" and isinstance(items, int):
        run_s = time.perf_counter() - started
        return BatchFailed(batch_id, "TableReadError", str(exc), "", run_s, items)
    return _failure(batch_id, exc, started, "could not unpickle input: ")


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


def _failure(
    batch_id: int, exc: BaseException, started: float, where: str = ""
) -> BatchFailed:
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
    raise wrong_result(result, "a list (a tuple is converted) or a pandas DataFrame")
