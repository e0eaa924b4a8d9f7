"""The long-lived async Runner for services: warm workers, submit / map / micro-batched calls.

    await runner.submit(mini_batch) ──► Attempt(token=future) ──► Dispatcher ──► backend
    await runner.call(item)         ──► micro-batcher (max_batch_size / batch_wait_s)
                                        ──► one submit, each caller gets its element
    async for rows in runner.map(items, batch_size) ──► bounded, in input order

Outcomes resolve futures from the backend's callbacks on the loop, with no polling. The queue,
requeue and retry rule are the job's (``Dispatcher``): a timed-out or crashed attempt is
retried up to ``run_max_try`` tries; then the caller gets
``BatchTimeoutError`` / ``WorkerCrashedError``. An exception raised by run() reaches the caller
with its own type, the worker's traceback attached as ``__cause__`` (``RemoteError`` only when
it cannot be unpickled).
"""

from __future__ import annotations

import asyncio
import os
import pickle
import sys
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from types import TracebackType
from typing import Any, Self

from ._accounting import Accounting, Thresholds
from ._backends import (
    Attempt,
    Backend,
    Crashed,
    Done,
    Failed,
    Outcome,
    TimedOut,
    WorkerSpec,
    create_backend,
    default_env,
)
from ._bridge._protocol import RESULT_PICKLE
from ._bridge._runtime import locate_script
from ._dispatch import Dispatcher, outcome_error
from ._errors import (
    RemoteError,
    RunnerClosedError,
    UsageError,
)

__all__ = ("Runner",)


class _RemoteTraceback(Exception):
    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


