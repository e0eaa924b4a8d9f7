"""Entry script: the cost shape of a vectorised model, ~1 ms per run() call + ~20 us per item.

run() waits that long (sleeps, then spins the last 0.2 ms so the time is precise) and
returns its input. A negative item is poison: the call fails with ValueError after the wait,
as a model that chokes on one input does.
"""

from __future__ import annotations

import time

BASE_S = 0.001
PER_ITEM_S = 20e-6
SPIN_S = 0.0002


def init() -> None:
    pass


def duration(n: int) -> float:
    return BASE_S + PER_ITEM_S * n


def run(mini_batch: list) -> list:
    deadline = time.perf_counter() + duration(len(mini_batch))
    rest = deadline - time.perf_counter() - SPIN_S
    if rest > 0:
        time.sleep(rest)
    while time.perf_counter() < deadline:
        pass
    for item in mini_batch:
        if isinstance(item, int) and item < 0:
            raise ValueError(f"poisoned item {item}")
    return mini_batch
