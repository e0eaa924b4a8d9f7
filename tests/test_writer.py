"""OrderedWriter on a real event loop and real files: any completion order -> input order."""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.lowlevel
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aprs import _writer
from aprs._journal import Journal, JournalState
from aprs._writer import OrderedWriter

Result = tuple[int, bytes, int, int, bool]  # batch_id, rows, ok, failed, batch_failed


def rows_of(batch_id: int) -> bytes:
    """The rows batch ``batch_id`` writes in these tests: two lines naming it."""
    return f"b{batch_id}-0\nb{batch_id}-1\n".encode()


def ok_result(batch_id: int) -> Result:
    return batch_id, rows_of(batch_id), 2, 0, False


def failed_result(batch_id: int) -> Result:
    return batch_id, b"", 0, 2, True


async def drive(
    folder: Path,
    results: list[Result],
    *,
    between: Callable[[OrderedWriter], Awaitable[None]] | None = None,
    window_limit: int = 1024,
) -> OrderedWriter:
    """Open a writer in ``folder``, put ``results`` in the given order, close it."""
    writer = OrderedWriter(
        partial_path=str(folder / "out.partial"),
        journal=Journal(str(folder / "journal.jsonl")),
        start=JournalState(),
        window_limit=window_limit,
    )
    writer.open(fresh=True, failures_path=str(folder / "failures.jsonl"))
    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(writer.run)
                for result in results:
                    writer.put(*result)
                    if between is not None:
                        await between(writer)
                await writer.close()
    finally:
        writer.release()
    return writer


def journal_lines(folder: Path) -> list[dict[str, int]]:
    data = (folder / "journal.jsonl").read_bytes()
    return [orjson.loads(line) for line in data.splitlines() if line]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(min_value=1, max_value=40).flatmap(lambda n: st.permutations(range(n)))
)
def test_any_completion_order_gives_input_order(order: list[int]) -> None:
    """Whatever order results arrive in, the file holds them in batch-id order, once each."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        writer = anyio.run(drive, folder, [ok_result(i) for i in order])
        n = len(order)
        expected = b"".join(rows_of(i) for i in range(n))
        assert (folder / "out.partial").read_bytes() == expected
        assert writer.next_id == n
        assert writer.state.items_ok == 2 * n
        assert writer.state.batches_ok == n
        assert writer.state.offset == len(expected)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=1, max_value=30).flatmap(
        lambda n: st.tuples(st.permutations(range(n)), st.sets(st.integers(0, n - 1)))
    )
)
def test_failed_batches_finalize_gaps(case: tuple[list[int], set[int]]) -> None:
    """A failed batch (no rows) fills its id so later batches are written after it."""
    order, failed = case
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results = [failed_result(i) if i in failed else ok_result(i) for i in order]
        writer = anyio.run(drive, folder, results)
        n = len(order)
        expected = b"".join(rows_of(i) for i in range(n) if i not in failed)
        assert (folder / "out.partial").read_bytes() == expected
        state = writer.state
        assert (state.next, state.batches_ok, state.batches_failed) == (
            n,
            n - len(failed),
            len(failed),
        )
        assert (state.items_ok, state.items_failed) == (
            2 * (n - len(failed)),
            2 * len(failed),
        )


async def test_gap_holds_back_later_batches(tmp_path: Path) -> None:
    """Batches after a missing id stay in the window until the missing one arrives."""
    writer = OrderedWriter(
        partial_path=str(tmp_path / "out.partial"),
        journal=Journal(str(tmp_path / "journal.jsonl")),
        start=JournalState(),
        window_limit=1024,
    )
    writer.open(fresh=True, failures_path=str(tmp_path / "failures.jsonl"))
    try:
        writer.put(*ok_result(1))
        writer.put(*ok_result(2))
        assert writer.next_id == 0
        writer.put(*failed_result(0))
        assert writer.next_id == 3
        assert (writer.state.batches_failed, writer.state.batches_ok) == (1, 2)
        await writer.close()
    finally:
        writer.release()
    assert (tmp_path / "out.partial").read_bytes() == rows_of(1) + rows_of(2)


async def test_journal_lines_match_file_offsets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every journal line's offset is where the rows of the batches below `next` end."""
    monkeypatch.setattr(_writer, "_SYNC_EVERY_S", 0.0)  # journal on every flush
    order = [3, 1, 0, 2, 6, 4, 5, 7, 9, 8]
    failed = {4, 8}

    async def wait_flushed(writer: OrderedWriter) -> None:
        # Let the writer task write what is contiguous before the next result arrives.
        expected = sum(
            len(rows_of(i)) for i in range(writer.next_id) if i not in failed
        )
        while writer.state.offset != expected:
            await anyio.sleep(0.001)

    results = [failed_result(i) if i in failed else ok_result(i) for i in order]
    await drive(tmp_path, results, between=wait_flushed)
    data = (tmp_path / "out.partial").read_bytes()
    lines = journal_lines(tmp_path)
    assert len(lines) >= 4  # one per flush that advanced `next`, plus the final one
    previous = JournalState()
    for line in lines:
        state = JournalState(**line)
        assert state.next >= previous.next
        assert state.offset >= previous.offset
        done = [i for i in range(state.next) if i not in failed]
        assert data[: state.offset] == b"".join(rows_of(i) for i in done)
        assert state.items_ok == 2 * len(done)
        assert state.items_failed == 2 * (state.next - len(done))
        assert (state.batches_ok, state.batches_failed) == (
            len(done),
            state.next - len(done),
        )
        previous = state
    assert lines[-1]["next"] == 10
    assert lines[-1]["offset"] == len(data)
    assert Journal.load(str(tmp_path / "journal.jsonl")) == JournalState(**lines[-1])


