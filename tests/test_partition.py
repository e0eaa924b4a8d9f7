"""Items -> mini-batches: sizes, remainders, byte budgets, and laziness."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aprs._partition import by_bytes, by_count, by_count_async


@pytest.mark.parametrize(
    ("n", "size", "expected"),
    [
        pytest.param(10, 3, [3, 3, 3, 1], id="remainder"),
        pytest.param(9, 3, [3, 3, 3], id="exact"),
        pytest.param(2, 5, [2], id="fewer-than-size"),
        pytest.param(1, 1, [1], id="one"),
        pytest.param(5, 1, [1, 1, 1, 1, 1], id="size-1"),
        pytest.param(0, 4, [], id="empty"),
    ],
)
def test_by_count_sizes(n: int, size: int, expected: list[int]) -> None:
    """by_count cuts n items into batches of `size`, the last holding the remainder."""
    batches = list(by_count(range(n), size))
    assert [len(b) for b in batches] == expected
    assert list(itertools.chain.from_iterable(batches)) == list(range(n))


@given(st.lists(st.integers()), st.integers(min_value=1, max_value=20))
def test_by_count_property(items: list[int], size: int) -> None:
    """Any list: concatenated batches equal the input; all but the last are full."""
    batches = list(by_count(items, size))
    assert list(itertools.chain.from_iterable(batches)) == items
    assert all(len(b) == size for b in batches[:-1])
    assert all(1 <= len(b) <= size for b in batches)


@pytest.mark.parametrize(
    ("sizes", "budget", "expected"),
    [
        pytest.param([10, 10, 10], 25, [["f0", "f1"], ["f2"]], id="two-fit"),
        pytest.param([10, 10, 10], 30, [["f0", "f1", "f2"]], id="exactly-budget"),
        pytest.param([100, 1, 1], 10, [["f0"], ["f1", "f2"]], id="large-first-alone"),
        pytest.param(
            [1, 100, 1], 10, [["f0"], ["f1"], ["f2"]], id="large-middle-alone"
        ),
        pytest.param([100], 10, [["f0"]], id="only-large"),
        pytest.param([0, 0, 0], 1, [["f0", "f1", "f2"]], id="empty-files"),
        pytest.param([], 10, [], id="no-files"),
    ],
)
def test_by_bytes(sizes: list[int], budget: int, expected: list[list[str]]) -> None:
    """by_bytes keeps batches within the budget; a file larger than it is a batch alone."""
    sized = [(f"f{i}", s) for i, s in enumerate(sizes)]
    assert list(by_bytes(sized, budget)) == expected


@given(
    st.lists(st.integers(min_value=0, max_value=100), max_size=50),
    st.integers(min_value=1, max_value=120),
)
def test_by_bytes_property(sizes: list[int], budget: int) -> None:
    """Every batch is within budget unless it is a single file; order is preserved."""
    sized = [(f"f{i}", s) for i, s in enumerate(sizes)]
    size_of = dict(sized)
    batches = list(by_bytes(sized, budget))
    assert list(itertools.chain.from_iterable(batches)) == [p for p, _ in sized]
    for batch in batches:
        assert batch
        assert len(batch) == 1 or sum(size_of[p] for p in batch) <= budget


def test_by_count_is_lazy() -> None:
    """Taking one batch from an infinite generator consumes only that batch's items."""
    consumed = []

    def infinite() -> Iterator[int]:
        for i in itertools.count():
            consumed.append(i)
            yield i

    batches = by_count(infinite(), 4)
    assert next(batches) == [0, 1, 2, 3]
    assert consumed == [0, 1, 2, 3]


def test_by_bytes_is_lazy() -> None:
    """by_bytes reads no more (path, size) pairs than it needs to close a batch."""
    consumed = []

    def infinite() -> Iterator[tuple[str, int]]:
        for i in itertools.count():
            consumed.append(i)
            yield f"f{i}", 10

    batches = by_bytes(infinite(), 25)
    assert next(batches) == ["f0", "f1"]
    assert consumed == [0, 1, 2]  # f2 was needed to know that the batch was full


@pytest.mark.parametrize(("n", "size", "expected"), [(10, 3, [3, 3, 3, 1]), (0, 3, [])])
async def test_by_count_async_sizes(n: int, size: int, expected: list[int]) -> None:
    """by_count_async cuts an async iterable like by_count cuts a sync one."""

    async def agen() -> AsyncIterator[int]:
        for i in range(n):
            yield i

    batches = [b async for b in by_count_async(agen(), size)]
    assert [len(b) for b in batches] == expected
    assert list(itertools.chain.from_iterable(batches)) == list(range(n))


async def test_by_count_async_is_lazy() -> None:
    """One batch from an infinite async generator consumes only that batch's items."""
    consumed = []

    async def infinite() -> AsyncIterator[int]:
        for i in itertools.count():
            consumed.append(i)
            yield i

    batches = by_count_async(infinite(), 3)
    assert await anext(batches) == [0, 1, 2]
    assert consumed == [0, 1, 2]
    await batches.aclose()  # type: ignore[attr-defined]