class Runner:
    """Keep workers warm (init() once each) and score mini-batches on demand.

    Example:
        >>> async with Runner("score.py", process_count_per_node=2) as runner:
        ...     rows = await runner.submit(["a.png", "b.png"])    # one mini-batch
        ...     label = await runner.call("c.png")                # micro-batched single item
        ...     async for rows in runner.map(paths, batch_size=10):
        ...         ...

    Raises:
        EntryScriptError / InitFailedError from ``__aenter__`` when the script cannot start.
        RunnerClosedError when used after ``aclose()``.
    """

    # ~50 lines: half of it is the keyword signature (Azure's names, one per line)
    def __init__(
        self,
        entry_script: str,
        *,
        process_count_per_node: int | None = None,
        source_directory: str | None = None,
        arguments: Sequence[str] | None = None,
        environment_variables: dict[str, str] | None = None,
        run_invocation_timeout: float = 60,
        run_max_try: int = 1,
        max_batch_size: int = 32,
        batch_wait_s: float = 0.002,
        environment: str | None = None,
        logging_level: str = "INFO",
    ) -> None:
        where = locate_script(os.fspath(entry_script), source_directory)
        if where.path is not None and not os.path.isfile(where.path):
            raise UsageError(
                f"The entry script {entry_script!r} was not found (looked for "
                f"{where.path}). Pass the path of a .py file with a run(mini_batch) "
                "function."
            )
        if max_batch_size < 1 or batch_wait_s < 0 or run_max_try < 1:
            raise UsageError(
                "max_batch_size and run_max_try must be >= 1 and batch_wait_s >= 0; got "
                f"{max_batch_size}, {run_max_try}, {batch_wait_s}."
            )
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
        )
        self._max_batch = max_batch_size
        self._wait_s = batch_wait_s
        self._backend: Backend | None = None
        # run() raising reaches the caller at once; timeouts and crashes are retried
        self._dispatch = Dispatcher(
            self, Accounting(Thresholds(run_max_try=run_max_try)), retry_errors=False
        )
        self._next_id = 0
        self._closed = False
        self._fatal: BaseException | None = None
        self._bucket: list[tuple[Any, asyncio.Future[Any]]] = []
        self._bucket_timer: asyncio.TimerHandle | None = None
        self._outstanding: set[asyncio.Future[Any]] = set()  # failed on aclose()

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
        self._backend = create_backend("local", self._spec, self._dispatch)
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
        self._flush_bucket()
        err = RunnerClosedError("The runner was closed before this mini-batch ran.")
        for attempt in self._dispatch.drain():
            _fail(attempt, err)
        if self._backend is not None:
            await self._backend.aclose(graceful=True)
        # batches a worker still held when it was stopped get no outcome: fail them here
        late = RunnerClosedError("The runner was closed while this mini-batch ran.")
        for fut in list(self._outstanding):
            if not fut.done():
                fut.set_exception(late)
        self._outstanding.clear()

    # -- API ----------------------------------------------------------------------------

    async def submit(self, mini_batch: Sequence[Any]) -> list[Any]:
        """Run one mini-batch on a warm worker; return what run() returned."""
        fut = self._enqueue(list(mini_batch))
        return await fut  # type: ignore[no-any-return]

    async def call(self, item: Any) -> Any:
        """Score one item; concurrent calls are grouped into micro-batches."""
        self._check_open()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._track(fut)
        self._bucket.append((item, fut))
        if len(self._bucket) >= self._max_batch:
            self._flush_bucket()
        elif self._bucket_timer is None:
            self._bucket_timer = asyncio.get_running_loop().call_later(
                self._wait_s, self._flush_bucket
            )
        return await fut

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

    def _enqueue(self, items: list[Any], token: Any = None) -> asyncio.Future[Any]:
        self._check_open()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if token is None:
            self._track(fut)
        payload = pickle.dumps(items, protocol=5)
        token = token if token is not None else fut
        self._dispatch.push(Attempt(self._next_id, 1, len(items), payload, token=token))
        self._next_id += 1
        return fut

    def _track(self, fut: asyncio.Future[Any]) -> None:
        self._outstanding.add(fut)
        fut.add_done_callback(self._outstanding.discard)

    def _flush_bucket(self) -> None:
        if self._bucket_timer is not None:
            self._bucket_timer.cancel()
            self._bucket_timer = None
        bucket, self._bucket = self._bucket, []
        if not bucket:
            return
        if self._closed:
            for _, fut in bucket:
                if not fut.done():
                    fut.set_exception(RunnerClosedError("The runner was closed."))
            return
        futs = [f for _, f in bucket]
        try:
            self._enqueue([i for i, _ in bucket], token=futs)
        except BaseException as exc:
            for f in futs:
                if not f.done():
                    f.set_exception(exc)

    # -- DispatchOwner ------------------------------------------------------------------

    def on_outcome(self, attempt: Attempt, outcome: Outcome) -> None:
        if type(outcome) is Done:
            self._dispatch.accounting.record_done(
                attempt.batch_id, attempt.size, outcome.returned
            )
            try:
                result = pickle.loads(outcome.body)
            except Exception as exc:
                _fail(
                    attempt,
                    RemoteError(
                        type(exc).__name__,
                        f"could not unpickle run()'s result: {exc}",
                        "",
                    ),
                )
                return
            _resolve(attempt, result)
            return
        if not self._dispatch.retry_or_give_up(attempt, outcome):
            _fail(attempt, _rebuild(attempt, outcome))

    def on_filled(self) -> None:
        pass

    def on_fatal(self, exc: BaseException) -> None:
        self._fatal = exc
        for attempt in self._dispatch.drain():
            _fail(attempt, exc)

    def statistics(self) -> dict[str, int]:
        """Queue and pool counters (for dashboards and tests)."""
        stats = self._backend.statistics() if self._backend else None
        return {
            "pending": len(self._dispatch.pending),
            "in_flight": stats.in_flight if stats else 0,
            "workers_ready": stats.workers_ready if stats else 0,
            "worker_crashes": stats.crashed if stats else 0,
            "worker_timeouts": stats.timed_out if stats else 0,
        }


def _resolve(attempt: Attempt, result: Any) -> None:
    token = attempt.token
    if isinstance(token, list):
        values = list(result) if isinstance(result, (list, tuple)) else []
        for i, fut in enumerate(token):
            if fut.done():
                continue
            if i < len(values):
                fut.set_result(values[i])
            else:
                fut.set_exception(
                    RemoteError(
                        "ShortResult",
                        f"run() returned {len(values)} elements for {len(token)} items",
                        "",
                    )
                )
    elif not token.done():
        token.set_result(result)


def _fail(attempt: Attempt, exc: BaseException) -> None:
    futs = attempt.token if isinstance(attempt.token, list) else [attempt.token]
    for fut in futs:
        if not fut.done():
            fut.set_exception(exc)


def _rebuild(attempt: Attempt, outcome: Outcome) -> BaseException:
    if isinstance(outcome, (TimedOut, Crashed)):
        return outcome_error(attempt, outcome)
    assert type(outcome) is Failed
    if outcome.exception:
        try:
            exc = pickle.loads(outcome.exception)
        except Exception:
            exc = None
        if isinstance(exc, BaseException):
            exc.__cause__ = _RemoteTraceback(outcome.traceback)
            return exc
    return RemoteError(outcome.error_type, outcome.message, outcome.traceback)


async def _aiter(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
