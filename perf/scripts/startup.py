"""Entry script: init() sleeps 0.2 s (INIT_S in perf/_workloads.py); run() does nothing."""

from __future__ import annotations

import time

INIT_S = 0.2


def init() -> None:
    time.sleep(INIT_S)


def run(mini_batch: list) -> list:
    return mini_batch
