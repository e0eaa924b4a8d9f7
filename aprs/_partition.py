"""Items -> mini-batches: lists of items with contiguous ids from 0 across all inputs.

Each input is split separately (a mini-batch never mixes two inputs), by item count or, for
files, by total bytes (a file larger than the budget is a batch of its own). Lazy: a generator
input is consumed only as fast as mini-batches are scheduled.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from itertools import islice
from typing import Any

from ._errors import InputError

__all__ = ("by_bytes", "by_count", "by_count_async", "by_keys")


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


def by_keys(
    items: Iterable[Any], keys: list[str]
) -> Iterator[tuple[dict[str, Any], list[Any]]]:
    """One mini-batch per distinct combination of ``keys`` values, as Azure's partition_keys.

    Items are mappings; groups come out in order of first appearance, items in input order.
    This reads the whole input before the first group (a group is complete only at the end).
    """
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InputError(
                f"partition_keys={keys!r} needs items that are mappings (dicts); item "
                f"{index} is a {type(item).__name__}. Pass dicts, or drop partition_keys "
                "and set mini_batch_size."
            )
        missing = [k for k in keys if k not in item]
        if missing:
            raise InputError(
                f"Item {index} has no key {missing[0]!r}, one of partition_keys={keys!r}. "
                "Every item must hold every partition key."
            )
        try:
            groups.setdefault(tuple(item[k] for k in keys), []).append(item)
        except TypeError as exc:
            raise InputError(
                f"The partition key values of item {index} cannot be grouped ({exc}); "
                "they must be hashable (str, int, ...)."
            ) from exc
    for values, group in groups.items():
        yield dict(zip(keys, values, strict=True)), group
