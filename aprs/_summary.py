"""The job result record, its rendering, the error it stands for and the CLI exit code.

    run_job ──► (JobSummary, cause) ──► job_error(summary, cause) ──► None | the exception
                                        (the one place a stop reason becomes an exception)

A new stop reason is added to ``StopReason`` and, when it needs its own exception or exit
code, to ``job_error`` / ``exit_code_for`` here; nothing else maps reasons.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ._errors import (
    ErrorThresholdError,
    InitFailedError,
    JobError,
    JobInterruptedError,
)

__all__ = ("JobStatus", "JobSummary", "StopReason", "exit_code_for", "job_error")

JobStatus = Literal["completed", "failed", "interrupted"]
StopReason = Literal[
    "completed",
    "error_threshold",
    "allowed_failed_count",
    "allowed_failed_percent",
    "no_successful_items",
    "init_failed",
    "input_error",
    "interrupted",
    "terminated",
    "internal_error",
]


class JobSummary(msgspec.Struct, kw_only=True):
    """What a job did. Written to ``<output>/logs/job_result.json``.

    Example:
        >>> summary = step.run()
        >>> summary.status, summary.items_succeeded, summary.output_file
    """

    status: JobStatus
    stop_reason: StopReason
    message: str = ""
    mini_batches_total: int = 0
    mini_batches_succeeded: int = 0
    mini_batches_failed: int = 0
    items_total: int = 0
    items_succeeded: int = 0
    items_failed: int = 0
    retries: int = 0
    elapsed_s: float = 0.0
    output_dir: str = ""
    output_file: str | None = None
    reused: bool = False
    resumed_from_batch: int = 0
    peak_reorder_window: int = 0
    workers: int = 0
    worker_crashes: int = 0
    worker_timeouts: int = 0
    items_isolated: int = 0  # isolate_failures: failed items this run found alone

    def render(self) -> str:
        """A few human-readable lines for the terminal."""
        head = f"status: {self.status}"
        if self.reused:
            head += (
                " (reused the output of an identical earlier run; nothing was rerun)"
            )
        elif self.resumed_from_batch:
            head += f" (resumed at mini-batch {self.resumed_from_batch})"
        lines = [
            head,
            (
                f"mini-batches: {self.mini_batches_total} total, "
                f"{self.mini_batches_succeeded} succeeded, "
                f"{self.mini_batches_failed} failed"
            ),
            f"items: {self.items_succeeded} succeeded, {self.items_failed} failed"
            + (
                f" ({self.items_isolated} isolated as poison items)"
                if self.items_isolated
                else ""
            ),
            f"elapsed: {self.elapsed_s:.2f} s",
            f"output: {self.output_file or self.output_dir}",
        ]
        if self.message:
            lines.append(f"reason: {self.message}")
        return "\n".join(lines)


def exit_code_for(summary: JobSummary) -> int:
    """0 completed, 1 failed, 130 interrupted by SIGINT, 143 by SIGTERM."""
    if summary.status == "completed":
        return 0
    if summary.stop_reason == "interrupted":
        return 130
    if summary.stop_reason == "terminated":
        return 143
    return 1


_THRESHOLDS = ("error_threshold", "allowed_failed_count", "allowed_failed_percent")


def job_error(summary: JobSummary, cause: BaseException | None) -> BaseException | None:
    """The exception a finished job raises, or None when it completed.

    ``cause`` is what stopped the job when it was an error of its own (an entry script that
    cannot be imported, init() failing everywhere, an unreadable input, a failed write): it
    is returned as is, so usage errors keep their exit code 2, with the summary attached to
    job errors. Otherwise the stop reason picks the exception.
    """
    if isinstance(cause, JobError):
        cause.summary = summary
        return cause
    if cause is not None:
        return cause
    if summary.status == "completed":
        return None
    message = f"The job {summary.status}: {summary.message}"
    reason = summary.stop_reason
    if summary.status == "interrupted":
        signum = 2 if reason == "interrupted" else 15
        return JobInterruptedError(message, summary, signum=signum)
    if reason in _THRESHOLDS:
        return ErrorThresholdError(message, summary)
    if reason == "init_failed":
        return InitFailedError(message, summary)
    return JobError(message, summary)
