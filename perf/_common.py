"""Helpers shared by the peer and aprs sides, inside one measurement process.

    items (perf._workloads.items) ──► peer / aprs ──► ordered rows ──► Sink (temp file)
                                                  └─► latencies ──► percentiles

Every peer writes `str(x) + "\\n"` per returned element, in input order, to
`<tempdir>/parallel_run_step.txt`, like aprs does; the temp dir is removed afterwards.
"""

from __future__ import annotations

__all__ = (
    "Sink",
    "batched",
    "count_lines",
    "load_script",
    "make_files",
    "peak_rss_mb",
    "run_async",
    "time_calls",
    "timed_run",
)

import asyncio
import importlib.util
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from itertools import islice
from pathlib import Path
from types import ModuleType
from typing import Any, Self

OUTPUT_NAME = "parallel_run_step.txt"
_WRITE_BUFFER = 1 << 20  # generous for the peers: a large buffer is their best case
WARMUP_CALLS = 50


def load_script(path: str) -> ModuleType:
    """Import an entry script by path and call its init() (once per process)."""
    spec = importlib.util.spec_from_file_location("perf_entry_script", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.init()
    return module


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lazy mini-batches of `size` items (itertools.batched is 3.12+)."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


class Sink:
    """A temp output dir; drain() writes rows in order and times the first one."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="perf-out-"))
        self.path = self.dir / OUTPUT_NAME
        self.rows = 0
        self.first_s: float | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def drain(self, rows: Iterable[Any], t0: float) -> None:
        """Write `str(x)` per row; record seconds from `t0` to the first row."""
        it = iter(rows)
        with open(self.path, "w", encoding="utf-8", buffering=_WRITE_BUFFER) as f:
            write = f.write
            for x in it:
                self.first_s = time.perf_counter() - t0
                write(str(x) + "\n")
                self.rows += 1
                break
            n = 0
            for x in it:
                write(str(x) + "\n")
                n += 1
            self.rows += n

    def check(self, expected: int) -> None:
        if self.rows != expected:
            raise RuntimeError(f"wrote {self.rows} rows, expected {expected}")


def count_lines(path: str | os.PathLike[str]) -> int:
    n = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            n += block.count(b"\n")
    return n


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM (reset by exec, unlike ru_maxrss, which a child
    inherits from the process that forked it), else ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_async(main: Coroutine[Any, Any, Any], loop: str) -> Any:
    """Run a coroutine on uvloop or the default asyncio loop."""
    factory = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


async def time_calls(call: Callable[[int], Awaitable[Any]], n: int) -> dict[str, float]:
    """Warm up, then time `n` sequential awaited calls; p50/p99 in microseconds."""
    for i in range(WARMUP_CALLS):
        await call(i)
    lat = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        await call(i)
        lat.append((time.perf_counter_ns() - t0) / 1000)
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {"p50_us": q[49], "p99_us": q[98], "calls": n}


def make_files(folder: Path, n: int) -> None:
    """n small input files (a FileDataset of n items)."""
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"item_{i:03d}.txt").write_text(f"{i}\n")


def timed_run(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of a subprocess; raises with the last stderr line on failure."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, check=False, env=env
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
        raise RuntimeError(f"exit {proc.returncode}: {tail[0]}")
    return elapsed
