"""Resume journal: which mini-batches are durably in the output, and the counts so far.

    writer flush ──► output fsync ──► journal line appended + fsync
    {"next": 120, "offset": 48213, "items_ok": ..., "items_failed": ..., ...}

Because the writer appends strictly in mini-batch order, one line says everything: every
mini-batch below ``next`` is final (its rows end at byte ``offset`` of the partial output, its
counts are included) and nothing at or after ``next`` is. A resumed run truncates the partial
output to ``offset`` and starts at ``next``. A torn last line (the process was killed while
writing it) is ignored, so the journal is always consistent.
"""

from __future__ import annotations

import os

import msgspec
import orjson

__all__ = ("Journal", "JournalState")


class JournalState(msgspec.Struct, kw_only=True):
    next: int = 0
    offset: int = 0
    items_ok: int = 0
    items_failed: int = 0
    batches_ok: int = 0
    batches_failed: int = 0


class Journal:
    """Append-only, fsynced. Blocking methods: call them from a worker thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    @staticmethod
    def load(path: str) -> JournalState | None:
        """The last complete entry, or None when there is none."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        last: JournalState | None = None
        for line in data.split(b"\n"):
            if not line:
                continue
            try:
                last = msgspec.convert(orjson.loads(line), JournalState)
            except (orjson.JSONDecodeError, msgspec.ValidationError):
                break  # a torn line can only be the last one
        return last

    def open(self, *, fresh: bool) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if fresh else 0)
        self._fd = os.open(self.path, flags, 0o644)

    def append(self, state: JournalState) -> None:
        assert self._fd is not None
        os.write(self._fd, orjson.dumps(msgspec.to_builtins(state)) + b"\n")
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
