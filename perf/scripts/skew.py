"""Entry script: each item sleeps a heavy-tailed time derived from the item.

Pareto(alpha=1.2, x_m=0.49 ms) capped at 200 ms, from a splitmix64 hash of the int
item: over items 0..1999 the mean is ~2.0 ms and the max is 200 ms. Deterministic, so
every peer and every run sleeps the same total; the driver uses duration() for the
ideal time.
"""

from __future__ import annotations

import time

ALPHA = 1.2
X_MIN_S = 0.00049
CAP_S = 0.2
_MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def duration(item: int) -> float:
    """Seconds that run() sleeps for `item`."""
    u = 1.0 - (_mix(item) >> 11) / 2.0**53  # uniform in (0, 1]
    return min(X_MIN_S * u ** (-1.0 / ALPHA), CAP_S)


def init() -> None:
    pass


def run(mini_batch: list) -> list:
    for item in mini_batch:
        time.sleep(duration(item))
    return mini_batch
