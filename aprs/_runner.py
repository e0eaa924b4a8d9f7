"""The long-lived async Runner for services: warm workers, submit / map / micro-batched calls.

    await runner.submit(mini_batch) ──► admission (max_pending) ──► Attempt(token=future)
                                        ──► Dispatcher ──► backend
    await runner.call(item)         ──► admission ──► MicroBatcher (adaptive batches, per-item
                                        isolation by bisection) ──► Dispatcher ──► backend
    async for rows in runner.map(items, batch_size) ──► bounded, in input order

Outcomes resolve futures from the backend's callbacks on the loop, with no polling. The queue,
requeue and retry rule of submitted batches are the job's (``Dispatcher``): a timed-out or
crashed attempt is retried up to ``run_max_try`` tries; then the caller gets
``BatchTimeoutError`` / ``WorkerCrashedError``. An exception raised by run() reaches the caller
with its own type, the worker's traceback attached as ``__cause__`` (``RemoteError`` only when
it cannot be unpickled; ``_runner_answer``). Calls are batched and isolated by
``aprs._batcher``.

Admission (``_runner_admit``, the Runner's base class): at most ``max_pending`` items are
accepted and not yet answered; beyond that ``call`` / ``submit`` raise
``RunnerOverloadedError`` at once, or wait for room with ``wait=True``. ``timeout=`` bounds a
caller's whole wait (``TimeoutError``); a caller that stops waiting before its item was sent
takes it out of the queue.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import sys
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from ._accounting import Accounting, Thresholds
from ._backends import (
    Attempt,
    Backend,
    Done,
    Outcome,
    WorkerSpec,
    create_backend,
    default_env,
    limit_thread_pools,
)
from ._backends._options import RayOptions
from ._batcher import Call, CallBatch, MicroBatcher
from ._bridge._protocol import RESULT_PICKLE
from ._bridge._runtime import locate_script
from ._dispatch import Dispatcher
from ._errors import RunnerClosedError, UsageError
from ._runner_admit import RunnerAdmission
from ._runner_answer import fail, rebuild, resolve, set_exception, unpickle_error
from ._runner_stats import LatencyWindow, RunnerStatistics

if TYPE_CHECKING:
    from ._config import ParallelRunConfig

__all__ = ("Runner",)


class Runner(RunnerAdmission):
    """Keep workers warm (init() once each) and score mini-batches and single items on demand.

    Example:
        >>> async with Runner("score.py", process_count_per_node=2, max_pending=4096) as r:
        ...     rows = await r.submit(["a.png", "b.png"])    # one mini-batch
        ...     label = await r.call("c.png", timeout=1.0)   # micro-batched single item
        ...     async for rows in r.map(paths, batch_size=10):
        ...         ...

    Args:
        max_batch_size: while every worker is busy, a gathered batch is sent (queued behind
            a running one) once this many items wait, or ...
        batch_wait_s: ... once its oldest item waited this long. A worker with nothing to
            do gets whatever is queued at once: a lone call is not delayed.
        batch_limit: the most items in one run() call; batches for a free worker grow with
            the queue up to it (default ``max(256, max_batch_size)``).
        max_pending: the most items accepted and not yet answered (None: unbounded).
        run_max_try: tries of a batch (submit) or of one item alone (call) that hung or
            whose worker died. A call whose batch failed is isolated: the batch is split
            in halves and retried until only the failing items' callers get the error.
        worker_start: how local workers start: "fork-server" (default on Linux: forked
            from one process that imported the script's libraries once, so a replaced
            worker is ready in milliseconds) or "spawn"; None reads $APRS_WORKER_START.

    ``compute_target="ray"`` (or ``"ray://host:port"``) hosts the workers as Ray actors:
    ``node_count`` x ``process_count_per_node`` of them, on the cluster at ``ray_address``
    (default RAY_ADDRESS, else a Ray started here), each with ``worker_resources``.

    Raises:
        EntryScriptError / InitFailedError from ``__aenter__`` when the script cannot start.
        RunnerClosedError when used after ``aclose()``.
    """

    # ~50 lines: half of it is the keyword signature (Azure's names, one per line)
    def __init__(
        self,
        entry_script: str | os.PathLike[str],
        *,
        process_count_per_node: int | None = None,
        source_directory: str | None = None,
        arguments: Sequence[str] | None = None,
        environment_variables: dict[str, str] | None = None,
        run_invocation_timeout: float = 60,
        run_max_try: int = 1,
        max_batch_size: int = 32,
        batch_wait_s: float = 0.002,
        batch_limit: int | None = None,
        max_pending: int | None = None,
        environment: str | None = None,
        logging_level: str = "INFO",
        compute_target: str = "local",
        node_count: int = 1,
        ray_address: str | None = None,
        worker_resources: dict[str, float] | None = None,
        worker_start: str | None = None,
    ) -> None:
        where = locate_script(os.fspath(entry_script), source_directory)
        if where.path is not None and not os.path.isfile(where.path):
            raise UsageError(
                f"The entry script {entry_script!r} was not found (looked for "
                f"{where.path}). Pass the path of a .py file with a run(mini_batch) "
                "function."
            )
        limit = batch_limit if batch_limit is not None else max(256, max_batch_size)
        _check_numbers(max_batch_size, batch_wait_s, run_max_try, limit, max_pending)
        self._spec = WorkerSpec(
            entry_script=where.spec,
            source_directory=where.source_directory,
            argv=list(arguments or []),
            env=default_env(environment_variables),
            process_count=process_count_per_node or os.cpu_count() or 1,
            result_mode=RESULT_PICKLE,
            run_timeout_s=float(run_invocation_timeout),
            python=environment or sys.executable,
            logging_level=logging_level.upper(),
            min_depth=2,  # call()'s batches gathered while all are busy (_batcher)
            worker_start=worker_start,
        )
        self._target = "local" if compute_target == "local" else "ray"
        if self._target == "ray":  # "ray" or a "ray://host:port" address
            address = compute_target if compute_target != "ray" else ray_address
            self._spec.node_count = node_count
            self._spec.ray = RayOptions.build(address, worker_resources)
        else:  # as a job's local workers; Ray sizes its actors' pools itself (num_cpus)
            limit_thread_pools(self._spec.env, self._spec.process_count)
        self._max_batch = max_batch_size
        self._limit = limit
        self._wait_s = batch_wait_s
        self._max_try = run_max_try
        super().__init__(max_pending)  # admission: _admitted, _room (_runner_admit)
        self._backend: Backend | None = None
        # run() raising reaches the caller at once; timeouts and crashes are retried
        self._dispatch = Dispatcher(
            self, Accounting(Thresholds(run_max_try=run_max_try)), retry_errors=False
        )
        self._batcher: MicroBatcher | None = None
        self._next_id = 0
        self._closed = False
        self._fatal: BaseException | None = None
        self._submits: set[asyncio.Future[Any]] = set()  # failed on aclose()
        self._latency = LatencyWindow()
        self._counts = {"batches": 0, "items": 0}

    @classmethod
    def from_config(cls, config: ParallelRunConfig, **overrides: Any) -> Runner:
        """A Runner with a job's settings: script, workers, timeouts, tries, environment.

        ``mini_batch_size`` (a count) becomes ``max_batch_size``; ``overrides`` are passed to
        the constructor as they are (``max_pending=...``, ``batch_wait_s=...``).
        """
        kwargs: dict[str, Any] = {
            "process_count_per_node": config.process_count_per_node,
            "source_directory": config.source_directory,
            "environment_variables": config.environment_variables,
            "run_invocation_timeout": config.run_invocation_timeout,
            "run_max_try": config.run_max_try,
            "environment": config.environment,
            "logging_level": config.logging_level,
            "compute_target": config.compute_target,
            "worker_start": config.worker_start,
        }
        if isinstance(config.mini_batch_size, int):
            kwargs["max_batch_size"] = config.mini_batch_size
        kwargs.update(overrides)
        return cls(str(config.entry_script), **kwargs)

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        et: type[BaseException] | None,
        e: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Spawn the workers and wait until at least one has run init()."""
        if self._backend is not None:
            return
        self._batcher = MicroBatcher(
            send=self._dispatch.push,
            retry=self._retry_first,
            load=self._load,
            new_id=self._new_id,
            fail=rebuild,
            latency=self._latency.add,
            max_batch_size=self._max_batch,
            batch_limit=self._limit,
            batch_wait_s=self._wait_s,
            run_max_try=self._max_try,
        )
        self._backend = create_backend(self._target, self._spec, self._dispatch)
        self._dispatch.attach(self._backend)
        try:
            await self._backend.start()
        except BaseException:
            await self._backend.aclose(graceful=False)
            self._closed = True
            raise

    async def aclose(self) -> None:
        """Stop the workers (shutdown() runs in each); pending calls fail."""
        if self._closed:
            return
        self._closed = True
        self._dispatch.stop()
        err = RunnerClosedError("The runner was closed before this item or batch ran.")
        if self._batcher is not None:
            for call in list(self._batcher.queue):
                set_exception(call.fut, err)
            self._batcher.queue.clear()
        for attempt in self._dispatch.drain():
            fail(attempt, err)
        self._wake_room(everyone=True)
        if self._backend is not None:
            await self._backend.aclose(graceful=True)
        # batches a worker still held when it was stopped get no outcome: fail them here
        late = RunnerClosedError("The runner was closed while this mini-batch ran.")
        if self._batcher is not None:
            self._batcher.fail_all(late)
        for fut in list(self._submits):
            set_exception(fut, late)
        self._submits.clear()

    # -- API ----------------------------------------------------------------------------

    async def submit(
        self,
        mini_batch: Sequence[Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (a per-call deadline is the API)
        wait: bool = False,
    ) -> list[Any]:
        """Run one mini-batch on a warm worker; return what run() returned.

        Args:
            timeout: seconds to wait at most (admission included); then ``TimeoutError``.
            wait: when ``max_pending`` items are already waiting, wait for room instead of
                raising ``RunnerOverloadedError``.
        """
        items = list(mini_batch)
        async with asyncio.timeout(timeout):
            await self._admit(len(items), wait)
            try:
                fut = self._enqueue(items)
                try:
                    return await fut  # type: ignore[no-any-return]
                except asyncio.CancelledError:
                    self._unqueue(fut)
                    raise
            finally:
                self._release(len(items))

    async def call(
        self,
        item: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (a per-call deadline is the API)
        wait: bool = False,
    ) -> Any:
        """Score one item; concurrent calls are grouped into adaptive micro-batches.

        Args:
            timeout: seconds to wait at most; then ``TimeoutError`` (an item not yet sent
                is taken out of the queue, the answer of one already sent is dropped).
            wait: wait for room instead of raising ``RunnerOverloadedError``.
        """
        if timeout is not None:
            async with asyncio.timeout(timeout):
                return await self.call(item, wait=wait)
        batcher = self._batcher
        self._check_open()
        if not self._admit_now(1):  # room now: no coroutine of _admit's per call
            await self._admit(1, wait)
        assert batcher is not None
        fut: asyncio.Future[Any] = batcher.loop.create_future()
        batcher.add(Call(item, fut))
        try:
            return await fut
        finally:
            self._release(1)

    async def map(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        batch_size: int = 1,
        *,
        max_in_flight: int | None = None,
    ) -> AsyncIterator[list[Any]]:
        """Yield run()'s result per mini-batch, in input order, with bounded read-ahead."""
        limit = max_in_flight or 4 * self._spec.process_count
        window: deque[asyncio.Future[Any]] = deque()
        batch: list[Any] = []
        async for item in _aiter(items):
            batch.append(item)
            if len(batch) < batch_size:
                continue
            window.append(self._enqueue(batch))
            batch = []
            if len(window) >= limit:
                yield await window.popleft()
        if batch:
            window.append(self._enqueue(batch))
        while window:
            yield await window.popleft()

    def statistics(self) -> RunnerStatistics:
        """Queue, worker and latency figures right now (for dashboards and tests)."""
        stats = self._backend.statistics() if self._backend else None
        queued = len(self._batcher.queue) if self._batcher else 0
        queued += sum(a.size for a in self._dispatch.pending)
        batches, items = self._counts["batches"], self._counts["items"]
        return RunnerStatistics(
            pending=queued,
            admitted=self._admitted,
            in_flight=stats.in_flight if stats else 0,
            workers_ready=stats.workers_ready if stats else 0,
            batches=batches,
            items=items,
            mean_batch_size=items / batches if batches else 0.0,
            crashes=stats.crashed if stats else 0,
            timeouts=stats.timed_out if stats else 0,
            isolated=self._batcher.isolated if self._batcher else 0,
            isolation_tries=self._batcher.isolation_tries if self._batcher else 0,
            rejected=self._rejected,
            **self._latency.percentiles(),
        )

    # -- internals ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RunnerClosedError("The runner is closed; create a new one.")
        if self._fatal is not None:
            raise self._fatal
        if self._backend is None:
            raise RunnerClosedError(
                "Use the runner inside `async with` or call start()."
            )

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _load(self) -> tuple[int, int, int]:
        """(workers ready, idle workers no pending batch will take, batches on workers or
        waiting for one) for the batcher."""
        if self._backend is None:
            return (0, 0, 0)
        ready, idle, busy = self._backend.load()
        pending = len(self._dispatch.pending)
        return ready, max(idle - pending, 0), busy + pending

    def _retry_first(self, attempts: list[Attempt]) -> None:
        self._dispatch.on_requeue(attempts)
        self._dispatch.fill()

    def _enqueue(self, items: list[Any]) -> asyncio.Future[Any]:
        self._check_open()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._submits.add(fut)
        fut.add_done_callback(self._submits.discard)
        payload = pickle.dumps(items, protocol=5)
        self._dispatch.push(Attempt(self._new_id(), 1, len(items), payload, token=fut))
        return fut

    def _unqueue(self, fut: asyncio.Future[Any]) -> None:
        """A submit() caller stopped waiting: drop its batch if it was not sent yet."""
        pending = self._dispatch.pending
        for attempt in pending:
            if attempt.token is fut:
                pending.remove(attempt)
                return

    # -- DispatchOwner ------------------------------------------------------------------

    def on_outcome(self, attempt: Attempt, outcome: Outcome) -> None:
        if type(outcome) is Done:
            self._counts["batches"] += 1
            self._counts["items"] += attempt.size
        if type(attempt.token) is CallBatch:
            assert self._batcher is not None
            self._batcher.on_outcome(attempt, outcome)
            return
        if type(outcome) is Done:
            self._dispatch.accounting.record_done(
                attempt.batch_id, attempt.size, outcome.returned
            )
            try:
                result = pickle.loads(outcome.body)
            except Exception as exc:
                fail(attempt, unpickle_error(exc))
                return
            resolve(attempt, result)
            return
        if not self._dispatch.retry_or_give_up(attempt, outcome):
            fail(attempt, rebuild(attempt, outcome))

    def on_filled(self) -> None:
        batcher = self._batcher
        if batcher is not None:
            batcher.schedule()

    def on_fatal(self, exc: BaseException) -> None:
        self._fatal = exc
        for attempt in self._dispatch.drain():
            fail(attempt, exc)
        if self._batcher is not None:
            self._batcher.fail_all(exc)


def _check_numbers(
    max_batch_size: int,
    batch_wait_s: float,
    run_max_try: int,
    batch_limit: int,
    max_pending: int | None,
) -> None:
    if (
        max_batch_size < 1
        or batch_wait_s < 0
        or run_max_try < 1
        or batch_limit < 1
        or (max_pending is not None and max_pending < 1)
    ):
        raise UsageError(
            "max_batch_size, batch_limit, run_max_try and max_pending must be >= 1 and "
            f"batch_wait_s >= 0; got max_batch_size={max_batch_size}, "
            f"batch_limit={batch_limit}, run_max_try={run_max_try}, "
            f"max_pending={max_pending}, batch_wait_s={batch_wait_s}."
        )


async def _aiter(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
