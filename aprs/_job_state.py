"""What a job leaves behind to recognise itself: its fingerprint and logs/state.json.

    config + arguments + code files (.py by content, others by size and mtime)
        + input files (path, size, mtime) + side inputs ──► job_fingerprint (sha256)
    state.json {fingerprint, status, name, pid, time, command} ◄── write_state (atomic)
    read_json(path) ──► the dict, or None when missing or unreadable

The step compares a new fingerprint with the last state's: the same and "completed" means
reuse, the same and "running"/"interrupted" means resume (``_step``). Invariant: settings
that only say where a job runs (Ray address, node wait, worker start, description) are not
hashed, so they never force a re-run.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from ._datasets import FileDataset, TabularDataset

__all__ = ("code_files", "job_fingerprint", "read_json", "write_state")

_WHERE_ONLY = ("description", "ray_address", "ray_node_wait", "worker_start")
_MAX_CODE_FILES = 10_000


def job_fingerprint(
    config: dict[str, Any],
    extra: Any,
    code: Sequence[str],
    inputs: Sequence[FileDataset | TabularDataset],
    side_inputs: Sequence[FileDataset],
) -> str:
    """Hash of everything that determines a job's output (``extra``: arguments, paths)."""
    from ._datasets import TabularDataset

    h = hashlib.sha256()
    cfg = {k: v for k, v in config.items() if k not in _WHERE_ONLY}
    if not cfg["isolate_failures"]:
        del cfg["isolate_failures"]  # off: the fingerprints of earlier versions hold
    h.update(orjson.dumps(cfg, option=orjson.OPT_SORT_KEYS))
    h.update(orjson.dumps(extra))
    for path in code:
        _hash_file_meta(h, path, content=path.endswith(".py"))
    for inp in inputs:
        if isinstance(inp, TabularDataset):
            h.update(repr((inp.options, inp.name)).encode())
        for path in inp.resolve():
            _hash_file_meta(h, path, content=False)
    for side in side_inputs:
        for path in side.resolve():
            _hash_file_meta(h, path, content=False)
    return h.hexdigest()


def code_files(script_path: str, source_dir: str | None, output: str) -> list[str]:
    """The job's code: the script alone, or every file under source_dir but the output."""
    if source_dir is None:
        return [script_path] if script_path.endswith(".py") else []
    out: list[str] = []
    skip = os.path.abspath(output)
    for root, dirs, files in os.walk(source_dir):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith((".", "__pycache__"))
            and os.path.abspath(os.path.join(root, d)) != skip
        )
        out.extend(
            os.path.join(root, f) for f in sorted(files) if not f.endswith(".pyc")
        )
        if len(out) > _MAX_CODE_FILES:
            break
    return out


def write_state(
    path: str, *, fingerprint: str | None, status: str, name: str, command: Any
) -> None:
    """Replace state.json atomically (`aprs status` reads it while the job runs)."""
    record = {
        "fingerprint": fingerprint,
        "status": status,
        "name": name,
        "pid": os.getpid(),  # `aprs status` tells running from stopped
        "time": time.time(),
        "command": command,
    }
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(orjson.dumps(record))
    os.replace(tmp, path)


def read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            data = orjson.loads(f.read())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _hash_file_meta(h: Any, path: str, *, content: bool) -> None:
    try:
        st = os.stat(path)
    except OSError:
        return
    h.update(
        f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0".encode("utf-8", "surrogateescape")
    )
    if content and st.st_size < (1 << 20):
        with open(path, "rb") as f:
            h.update(f.read())
