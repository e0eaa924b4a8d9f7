"""A slow disk at the moment the job stops: the writer's last flush races its periodic one.

The job calls ``OrderedWriter.close()`` while ``OrderedWriter.run()`` may still be inside a
flush (its write + fsync run in a thread). These tests hold that thread on a
``threading.Event`` (a handshake, not a sleep) so the interleaving happens on every run.
Before the fix, close() flushed concurrently from a second thread: its rows overtook the held
ones and the last journal entry's offset (or the whole entry) was stale.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from aprs._journal import Journal, JournalState
from aprs._writer import OrderedWriter

from .conftest import read_jsonl

pytestmark = pytest.mark.timeout(30)


async def _race(folder: Path, *, block_before_write: bool) -> tuple[bytes, list[dict]]:
    """put(0); hold run()'s flush of it in its thread; put(1); close(); release."""
    writer = OrderedWriter(
        partial_path=str(folder / "out.partial"),
        journal=Journal(str(folder / "journal.jsonl")),
        start=JournalState(),
        window_limit=16,
    )
    writer.open(fresh=True, failures_path=str(folder / "failures.jsonl"))
    entered, release = threading.Event(), threading.Event()
    second_done = threading.Event()
    original = writer._write_sync
    calls = 0

    def slow_first_write(chunks: Any, failures: Any, snapshot: Any) -> None:
        nonlocal calls
        calls += 1
        first = calls == 1
        if first and block_before_write:
            entered.set()
            release.wait(10)
        original(chunks, failures, snapshot)
        if first and not block_before_write:
            entered.set()
            release.wait(10)
        if not first:
            second_done.set()

    writer._write_sync = slow_first_write  # type: ignore[method-assign]
    try:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(writer.run)
                writer.put(0, b"row-0\n", 1, 0, False)
                await anyio.to_thread.run_sync(entered.wait, 10)
                writer.put(1, b"row-1\n", 1, 0, False)
                tg.start_soon(writer.close)
                # A correct close() waits for the held flush, so the second write never
                # comes while it is held; the buggy one writes at once (huge margin).
                await anyio.to_thread.run_sync(second_done.wait, 1.0)
                release.set()
    finally:
        release.set()
        writer.release()
    data = (folder / "out.partial").read_bytes()
    return data, read_jsonl(folder / "journal.jsonl")


async def test_rows_stay_in_order_when_the_job_stops_during_a_flush(
    tmp_path: Path,
) -> None:
    """Rows flushed by close() never overtake rows an unfinished flush is writing."""
    data, _ = await _race(tmp_path, block_before_write=True)
    assert data == b"row-0\nrow-1\n"


async def test_last_journal_entry_matches_the_output_after_a_stop_during_fsync(
    tmp_path: Path,
) -> None:
    """After close(), the last journal entry's offset is the output's size (resume-safe)."""
    data, entries = await _race(tmp_path, block_before_write=False)
    assert data == b"row-0\nrow-1\n"
    last = entries[-1]
    assert (last["next"], last["offset"]) == (2, len(data))