@pytest.mark.parametrize(
    ("order", "peak"),
    [
        pytest.param([0, 1, 2, 3], 0, id="in-order"),
        pytest.param([3, 2, 1, 0], 3, id="reversed"),
        pytest.param([1, 0, 3, 2], 1, id="pairs-swapped"),
        pytest.param([2, 3, 0, 1], 2, id="two-ahead"),
    ],
)
async def test_peak_window(tmp_path: Path, order: list[int], peak: int) -> None:
    """peak_window is the most results that ever waited for an earlier batch."""
    writer = await drive(tmp_path, [ok_result(i) for i in order])
    assert writer.peak_window == peak


async def test_accepts_respects_window_limit(tmp_path: Path) -> None:
    """accepts() allows ids less than window_limit ahead of the next id to write."""
    writer = OrderedWriter(
        partial_path=None,
        journal=Journal(str(tmp_path / "journal.jsonl")),
        start=JournalState(),
        window_limit=4,
    )
    assert [writer.accepts(i) for i in range(6)] == [True] * 4 + [False] * 2
    writer.put(0, b"", 1, 0, False)
    assert writer.accepts(4)
    assert not writer.accepts(5)


async def test_summary_only_writes_no_file_but_counts(tmp_path: Path) -> None:
    """With no partial path (summary_only) the writer only counts and journals."""
    writer = OrderedWriter(
        partial_path=None,
        journal=Journal(str(tmp_path / "journal.jsonl")),
        start=JournalState(),
        window_limit=1024,
    )
    writer.open(fresh=True, failures_path=str(tmp_path / "failures.jsonl"))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.run)
            for i in (2, 0, 1):
                writer.put(i, b"", 3, 0, False)
            await writer.close()
    finally:
        writer.release()
    names = sorted([p.name async for p in anyio.Path(tmp_path).iterdir()])
    assert names == ["failures.jsonl", "journal.jsonl"]
    last = Journal.load(str(tmp_path / "journal.jsonl"))
    assert last == JournalState(next=3, offset=0, items_ok=9, batches_ok=3)


async def test_failure_records_are_written(tmp_path: Path) -> None:
    """log_failure() records end up in the failures file, in the order they were logged."""
    records = [orjson.dumps({"mini_batch_index": i}) + b"\n" for i in (5, 2, 7)]

    async def log_all(writer: OrderedWriter) -> None:
        if writer.next_id == 1:
            for record in records:
                writer.log_failure(record)

    await drive(tmp_path, [ok_result(0)], between=log_all)
    assert (tmp_path / "failures.jsonl").read_bytes() == b"".join(records)


