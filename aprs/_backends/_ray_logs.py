"""The Ray workers' log files, kept on the driver like the local pool's.

    actor reply (LogDelta: bytes each log file grew by) ──► WorkerLogs.append
        ──► <log_dir>/<sub>/node-<node id>/<file>, opened once, appended unbuffered

Invariant: a log that cannot be written costs a warning, never the batch or the job.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import BinaryIO

from ._ray_actor import LogDelta

__all__ = ("WorkerLogs",)

log = logging.getLogger("aprs.ray")


class WorkerLogs:
    """Append what each actor's script logged under the job's log folder."""

    def __init__(self, log_dir: str | None) -> None:
        self._log_dir = log_dir
        self._files: dict[str, BinaryIO] = {}

    def append(self, node_id: str, delta: LogDelta) -> None:
        if not delta or not self._log_dir:
            return
        node = f"node-{node_id[:8]}"
        for rel, data in delta:
            sub, name = os.path.split(rel)
            path = os.path.join(self._log_dir, sub, node, name)
            f = self._files.get(path)
            try:
                if f is None:
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    f = self._files[path] = open(path, "ab", buffering=0)  # noqa: SIM115
                f.write(data)
            except OSError as exc:
                log.warning("cannot write the worker log %s: %s", path, exc)

    def close(self) -> None:
        for f in self._files.values():
            with contextlib.suppress(OSError):
                f.close()
        self._files.clear()
