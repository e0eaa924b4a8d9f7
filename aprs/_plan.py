"""The mini-batch plan, known before a job runs: totals for the progress bar, and --dry-run.

    inputs (FileDataset | IterableInput) ──► expected_totals() ──► (items, mini-batches) or None
                                         └─► describe_plan()  ──► text for `run --dry-run`

Only what can be known without consuming an input is counted: files (their sorted list, which
resolve() caches, so the job does not walk the folders again), and in-memory inputs with a
length (lists, tuples). Generators and async iterables stay lazy: their totals are None and
the progress display shows counts and a rate instead of a bar.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ._datasets import FileDataset, IterableInput
from ._partition import by_bytes, by_count

__all__ = ("describe_plan", "expected_totals")


def expected_totals(
    inputs: Sequence[Any],
    unit: str,
    value: int,
    *,
    keyed: bool = False,
    base: str | None = None,
) -> tuple[int | None, int | None]:
    """(items, mini-batches) the job will have, each None when not known up front.

    Blocking for file inputs (resolve() walks folders): call it from a thread.
    """
    items = 0
    batches: int | None = 0
    for source in inputs:
        if isinstance(source, FileDataset):
            n = len(source.resolve(base))
        elif isinstance(source, IterableInput):
            try:
                n = len(source.source)  # type: ignore[arg-type]
            except TypeError:
                return None, None  # a generator: lazy, count as we go
        else:
            return None, None  # tables: rows are known only once the files are read
        items += n
        if batches is not None:
            batches = None if unit != "count" or keyed else batches + -(-n // value)
    return items, batches


def describe_plan(
    inputs: Sequence[Any],
    unit: str,
    value: int,
    *,
    base: str | None = None,
    show: int = 3,
) -> str:
    """What `run --dry-run` prints: per input, how many mini-batches, sizes, first items."""
    lines: list[str] = []
    total_batches = total_items = 0
    for i, source in enumerate(inputs):
        if not isinstance(source, FileDataset):
            what = "in-memory items" if isinstance(source, IterableInput) else "a table"
            lines.append(f"input {i}: {what} (split while running)")
            continue
        if unit == "bytes":
            batches = list(by_bytes(source.iter_sized(base), value))
        else:
            batches = list(by_count(source.resolve(base), value))
        sizes = [len(b) for b in batches]
        items = sum(sizes)
        total_batches += len(batches)
        total_items += items
        size_text = (
            f"{min(sizes)}-{max(sizes)} items each" if sizes else "no mini-batches"
        )
        if sizes and min(sizes) == max(sizes):
            size_text = f"{sizes[0]} items each"
        lines.append(
            f"input {i}: {items} files -> {len(batches)} mini-batches ({size_text})"
        )
        for n, batch in enumerate(batches[:show]):
            lines.append(f"  mini-batch {n}: {_preview(batch)}")
        if len(batches) > show:
            lines.append(f"  ... {len(batches) - show} more")
    head = (
        f"plan: {total_batches} mini-batches, {total_items} items "
        f"(mini_batch_size {_unit(unit, value)})"
    )
    return "\n".join([head, *lines])


def _unit(unit: str, value: int) -> str:
    return f"{value} bytes" if unit == "bytes" else f"{value} items"


def _preview(batch: list[Any], limit: int = 3) -> str:
    shown = [
        os.path.basename(x) if isinstance(x, str) else repr(x) for x in batch[:limit]
    ]
    more = f", ... (+{len(batch) - limit})" if len(batch) > limit else ""
    return ", ".join(shown) + more
