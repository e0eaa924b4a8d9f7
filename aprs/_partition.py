"""Items -> mini-batches: lists of items with contiguous ids from 0 across all inputs.

Each input is split separately (a mini-batch never mixes two inputs), by item count or, for
files, by total bytes (a file larger than the budget is a batch of its own). Lazy: a generator
input is consumed only as fast as mini-batches are scheduled.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from itertools import islice
from typing import Any

__all__ = ("by_bytes", "by_count", "by_count_async")


def by_count(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Split into lists of ``size`` items; the last one holds the remainder."""
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def by_bytes(sized: Iterable[tuple[str, int]], budget: int) -> Iterator[list[str]]:
    """Group (path, size) pairs into batches of at most ``budget`` bytes (at least 1 file)."""
    batch: list[str] = []
    total = 0
    for path, size in sized:
        if batch and total + size > budget:
            yield batch
            batch, total = [], 0
        batch.append(path)
        total += size
    if batch:
        yield batch


async def by_count_async(items: Any, size: int) -> AsyncIterator[list[Any]]:
    """``by_count`` for an async iterable."""
    batch: list[Any] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
