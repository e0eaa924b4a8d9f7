"""The Runner's statistics record and the window of recent call latencies behind it.

    call answered ──► LatencyWindow.add(seconds)   (a ring of the last N, O(1))
    Runner.statistics() ──► RunnerStatistics (frozen record; percentiles sorted on demand)

Invariant: reading statistics never changes what the Runner does; the window holds at most
``size`` samples, so memory does not grow with traffic.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ("LatencyWindow", "RunnerStatistics")


@dataclass(frozen=True, slots=True)
class RunnerStatistics:
    """What ``Runner.statistics()`` returns (for dashboards, health checks and tests).

    Attributes:
        pending: items waiting to be sent to a worker (calls queued, batches not sent yet).
        admitted: items accepted and not yet answered (what ``max_pending`` bounds).
        in_flight: batches on workers right now.
        workers_ready: workers that ran init() and take work.
        batches: batches that run() completed; ``items``: the items in them.
        mean_batch_size: ``items / batches`` (0.0 before the first batch).
        crashes / timeouts: worker deaths and hung run() calls (each worker replaced).
        isolated: calls that failed alone after their batch was split to find them.
        isolation_tries: run() calls of parts of failed batches (the cost of isolation).
        rejected: calls and submits refused with ``RunnerOverloadedError``.
        latency_p50_s / latency_p90_s / latency_p99_s: of the last ``latency_samples``
            answered calls (admission to answer, seconds); None before the first.
    """

    pending: int
    admitted: int
    in_flight: int
    workers_ready: int
    batches: int
    items: int
    mean_batch_size: float
    crashes: int
    timeouts: int
    isolated: int
    isolation_tries: int
    rejected: int
    latency_samples: int
    latency_p50_s: float | None
    latency_p90_s: float | None
    latency_p99_s: float | None

    def as_dict(self) -> dict[str, Any]:
        """The record as a plain dict (JSON-ready)."""
        return asdict(self)


class LatencyWindow:
    """The last ``size`` latencies, in seconds."""

    def __init__(self, size: int = 1000) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self.add = self._samples.append

    def percentiles(self) -> dict[str, Any]:
        data = sorted(self._samples)
        n = len(data)

        def at(q: float) -> float | None:
            return data[min(n - 1, int(q * n))] if n else None

        return {
            "latency_samples": n,
            "latency_p50_s": at(0.50),
            "latency_p90_s": at(0.90),
            "latency_p99_s": at(0.99),
        }
