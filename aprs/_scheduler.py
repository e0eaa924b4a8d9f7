"""The job: stream mini-batches through a backend into the ordered writer, and stop in time.

    producer (aprs._produce) ──► Dispatcher.pending ──► fill() ──► backend (local pool: pipelined per worker)
    (lazy inputs,  retries and requeued      │            │ outcomes (callbacks on the loop)
     pickles each  batches go to the front   ▼            ▼
     batch once)                   gate: writer window   on_outcome: accounting, retry or
                                                         finalize (Dispatcher), writer.put

Phases of ``run_job``: (1) open the writer and journal, (2) start the backend (fails fast when
the script cannot be imported or init() fails everywhere), (3) run producer + writer in one task
group while callbacks dispatch (a tabular input's producer starts with (2): planning overlaps
the workers' start-up), (4) on completion, a crossed threshold, a signal or a fatal backend
error: stop feeding, stop workers (gracefully only on success), flush the writer, and
(5) build the summary. All state lives on the event loop; callbacks never await.
Beside it: the plan it runs (aprs._job_plan), its counters read out as LiveStats and the
JobSummary (aprs._job_stats), and its SIGINT / SIGTERM handlers (aprs._job_signals).

With ``isolate_failures`` a failed try of a mini-batch of several items goes to the Isolator
(aprs._isolate) instead of the retry rule: its parts come back to ``on_outcome`` with a
``Part`` token, and the Isolator puts the assembled mini-batch into the writer once.

Backpressure: the producer stops when ``pending`` holds ``HIGH`` batches and resumes below
``HIGH // 2``; the dispatcher sends no batch more than ``window_limit`` ids ahead of the
writer, so memory is bounded by (pending + in flight + window), not by the input size.
With ``ship_inputs`` (Ray) the producer also reads each file batch's bytes, in a thread, and
waits while more than ``SHIP_BUDGET`` bytes belong to batches not yet written or given up.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread

from . import _produce
from ._accounting import Accounting
from ._backends import (
    Attempt,
    Backend,
    Done,
    Failed,
    Outcome,
    create_backend,
)
from ._datasets import TabularDataset
from ._dispatch import Dispatcher
from ._errors import (
    BackendError,
    EntryScriptError,
    InitFailedError,
    OutputError,
    UsageError,
)
from ._failure_record import FAILURE_FORMAT, failure_record
from ._isolate import Isolator
from ._job_plan import JobPlan
from ._job_signals import install_signals, remove_signals
from ._job_stats import job_summary, live_stats
from ._joblog import JobLog, overview_final_line
from ._journal import Journal, JournalState
from ._produce import HIGH, Producer
from ._progress import LiveStats
from ._summary import JobSummary, StopReason, job_error
from ._tabular._parquet_out import ParquetSink
from ._writer import OrderedWriter

__all__ = ("run_job",)

log = logging.getLogger("aprs.job")
# one line per failed try, on its own logger so the CLI can coalesce them
failure_log = logging.getLogger("aprs.failures")
logging.getLogger("aprs").addHandler(
    logging.NullHandler()
)  # a library: apps choose output


class _Job:
    def __init__(self, plan: JobPlan) -> None:
        self.plan = plan
        self.acc = Accounting(plan.thresholds)
        start = plan.resume or JournalState()
        if plan.resume is not None:
            self.acc.restore(
                start.items_ok,
                start.items_failed,
                start.batches_ok,
                start.batches_failed,
            )
        self.writer = OrderedWriter(
            partial_path=plan.partial_file,
            journal=Journal(plan.journal_path),
            start=start,
            window_limit=max(1024, 64 * plan.spec.process_count),
            on_drained=self.fill,
            on_error=self.on_write_error,
            framed=plan.framed_output,
            sink=ParquetSink() if plan.parquet_output else None,
        )
        self.dispatch = Dispatcher(self, self.acc, gate=self.writer.accepts)
        self.isolator: Isolator | None = None
        if plan.isolate_failures:
            self.isolator = Isolator(
                accounting=self.acc,
                requeue=self.dispatch.push_front,
                put=self.put,
                log_failure=self._log_part_failure,
                count_rows=self._found_rows,
                framed=plan.framed_output,
            )
        self.pending = self.dispatch.pending
        self.backend: Backend | None = None
        self.space = anyio.Event()
        self.done = anyio.Event()
        self.producer_waiting = False
        self.source_done = False
        self.scheduled = start.next
        self.items_total = 0
        self.stop_reason: StopReason | None = None
        self.stop_message = ""
        self.cause: BaseException | None = None  # the error that stopped the job
        self.max_try = plan.thresholds.run_max_try
        self.warned_extra = False
        self.signals = 0
        self.started = time.perf_counter()
        self.items_at_start = start.items_ok + start.items_failed
        ray = plan.spec.ray
        self.ship = ray is not None and ray.ship_inputs  # read file batches here
        self.shipped: dict[int, int] = {}  # batch id -> its file bytes, until final
        self.shipped_bytes = 0
        self.ship_budget = _produce.SHIP_BUDGET  # read per job (tests lower it)
        self.joblog = JobLog(
            plan.log_dir,
            fresh=plan.resume is None,
            workers=plan.spec.process_count,
            logging_level=plan.spec.logging_level,
            resumed_from=start.next,
        )

    # -- DispatchOwner ------------------------------------------------------------------

    def on_outcome(self, attempt: Attempt, outcome: Outcome) -> None:
        self.joblog.record(attempt, outcome)
        if self.stop_reason is not None:
            return
        if (
            type(outcome) is Done
            and outcome.returned == attempt.size
            and outcome.items < 0
            and attempt.token is None
        ):
            # the common case, once per mini-batch: every item succeeded. No failure
            # count moved, so no threshold can have been crossed (after_change)
            self.acc.record_done(attempt.batch_id, attempt.size, attempt.size)
            self.put(attempt.batch_id, outcome.body, attempt.size, 0, False)
            self._check_finished()
            return
        if attempt.token is not None:  # a part of a mini-batch being bisected
            assert self.isolator is not None
            self.isolator.on_outcome(attempt, outcome)
            self.after_change()
            return
        found = outcome.items if isinstance(outcome, (Done, Failed)) else -1
        if found >= 0:
            self._found_rows(attempt, found)
        if type(outcome) is Done:
            if outcome.returned > attempt.size and not self.warned_extra:
                self.warned_extra = True
                log.warning(
                    "run() returned %d elements for mini-batch %d of %d items; the success "
                    "count is capped at the mini-batch size (all elements are written)",
                    outcome.returned,
                    attempt.batch_id,
                    attempt.size,
                )
            ok, failed = self.acc.record_done(
                attempt.batch_id, attempt.size, outcome.returned
            )
            if failed:
                self.log_failure(attempt, outcome, short=failed)
            batch_failed = failed > 0 and self.acc.short_result_fails_batch
            self.put(attempt.batch_id, outcome.body, ok, failed, batch_failed)
        else:
            self.log_failure(attempt, outcome)
            isolator = self.isolator
            if isolator is not None and isolator.take(attempt, outcome):
                pass  # bisected: its parts come back with a token
            elif not self.dispatch.retry_or_give_up(attempt, outcome):
                self.put(attempt.batch_id, b"", 0, attempt.size, True)
        self.after_change()

    def put(
        self, batch_id: int, body: bytes, ok: int, failed: int, batch_failed: bool
    ) -> None:
        """The mini-batch is final: to the writer, and its shipped bytes leave the budget
        (the refs go with its attempts)."""
        self.writer.put(batch_id, body, ok, failed, batch_failed)
        if self.shipped:
            self.shipped_bytes -= self.shipped.pop(batch_id, 0)
            if self.producer_waiting and self.shipped_bytes < self.ship_budget:
                self.producer_waiting = False
                self.space.set()

    def _found_rows(self, attempt: Attempt, rows: int) -> None:
        """A table's rows are known once a worker read them: count those as items."""
        if rows != attempt.size:
            self.items_total += rows - attempt.size
            attempt.size = rows

    def on_write_error(self, exc: OSError) -> None:
        error = OutputError(
            f"Writing the output in {self.plan.output_dir} failed: {exc}. Rows already "
            "journaled are kept in the partial output; free space or fix the disk, then "
            "run the same command again to resume."
        )
        error.__cause__ = exc
        self.stop("internal_error", str(error), cause=error)

    def on_fatal(self, exc: BaseException) -> None:
        # the caller raises exc itself (with the traceback); no log line twice
        first_line = str(exc).split("\n\n", 1)[0]
        self.stop("init_failed", first_line, cause=exc, quiet=True)

    # -- scheduling ---------------------------------------------------------------------

    def fill(self) -> None:
        self.dispatch.fill()

    def on_filled(self) -> None:
        if self.producer_waiting and len(self.pending) < HIGH // 2:
            self.producer_waiting = False
            self.space.set()

    def after_change(self) -> None:
        crossed = self.acc.crossed()
        if crossed is not None:
            self.stop(*crossed)
            return
        self._check_finished()

    def _check_finished(self) -> None:
        """Every scheduled mini-batch is written: the job is done."""
        if self.source_done and self.writer.next_id >= self.scheduled:
            self.done.set()

    def stop(
        self,
        reason: StopReason,
        message: str,
        *,
        cause: BaseException | None = None,
        quiet: bool = False,
    ) -> None:
        """Stop the job (the first reason wins); ``cause``: the error the job will raise.

        A cause is kept even when the job was already stopping (a write that fails while an
        interrupted job flushes raises OutputError): the first cause wins.
        """
        if self.cause is None:
            self.cause = cause
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop_message = message
            self.dispatch.stop()
            if self.backend is not None:
                self.backend.abort()  # no respawns; backend.start() returns now
            if not quiet:
                log.warning("stopping the job: %s", message)
            self.space.set()
            self.done.set()

    # -- failure records ----------------------------------------------------------------

    def log_failure(
        self,
        attempt: Attempt,
        outcome: Outcome,
        *,
        short: int = 0,
        items: list[Any] | None = None,
    ) -> None:
        line, warning = failure_record(
            attempt, outcome, short=short, items=items, max_try=self.max_try
        )
        self.writer.log_failure(line)
        if warning is not None:
            failure_log.warning(FAILURE_FORMAT, *warning)

    def _log_part_failure(self, attempt: Attempt, outcome: Outcome, short: int) -> None:
        self.log_failure(attempt, outcome, short=short)


