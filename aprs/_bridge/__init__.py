"""The local process-pool backend: wire protocol, parent-side pool, worker entry point."""

from __future__ import annotations

from ._pool import Attempt, LocalPool, Outcome, PoolListener, WorkerSpec

__all__ = ("Attempt", "LocalPool", "Outcome", "PoolListener", "WorkerSpec")
