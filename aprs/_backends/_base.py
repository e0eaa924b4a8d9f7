"""The backend seam: what the dispatcher hands a backend, and what every try of a batch becomes.

    owner (job / Runner) ──► Dispatcher ──► backend.try_submit(Attempt)   (sync, never blocks)
                                  ▲                    │ workers run the batch
                                  └── BackendListener ◄┘ on_outcome(attempt, Done | Failed |
                                      (event loop)       TimedOut | Crashed), on_requeue,
                                                         on_capacity, on_fatal

Typing and small records only: no process code here, so a backend (the local process pool,
Ray) and an owner can import it cheaply. The outcomes are frozen msgspec Structs, not frozen
dataclasses: one is built per try, and a frozen dataclass's __init__ (one
``object.__setattr__`` per field) cost ~1 us of the parent's ~15 us per 1-item batch.

Invariants every backend keeps:
- exactly one outcome per submitted try, or the try comes back through ``on_requeue``
  untouched (it never started), or the backend reports ``on_fatal`` / is closed;
- a worker runs the batches it was given strictly in order; when it hangs or dies only the
  batch it was running gets TimedOut / Crashed, the ones queued behind it are requeued in order;
- callbacks run on the event loop thread and never await.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Protocol, cast

import msgspec

from .._bridge._protocol import (
    KIND_ITEMS,
    KIND_KEYED,
    KIND_TABLE,
    BatchDone,
    BatchFailed,
)
from ._options import RayOptions

__all__ = (
    "KIND_ITEMS",
    "KIND_KEYED",
    "KIND_TABLE",
    "WORKER_STARTS",
    "Attempt",
    "Backend",
    "BackendListener",
    "BackendStatistics",
    "Crashed",
    "Done",
    "Failed",
    "Outcome",
    "TimedOut",
    "WorkerSpec",
    "reply_outcome",
)

WORKER_STARTS = ("fork-server", "spawn")  # WorkerSpec.worker_start (_bridge/_launch)


@dataclass(slots=True)
class WorkerSpec:
    """Everything needed to start and talk to workers; built by the job or the Runner."""

    entry_script: str
    source_directory: str | None
    argv: list[str]
    env: dict[str, str]
    process_count: int
    result_mode: int
    run_timeout_s: float
    python: str = sys.executable
    logging_level: str = "INFO"
    log_dir: str | None = None
    output_dir: str | None = None
    redirect_stdio: bool = False
    init_timeout_s: float | None = None
    max_init_tries: int = 3
    max_depth: int = 32
    # batches a busy worker may hold once run() has been timed and succeeded; the Runner
    # uses 2, so a batch gathered while every worker is busy waits in the worker's pipe
    # (no round trip between two batches), not in the parent
    min_depth: int = 1
    node_count: int = 1  # nodes that run workers (Ray); process_count workers on each
    # local workers: "fork-server" (forked from a zygote that imported the script's
    # libraries once) or "spawn" (a fresh interpreter each); None: $APRS_WORKER_START,
    # else "fork-server" where os.fork exists (see aprs/_bridge/_forkserver.py)
    worker_start: str | None = None
    # modules the fork server imports besides the script's: the table reader and
    # pyarrow + pandas when every input is a table (the step)
    preload: tuple[str, ...] = ()
    ray: RayOptions | None = None  # compute_target="ray" only
    # a zygote the job started already (aprs._bridge._launch.launch_early: it preloads
    # while the parent sets the job up); the local pool adopts it instead of starting one
    fork_server: Any = None


@dataclass(slots=True)
class Attempt:
    """Parent-only record of one try of one mini-batch (never sent as is)."""

    batch_id: int
    attempt: int  # 1-based try number
    size: int  # items in the batch
    payload: bytes  # pickled batch payload, built once by the producer
    kind: int = KIND_ITEMS  # how the worker decodes the payload
    token: Any = None  # the owner's handle (Runner futures); never crosses the boundary
    # the batch's file contents when inputs are shipped (RayOptions.ship_inputs): what the
    # backend's ship_files() returned, kept for retries so no file is read twice
    files: Any = None

    def retry(self) -> Attempt:
        """The next try of the same batch (same payload, kind and token)."""
        return Attempt(
            self.batch_id,
            self.attempt + 1,
            self.size,
            self.payload,
            self.kind,
            self.token,
            self.files,
        )


class Done(msgspec.Struct, frozen=True, gc=False):
    """run() returned ``returned`` elements; ``body`` holds them as asked by result_mode."""

    returned: int
    body: bytes
    run_s: float = 0.0
    pid: int = 0
    worker_index: int = -1
    worker_id: str = ""
    items: int = -1  # items the worker found (table rows); -1: Attempt.size holds


class Failed(msgspec.Struct, frozen=True, gc=False):
    """run() raised (or returned a wrong type); ``exception`` is the pickled exception or b""."""

    error_type: str
    message: str
    traceback: str = ""
    exception: bytes = b""
    run_s: float = 0.0
    pid: int = 0
    worker_index: int = -1
    worker_id: str = ""
    items: int = -1  # items the worker found (table rows); -1: Attempt.size holds


def reply_outcome(
    msg: BatchDone | BatchFailed,
    body: bytes,
    pid: int,
    index: int,
    worker_id: str = "",
) -> Done | Failed:
    """The outcome a worker's reply to run() becomes: BatchDone ──► Done, else Failed
    (both backends: the pool's ``_dispatch``, Ray's ``_on_run_done``)."""
    if type(msg) is BatchDone:
        return Done(
            msg.returned, body, msg.run_s, pid, index, worker_id, items=msg.items
        )
    failed = cast("BatchFailed", msg)  # not BatchDone: the other reply to run()
    return Failed(
        failed.error_type,
        failed.message,
        failed.traceback,
        body,
        failed.run_s,
        pid,
        index,
        worker_id,
        items=failed.items,
    )


class TimedOut(msgspec.Struct, frozen=True, gc=False):
    """run() did not return within ``timeout_s``; the worker was killed and replaced."""

    timeout_s: float
    run_s: float = 0.0
    pid: int = 0
    worker_index: int = -1
    worker_id: str = ""


class Crashed(msgspec.Struct, frozen=True, gc=False):
    """The worker died while running the batch (``description`` says how, for people)."""

    exit_code: int | None
    signal: int | None
    description: str
    run_s: float = 0.0
    pid: int = 0
    worker_index: int = -1
    worker_id: str = ""


Outcome = Done | Failed | TimedOut | Crashed


class BackendListener(Protocol):
    """What a backend reports to its owner; every call on the event loop, none awaits."""

    def on_outcome(self, attempt: Attempt, outcome: Outcome) -> None: ...

    def on_requeue(self, attempts: list[Attempt]) -> None: ...

    def on_capacity(self) -> None: ...

    def on_fatal(self, exc: BaseException) -> None: ...


@dataclass(frozen=True, slots=True)
class BackendStatistics:
    workers_ready: int
    in_flight: int
    spawned: int
    crashed: int
    timed_out: int
    init_failures: int
    depth: int


class Backend(Protocol):
    """Runs attempts on workers that ran init() once; see the module docstring."""

    async def start(self) -> None:
        """Spawn all workers; return once one is ready, or raise the fatal error."""
        ...

    def try_submit(self, attempt: Attempt) -> bool:
        """Hand ``attempt`` to a worker; False (and nothing happens) when all are full."""
        ...

    def capacity(self) -> int:
        """How many attempts try_submit would accept right now."""
        ...

    def abort(self) -> None:
        """The owner stops: respawn nothing more, and let start() return now."""
        ...

    def kill_now(self) -> None:
        """Kill every worker synchronously (a second Ctrl-C)."""
        ...

    async def aclose(self, *, graceful: bool) -> None:
        """Stop every worker; no worker outlives this call."""
        ...

    def statistics(self) -> BackendStatistics: ...

    def load(self) -> tuple[int, int, int]:
        """(workers ready, ready workers with nothing in flight, batches in flight): what
        the Runner's batcher asks before every dispatch, so it costs one pass over the
        workers and builds nothing."""
        ...