async def run_job(plan: JobPlan) -> tuple[JobSummary, BaseException | None]:
    """Run one job to the end (or to an early stop): its summary, and its error or None.

    The error is returned, not raised, so the caller records the summary first; it is
    ``job_error(summary, cause)``: a usage error that stopped the job, or the JobError its
    stop reason stands for.
    """
    started = time.perf_counter()
    job = _Job(plan)
    fresh = plan.resume is None
    try:
        await anyio.to_thread.run_sync(
            lambda: job.writer.open(
                fresh=fresh, failures_path=os.path.join(plan.log_dir, "failures.jsonl")
            )
        )
        await anyio.to_thread.run_sync(job.joblog.open)
    except OSError as exc:
        await anyio.to_thread.run_sync(job.writer.release)
        raise OutputError(
            f"The output files in {plan.output_dir} cannot be opened for writing: {exc}. "
            "Choose another --output or fix the directory."
        ) from exc
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(job.writer.run)
            tg.start_soon(job.joblog.run, functools.partial(live_stats, job))
            install_signals(job, plan)
            try:
                await _run(job, tg)
            finally:
                # signal handlers stay until the workers are gone: a second Ctrl-C during
                # this shutdown must kill them at once, not raise KeyboardInterrupt here
                try:
                    await _stop_backend(job)
                    await job.writer.close()
                finally:
                    remove_signals(plan)
                    tg.cancel_scope.cancel()  # the producer may wait in a slow input
    finally:
        await anyio.to_thread.run_sync(job.writer.release)
    summary = job_summary(job, time.perf_counter() - started)
    if plan.on_progress is not None:
        # the display ends on the final counts
        plan.on_progress(live_stats(job, finished=True))
    await anyio.to_thread.run_sync(job.joblog.close, overview_final_line(summary))
    return summary, job_error(summary, job.cause)


