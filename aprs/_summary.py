"""The job result record, its rendering, and the CLI exit code it maps to."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ("JobStatus", "JobSummary", "StopReason", "exit_code_for")

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
            f"items: {self.items_succeeded} succeeded, {self.items_failed} failed",
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
