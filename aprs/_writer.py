"""Ordered writer: appends mini-batch results in mini-batch order, durably.

    results (any order) ──► reorder window ──► contiguous chunks ──► thread: write, fsync
                            {batch_id: rows}     next_id advances       + journal line

``put()`` is called on the event loop for every final outcome (a failed mini-batch is put with
no rows, so ids stay contiguous; a bisected one, ``isolate_failures``, once with the rows of
its good items, assembled by aprs._isolate). The window holds only results that wait for an earlier
mini-batch; the scheduler dispatches no batch whose id is more than ``window_limit`` ahead of
``next_id``, so the window (and the parent's memory) stays bounded whatever the skew. File
writes and fsyncs run in a worker thread, never on the loop; while one write runs, more results
collect, so the writer naturally writes in large chunks.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import anyio
import anyio.to_thread

from ._journal import Journal, JournalState
from ._tabular._output import split_header
from ._tabular._parquet_out import ParquetSink

__all__ = ("OrderedWriter",)

_SYNC_EVERY_S = 0.25  # fsync + journal at most this often (and at the end)
_MAX_BUFFERED_BYTES = 1 << 20  # stop dispatching while this much waits to be written
_IOV_MAX = 1024  # buffers per writev (Linux's UIO_MAXIOV)


class OrderedWriter:
    def __init__(
        self,
        *,
        partial_path: str | None,
        journal: Journal,
        start: JournalState,
        window_limit: int,
        on_drained: Callable[[], None] | None = None,
        on_error: Callable[[OSError], None] | None = None,
        framed: bool = False,
        sink: ParquetSink | None = None,
    ) -> None:
        self._partial_path = partial_path
        self._journal = journal
        self.state = _copy(start)
        self.window_limit = window_limit
        self._on_drained = on_drained
        self._on_error = on_error
        self.error: OSError | None = None
        self._window: dict[int, tuple[bytes, int, int, bool]] = {}
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._failures: list[bytes] = []
        self._wake = anyio.Event()
        self._woken = False  # _wake is set: put() need not set it again (per batch)
        self._lock = (
            anyio.Lock()
        )  # one flush at a time: chunks are taken and written in order
        self._closing = False
        self._fd: int | None = None
        self._failures_fd: int | None = None
        self._failures_path: str | None = None
        self._last_sync = 0.0
        self._dirty = False
        self.peak_window = 0
        # bodies are "u32 len + header + rows": the first header goes before any row
        self._framed = framed
        self._sink = (
            sink  # Parquet output: chunks are Arrow IPC, appended as row groups
        )

    @property
    def next_id(self) -> int:
        return self.state.next

    @property
    def window_size(self) -> int:
        """Results waiting for an earlier mini-batch (the reorder window)."""
        return len(self._window)

    def accepts(self, batch_id: int) -> bool:
        """May a batch with this id be dispatched now without overflowing the window?"""
        return (
            batch_id - self.state.next < self.window_limit
            and self._buffered < _MAX_BUFFERED_BYTES
        )

    def open(self, *, fresh: bool, failures_path: str) -> None:
        """Open files (blocking; call before the loop gets busy or from a thread)."""
        if self._partial_path is not None:
            fd = os.open(self._partial_path, os.O_WRONLY | os.O_CREAT, 0o644)
            os.ftruncate(fd, 0 if fresh else self.state.offset)
            os.lseek(fd, 0, os.SEEK_END)
            self._fd = fd
        self._journal.open(fresh=fresh)
        self._failures_path = failures_path
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if fresh else 0)
        self._failures_fd = os.open(failures_path, flags, 0o644)

    def put(
        self, batch_id: int, rows: bytes, ok: int, failed: int, batch_failed: bool
    ) -> None:
        """A final result for ``batch_id`` (rows may be empty). Loop thread only."""
        state = self.state
        if batch_id != state.next:
            self._window[batch_id] = (rows, ok, failed, batch_failed)
            self.peak_window = max(self.peak_window, len(self._window))
            return
        self._advance(rows, ok, failed, batch_failed)
        window = self._window
        while window:
            entry = window.pop(state.next, None)
            if entry is None:
                break
            self._advance(*entry)
        if not self._woken:
            self._woken = True
            self._wake.set()

    def _advance(self, rows: bytes, ok: int, failed: int, batch_failed: bool) -> None:
        state = self.state
        if self._framed and rows:
            header, rows = split_header(rows)
            if state.offset + self._buffered == 0:  # nothing written yet
                rows = header + rows
        if rows:
            self._chunks.append(rows)
            self._buffered += len(rows)
        state.next += 1
        state.items_ok += ok
        state.items_failed += failed
        if batch_failed:
            state.batches_failed += 1
        else:
            state.batches_ok += 1
        self._dirty = True

    def log_failure(self, record: bytes) -> None:
        self._failures.append(record)
        self._woken = True
        self._wake.set()

    async def run(self) -> None:
        """Write whatever is contiguous, until close() is called and all is written."""
        while True:
            # Rows written but not yet journaled get their fsync + journal line once the
            # sync interval has passed, even if no further result arrives (a slow run()).
            delay = None
            if self._dirty:
                delay = max(0.0, self._last_sync + _SYNC_EVERY_S - anyio.current_time())
            with anyio.move_on_after(delay):
                await self._wake.wait()
            if self._wake.is_set():
                self._wake = anyio.Event()
                self._woken = False
            await self._flush(final=False)
            if self._closing:
                return

    async def close(self) -> None:
        """Write the rest, fsync, journal. Safe to call when run() is not running."""
        self._closing = True
        self._woken = True
        self._wake.set()
        await self._flush(final=True)

    async def _flush(self, *, final: bool) -> None:
        async with self._lock:
            await self._flush_locked(final=final)

    async def _flush_locked(self, *, final: bool) -> None:
        if self.error is not None:  # the output cannot be written: keep nothing more
            self._chunks.clear()
            self._failures.clear()
            return
        chunks, self._chunks = self._chunks, []
        failures, self._failures = self._failures, []
        now = anyio.current_time()
        sync = final or now - self._last_sync >= _SYNC_EVERY_S
        snapshot = None
        if sync and (self._dirty or final):
            self._dirty = False
            snapshot = _copy(self.state)
            snapshot.offset += sum(map(len, chunks))
            self._last_sync = now
        written = sum(map(len, chunks))
        if chunks or failures or snapshot is not None:
            try:
                await anyio.to_thread.run_sync(
                    self._write_sync, chunks, failures, snapshot
                )
            except (
                OSError
            ) as exc:  # disk full, I/O error: stop the job, keep the journal
                self.error = exc
                if self._on_error is not None:
                    self._on_error(exc)
                return
        self._buffered -= written
        self.state.offset += written
        if written and self._on_drained is not None:
            self._on_drained()  # dispatch may have paused on _MAX_BUFFERED_BYTES

    def _write_sync(
        self, chunks: list[bytes], failures: list[bytes], snapshot: JournalState | None
    ) -> None:
        if chunks and self._fd is not None and self._sink is not None:
            self._sink.write(self._fd, chunks)
        elif chunks and self._fd is not None:
            _write_all(self._fd, chunks)
        if failures and self._failures_fd is not None:
            _write_all(self._failures_fd, failures)
        if snapshot is not None:
            if self._fd is not None:
                os.fsync(self._fd)
            if self._failures_fd is not None:
                os.fsync(self._failures_fd)
            self._journal.append(snapshot)

    def release(self) -> None:
        """Close the files (blocking, tiny)."""
        if self._sink is not None and self.error is None:
            try:
                self._sink.close()
            except OSError as exc:  # reported like any write error
                self.error = exc
        for fd in (self._fd, self._failures_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._failures_fd = None
        self._journal.close()


def _write_all(fd: int, chunks: list[bytes]) -> None:
    """Write ``chunks`` in order with ``writev``, _IOV_MAX at a time.

    Not ``b"".join(chunks)`` first: a flush of up to _MAX_BUFFERED_BYTES and more, joined in
    this thread, left that much in its malloc arena for the rest of the job (glibc raises
    its mmap threshold after the first large free): ~5 MB of the parent's peak RSS growth.
    """
    for i in range(0, len(chunks), _IOV_MAX):
        group = chunks[i : i + _IOV_MAX]
        written = os.writev(fd, group)
        if written < sum(map(len, group)):  # a short write (a full disk): the rest
            view = memoryview(b"".join(group))[written:]
            while view:
                view = view[os.write(fd, view) :]


def _copy(state: JournalState) -> JournalState:
    return JournalState(
        **{f: getattr(state, f) for f in JournalState.__struct_fields__}
    )
