"""A job's SIGINT / SIGTERM: the first stops the job in time, a second one exits at once.

    run_job ──► install_signals(job, plan) ──► loop.add_signal_handler(SIGINT, SIGTERM)
                                                   │ signal
                                                   ▼
                    on_signal: 1st ──► job.stop("interrupted" | "terminated")
                               2nd ──► backend.kill_now() ──► os._exit(130 | 143)
    run_job, after the workers are gone ──► remove_signals(plan)

Invariants: handlers are installed only on the main thread and only when the plan asks
(``handle_signals``); they stay until the backend is closed, so a second Ctrl-C during the
shutdown kills the workers instead of raising KeyboardInterrupt in the middle of it. The
handler runs on the loop and never awaits; the signal count lives on the job.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._job_plan import JobPlan
    from ._scheduler import _Job
    from ._summary import StopReason

__all__ = ("install_signals", "on_signal", "remove_signals")

log = logging.getLogger("aprs.job")


def install_signals(job: _Job, plan: JobPlan) -> None:
    for signum, loop in _signal_loop(plan):
        loop.add_signal_handler(signum, on_signal, job, signum)


def remove_signals(plan: JobPlan) -> None:
    for signum, loop in _signal_loop(plan):
        loop.remove_signal_handler(signum)


def on_signal(job: _Job, signum: int) -> None:
    job.signals += 1
    if job.signals > 1:
        log.warning("second signal: stopping at once")
        if job.backend is not None:
            job.backend.kill_now()
        os._exit(130 if signum == signal.SIGINT else 143)
    reason: StopReason = "interrupted" if signum == signal.SIGINT else "terminated"
    name = signal.Signals(signum).name
    job.stop(
        reason,
        f"the job received {name} and stopped; run the same command "
        "again to resume where it stopped",
    )


def _signal_loop(plan: JobPlan) -> list[tuple[int, asyncio.AbstractEventLoop]]:
    """(signal, loop) pairs to (un)install SIGINT/SIGTERM on; none off the main thread."""
    if (
        not plan.handle_signals
        or threading.current_thread() is not threading.main_thread()
    ):
        return []
    loop = asyncio.get_running_loop()
    return [(signal.SIGINT, loop), (signal.SIGTERM, loop)]
