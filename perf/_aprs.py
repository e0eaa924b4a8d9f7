"""The aprs side: the same jobs as perf._peers, through aprs's public API only.

    items ──► aprs.ParallelRunStep(...).run() ──► <output>/parallel_run_step.txt
    item  ──► aprs.Runner.submit([item])       ──► latency
    10 files ──► python -m aprs run ...         ──► start-up

The event loop is chosen by the driver through APRS_LOOP (unset: uvloop if installed;
"asyncio": the default loop). Everything here raises on a wrong result, so the report
shows "error: ..." instead of a number.
"""

from __future__ import annotations

__all__ = ("CLI_ARGS", "run_step", "runner_latency", "startup")

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ._common import Sink, count_lines, make_files, run_async, time_calls, timed_run
from ._workloads import INIT_S, WORKERS, items, script

# `python -m aprs run` flags, as in examples/digits/run_example.py.
CLI_ARGS = (
    "run",
    "--entry-script", "{script}",
    "--input", "{input}",
    "--output", "{output}",
    "--mini-batch-size", "1",
    "--process-count-per-node", str(WORKERS),
    "--no-reuse",
)  # fmt: skip
_POLL_S = 0.005  # first-row watcher: cheap enough not to disturb the job


def run_step(work: dict[str, Any]) -> dict[str, Any]:
    """One ParallelRunStep job over a lazy input; whole-job wall time."""
    import aprs

    data = items(work)
    with Sink() as sink:
        out = sink.dir / "out"
        watcher = _FirstRow(
            out / "parallel_run_step.txt.partial"
        )  # rows land here first
        t0 = time.perf_counter()
        watcher.start(t0)
        cfg = aprs.ParallelRunConfig(
            entry_script=script(work["script"]),
            mini_batch_size=work["batch"],
            process_count_per_node=WORKERS,
            output_action="append_row",
            run_invocation_timeout=60,
            run_max_try=3,
        )
        step = aprs.ParallelRunStep(
            name=f"bench-{work['script']}",
            parallel_run_config=cfg,
            inputs=[data],
            output=str(out),
            allow_reuse=False,
        )
        summary = step.run()
        elapsed = time.perf_counter() - t0
        watcher.stop()
        _check(summary, work["n"])
    return {
        "elapsed_s": elapsed,
        "first_s": watcher.first_s,
        "reorder_peak": summary.peak_reorder_window,
        "aprs_elapsed_s": summary.elapsed_s,
    }


def runner_latency(calls: int, loop: str) -> dict[str, Any]:
    """Warm aprs.Runner, sequential submit([item]) from an asyncio caller."""
    import aprs

    async def main() -> dict[str, Any]:
        runner = aprs.Runner(
            entry_script=script("echo"), process_count_per_node=WORKERS
        )
        async with runner:

            async def call(x: int) -> Any:
                rows = await runner.submit([x])
                if rows != [x]:
                    raise RuntimeError(f"submit([{x}]) returned {rows!r}")
                return rows

            return await time_calls(call, calls)

    return run_async(main(), loop)


def startup(n: int) -> dict[str, Any]:
    """`python -m aprs run` of an n-file job; wall time of the whole command."""
    with Sink() as sink:
        inputs, out = sink.dir / "inputs", sink.dir / "out"
        make_files(inputs, n)
        fill = {"script": script("startup"), "input": str(inputs), "output": str(out)}
        cmd = [sys.executable, "-m", "aprs", *(a.format(**fill) for a in CLI_ARGS)]
        elapsed = timed_run(cmd)
        rows = count_lines(out / "parallel_run_step.txt")
        if rows != n:
            raise RuntimeError(f"wrote {rows} rows, expected {n}")
    return {"elapsed_s": elapsed, "init_s": INIT_S}


def _check(summary: Any, n: int) -> None:
    if summary.items_failed or summary.items_succeeded != n:
        raise RuntimeError(
            f"aprs job {summary.status}: {summary.items_succeeded} of {n} items "
            f"succeeded, {summary.items_failed} failed"
        )
    rows = count_lines(summary.output_file)
    if rows != n:
        raise RuntimeError(f"aprs wrote {rows} rows, expected {n}")


class _FirstRow:
    """Polls the output file's size: seconds from t0 to the first visible row."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.first_s: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._t0 = 0.0

    def start(self, t0: float) -> None:
        self._t0 = t0
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.wait(_POLL_S):
            try:
                if os.stat(self.path).st_size > 0:
                    self.first_s = time.perf_counter() - self._t0
                    return
            except FileNotFoundError:
                pass
