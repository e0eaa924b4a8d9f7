"""A job's counters read out: the live snapshot while it runs, the summary at its end.

    _Job (acc, writer, backend statistics, scheduled, stop reason)
      ├─► live_stats(job) ──► LiveStats ──► progress display (every 0.25 s), JobLog overview
      └─► job_summary(job, elapsed_s) ──► JobSummary ──► run_job's result, job_result.json

Invariants: both only read the job (no I/O, no await, nothing changed), so they may run at
any time on the loop; neither is on the per-mini-batch path. The summary's succeeded counts
are the writer's (what is durably in the output: a stopped job drops its reorder window);
its failed counts are the accounting's. An append_row job that completed with no item
succeeded is reported as failed (``no_successful_items``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ._progress import LiveStats
from ._summary import JobSummary, StopReason

if TYPE_CHECKING:
    from ._scheduler import _Job

__all__ = ("job_summary", "live_stats")


def live_stats(job: _Job, *, finished: bool = False) -> LiveStats:
    """A snapshot for the progress display and the overview log (cheap: no I/O)."""
    acc, plan, writer = job.acc, job.plan, job.writer
    stats = job.backend.statistics() if job.backend is not None else None
    batches_total = job.scheduled if job.source_done else plan.batches_expected
    items_total = job.items_at_start + job.items_total if job.source_done else None
    return LiveStats(
        elapsed_s=time.perf_counter() - job.started,
        batches_done=acc.batches_succeeded + acc.batches_failed,
        batches_failed=acc.batches_failed,
        batches_total=batches_total,
        items_done=acc.items_succeeded + acc.items_failed,
        items_failed=acc.items_failed,
        items_total=items_total if items_total is not None else plan.items_expected,
        retries=acc.retries,
        failed_tries=acc.retries + acc.batches_failed,
        workers_alive=stats.workers_ready if stats else 0,
        workers=plan.spec.process_count,
        in_flight=stats.in_flight if stats else 0,
        reorder_window=writer.window_size,
        items_at_start=job.items_at_start,
        stopping=job.stop_reason is not None and not finished,
        finished=finished,
    )


def job_summary(job: _Job, elapsed_s: float) -> JobSummary:
    """The job's result record: status, stop reason and message, counts, worker losses."""
    acc, plan = job.acc, job.plan
    reason: StopReason = job.stop_reason or "completed"
    message = job.stop_message
    total_batches = job.scheduled  # read so far, when the job stopped early
    status = "completed"
    if reason in ("interrupted", "terminated"):
        status = "interrupted"
    elif reason != "completed":
        status = "failed"
    elif plan.append_row and acc.items_succeeded == 0 and total_batches > 0:
        status, reason = "failed", "no_successful_items"
        message = (
            f"run() did not succeed on any item: all {acc.batches_failed} mini-batches "
            "failed, so there is no result to append (see logs/failures.jsonl)"
        )
    stats = job.backend.statistics() if job.backend is not None else None
    return JobSummary(
        status=status,  # type: ignore[arg-type]
        stop_reason=reason,
        message=message,
        mini_batches_total=total_batches,
        # succeeded = what is in the output (a stopped job drops its reorder window)
        mini_batches_succeeded=job.writer.state.batches_ok,
        mini_batches_failed=acc.batches_failed,
        items_total=job.items_total
        + (plan.resume.items_ok + plan.resume.items_failed if plan.resume else 0),
        items_succeeded=job.writer.state.items_ok,
        items_failed=acc.items_failed,
        retries=acc.retries,
        elapsed_s=round(elapsed_s, 6),
        output_dir=plan.output_dir,
        output_file=plan.output_file if plan.append_row else None,
        resumed_from_batch=plan.resume.next if plan.resume else 0,
        peak_reorder_window=job.writer.peak_window,
        workers=plan.spec.process_count * plan.spec.node_count,
        worker_crashes=stats.crashed if stats else 0,
        worker_timeouts=stats.timed_out if stats else 0,
        items_isolated=job.isolator.isolated if job.isolator else 0,
    )