async def test_resume_truncates_to_journal_offset(tmp_path: Path) -> None:
    """Opening with fresh=False truncates the partial file to the start state's offset."""
    partial = tmp_path / "out.partial"
    partial.write_bytes(rows_of(0) + b"torn tail without newline")
    start = JournalState(next=1, offset=len(rows_of(0)), items_ok=2, batches_ok=1)
    writer = OrderedWriter(
        partial_path=str(partial),
        journal=Journal(str(tmp_path / "journal.jsonl")),
        start=start,
        window_limit=1024,
    )
    writer.open(fresh=False, failures_path=str(tmp_path / "failures.jsonl"))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.run)
            writer.put(*ok_result(2))
            writer.put(*ok_result(1))
            await writer.close()
    finally:
        writer.release()
    assert partial.read_bytes() == rows_of(0) + rows_of(1) + rows_of(2)
    assert writer.state.items_ok == 6
    assert writer.state.next == 3


async def test_close_while_run_is_flushing_keeps_order_and_journal(
    tmp_path: Path,
) -> None:
    """close() called while run() is writing still leaves ordered rows and a true journal."""
    writer = OrderedWriter(
        partial_path=str(tmp_path / "out.partial"),
        journal=Journal(str(tmp_path / "journal.jsonl")),
        start=JournalState(),
        window_limit=1024,
    )
    writer.open(fresh=True, failures_path=str(tmp_path / "failures.jsonl"))
    big = b"batch0\n" * 1_000_000
    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(writer.run)
                await anyio.wait_all_tasks_blocked()
                writer.put(0, big, 1, 0, False)
                while writer._chunks:  # run() took batch 0's rows and is writing them
                    await anyio.lowlevel.checkpoint()
                writer.put(1, b"batch1\n", 1, 0, False)
                await writer.close()  # what run_job does when the last result arrives
    finally:
        writer.release()
    data = (tmp_path / "out.partial").read_bytes()
    assert data == big + b"batch1\n"
    last = Journal.load(str(tmp_path / "journal.jsonl"))
    assert last == JournalState(next=2, offset=len(data), items_ok=2, batches_ok=2)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
async def test_write_error_is_reported_and_stops_writing(tmp_path: Path) -> None:
    """A failed write (disk full: /dev/full) reaches on_error once; the journal keeps the
    last durable state instead of claiming rows that were never written."""
    errors: list[OSError] = []
    writer = OrderedWriter(
        partial_path=str(tmp_path / "out.partial"),
        journal=Journal(str(tmp_path / "journal.jsonl")),
        start=JournalState(),
        window_limit=1024,
        on_error=errors.append,
    )
    writer.open(fresh=True, failures_path=str(tmp_path / "failures.jsonl"))
    import os

    assert writer._fd is not None
    os.close(writer._fd)
    writer._fd = os.open("/dev/full", os.O_WRONLY)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.run)
            writer.put(0, rows_of(0), 3, 0, False)
            writer.put(1, rows_of(1), 3, 0, False)
            await writer.close()
    finally:
        writer.release()
    assert len(errors) == 1 and errors[0].errno == 28  # ENOSPC
    assert writer.error is errors[0]
    assert Journal.load(str(tmp_path / "journal.jsonl")) is None


def test_write_all_keeps_order_past_one_writev(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More chunks than one writev takes, and a short write: every byte once, in order."""
    import os

    chunks = [f"{i}\n".encode() for i in range(2500)]  # > 2 x _IOV_MAX
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    real = os.writev
    calls = []

    def short_once(fd: int, buffers: list[bytes]) -> int:
        calls.append(len(buffers))
        if len(calls) == 2:  # the second group is cut short, mid-chunk
            return real(fd, [b"".join(buffers)[:7]])
        return real(fd, buffers)

    monkeypatch.setattr(os, "writev", short_once)
    try:
        _writer._write_all(fd, chunks)
    finally:
        os.close(fd)
    assert calls == [1024, 1024, 452]
    assert path.read_bytes() == b"".join(chunks)
