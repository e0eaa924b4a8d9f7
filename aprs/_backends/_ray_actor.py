"""Worker side of the Ray backend: the class hosted in each Ray actor process.

    driver                               actor process (one per worker slot, on some node)
    RayWorker.remote(...)  ──────────►   __init__: env, node-local log folder
    start(init)            ──────────►   setup_process + load: import, init()  ──► Ready | InitFailed
    run(batch_id, kind, payload) ────►   ScriptRuntime.run_batch ──► (BatchDone | BatchFailed, body)
    run_shipped(..., files, *refs) ──►   (ship_inputs) write the files to a node-local folder,
                                         run() on those paths, delete the folder
    lifeline()   (own thread) ───────►   blocks until stop(): an error here = the actor died
    stop()                 ──────────►   shutdown() of the script, last log bytes

All the script hosting is ``aprs._bridge._runtime`` (shared with the local pipe worker), so an
entry script sees the same ``sys.argv``, environment, ``EntryScript`` and ``mini_batch_context``
on Ray as locally. Every reply carries the bytes the script wrote to its log files since the
previous reply, so the driver can keep ``<output>/logs/user/...`` per node and worker even when
the nodes share no file system, and nothing printed before a crash is lost past the last reply.

Invariants: calls of the default group run one at a time in submission order (a Ray actor
with max_concurrency 1), which is what lets the driver know the running batch (the oldest
unanswered one); ``lifeline`` runs in its own concurrency group so it never delays a batch.
Nothing here imports the driver side of aprs (asyncio, the scheduler).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
from typing import Any

from .._bridge._protocol import BatchDone, BatchFailed, Init, InitFailed, Ready
from .._bridge._runtime import ScriptRuntime, load, setup_process
from ._ray_ship import materialise

__all__ = ("LIFELINE_GROUP", "LogDelta", "RayWorker", "remote_class")

LogDelta = list[tuple[str, bytes]]
"""(path relative to the log folder, bytes appended since the last reply) per changed file."""

LIFELINE_GROUP = "lifeline"
_MAX_LOG_CHUNK = 4 << 20  # bytes of one log file sent back in one reply


class RayWorker:
    """One worker slot: an entry script loaded once, run() per mini-batch."""

    def __init__(self, env: dict[str, str], job_id: str, worker_index: int) -> None:
        os.environ.update(env)
        self._index = worker_index
        self._log_dir = tempfile.mkdtemp(prefix=f"aprs-{job_id}-w{worker_index:03d}-")
        self._inputs_dir = self._log_dir + "-inputs"  # shipped inputs
        self._offsets: dict[str, int] = {}
        self._runtime: ScriptRuntime | None = None
        self._stopped = threading.Event()

    def start(
        self, init: Init, ship_code: bool
    ) -> tuple[Ready | InitFailed, str, LogDelta]:
        """Load the script and run init(); (reply, node id, logs)."""
        import ray

        if ship_code:  # the code arrived as the runtime env's working_dir: our cwd
            init.source_directory = os.getcwd()
        init.log_dir = self._log_dir  # node-local; the driver collects the bytes
        setup_process(init)
        self._runtime, reply = load(init)
        node_id: str = ray.get_runtime_context().get_node_id()
        return reply, node_id, self._logs()

    def run(
        self, batch_id: int, kind: int, payload: bytes
    ) -> tuple[BatchDone | BatchFailed, bytes, LogDelta]:
        """Run one mini-batch: (reply, body, logs). Never raises."""
        runtime = self._runtime
        if (
            runtime is None
        ):  # pragma: no cover - the driver sends batches after Ready only
            raise RuntimeError("run() before a successful init()")
        reply, body = runtime.run_batch(batch_id, kind, payload)
        return reply, body, self._logs()

    def run_shipped(
        self,
        batch_id: int,
        kind: int,
        payload: bytes,
        shipped: tuple[list[str], list[bytes] | None],
        *fetched: list[bytes],
    ) -> tuple[BatchDone | BatchFailed, bytes, LogDelta]:
        """run() on shipped files: written to a node-local folder, deleted after the call.

        ``fetched``: the packed files of a big batch (Ray resolved the refs before the call).
        """
        started = time.perf_counter()
        os.makedirs(self._inputs_dir, exist_ok=True)
        folder = tempfile.mkdtemp(prefix=f"b{batch_id}-", dir=self._inputs_dir)
        try:
            try:
                local = materialise(folder, kind, payload, shipped, fetched)
            except Exception as exc:  # e.g. the node's disk is full: this batch fails
                tb = "".join(traceback.format_exception(exc))
                failed = BatchFailed(
                    batch_id,
                    type(exc).__name__,
                    f"could not write the shipped input files on this node: {exc}",
                    tb,
                    time.perf_counter() - started,
                )
                return failed, b"", self._logs()
            del shipped, fetched
            return self.run(batch_id, kind, local)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def lifeline(self) -> int:
        """Block until stop(); the driver learns of the actor's death when this call fails."""
        self._stopped.wait()
        return os.getpid()

    def stop(self) -> tuple[int, LogDelta]:
        """Call the script's shutdown(); (exit code, last logs)."""
        code = self._runtime.shutdown() if self._runtime is not None else 0
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        self._stopped.set()
        shutil.rmtree(self._inputs_dir, ignore_errors=True)
        return code, self._logs()

    def _logs(self) -> LogDelta:
        """The bytes appended to each file of the log folder since the last call."""
        delta: LogDelta = []
        for folder, _dirs, files in os.walk(self._log_dir):
            for name in files:
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, self._log_dir)
                start = self._offsets.get(rel, 0)
                try:
                    size = os.stat(path).st_size
                    if size <= start:
                        continue
                    with open(path, "rb") as f:
                        f.seek(start)
                        data = f.read(min(size - start, _MAX_LOG_CHUNK))
                except OSError:
                    continue
                self._offsets[rel] = start + len(data)
                delta.append((rel, data))
        return delta


def remote_class(ray: Any) -> Any:
    """RayWorker as a Ray actor class: default group of one thread, lifeline on its own.

    Callers send ``lifeline`` with ``.options(concurrency_group="lifeline")``.
    """
    return ray.remote(concurrency_groups={LIFELINE_GROUP: 1})(RayWorker)