async def _run(job: _Job, tg: anyio.abc.TaskGroup) -> None:
    plan = job.plan
    try:
        backend = create_backend(plan.compute_target, plan.spec, job.dispatch)
    except (UsageError, BackendError) as exc:  # the ray extra is missing
        job.on_fatal(exc)
        return
    job.backend = backend
    job.dispatch.attach(backend)
    # Tables are planned while the workers start (imports + init() take seconds; reading
    # Parquet footers or counting a CSV's lines is parent work that need not wait for
    # them): batches queue in `pending` and go out as workers become ready. Other inputs
    # may run user code (generators), so they are read only once init() succeeded.
    early = bool(plan.sources) and all(
        isinstance(s, TabularDataset) for s in plan.sources
    )
    if early:
        tg.start_soon(Producer(job).run)
    try:
        await backend.start()
    except (EntryScriptError, InitFailedError):
        return  # already reported through on_fatal
    except (UsageError, BackendError) as exc:  # e.g. `environment` is no interpreter
        job.on_fatal(exc)
        return
    if job.stop_reason is not None:  # Ctrl-C / SIGTERM while init() was running
        return
    if not early:
        tg.start_soon(Producer(job).run)
    if plan.on_progress is not None:
        tg.start_soon(_progress, job, plan.on_progress, plan.progress_interval_s)
    job.fill()
    await job.done.wait()


async def _progress(
    job: _Job, callback: Callable[[LiveStats], None], every: float
) -> None:
    while not job.done.is_set():
        with anyio.move_on_after(every):
            await job.done.wait()
        callback(live_stats(job))


async def _stop_backend(job: _Job) -> None:
    backend = job.backend
    if backend is None:
        return
    graceful = job.stop_reason is None
    with anyio.CancelScope(shield=True):
        await backend.aclose(graceful=graceful)
