"""Cost of the live progress display: dispatch1 (echo.py, 1-item mini-batches) with the
rich bar drawing (to an in-memory terminal) against the same job without a display.

    python -m perf.progress [--n 200000] [--repeat 5]

Each measurement is a fresh process (``--one on|off``); runs are interleaved (off, on,
off, on, ...) so drift in the shared machine's speed hits both sides alike. Prints the
median batches/s of each side and the ratio on/off (1.00 = free). Everything the job
writes (output, journal, logs/minibatches.jsonl, ...) is on in both.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = Path(__file__).parent / "scripts" / "echo.py"


def one(mode: str, n: int) -> tuple[float, float]:
    """(batches/s, seconds the display spent drawing, on the loop thread)."""
    import aprs
    from aprs._step import run_coroutine

    display = None
    if mode == "on":
        from aprs._progress import RichProgress

        display = RichProgress(io.StringIO(), force_terminal=True, width=120)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = aprs.ParallelRunConfig(
            entry_script=str(SCRIPT), mini_batch_size=1, process_count_per_node=2
        )
        step = aprs.ParallelRunStep(
            name="bench-progress",
            parallel_run_config=cfg,
            inputs=[range(n)],
            output=tmp,
            allow_reuse=False,
        )

        spent = [0.0]

        def update(stats: object) -> None:
            t = time.perf_counter()
            display.update(stats)  # type: ignore[union-attr,arg-type]
            spent[0] += time.perf_counter() - t

        async def go() -> object:
            return await step.arun(on_progress=update if display is not None else None)

        t0 = time.perf_counter()
        summary = run_coroutine(go)
        elapsed = time.perf_counter() - t0
        if display is not None:
            display.close()
        assert summary.items_succeeded == n  # type: ignore[attr-defined]
    return n / elapsed, spent[0] / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--one", choices=("on", "off"))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.n)))
        return
    rates: dict[str, list[float]] = {"off": [], "on": []}
    share: list[float] = []
    for _ in range(args.repeat):
        for mode in ("off", "on"):
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "perf.progress",
                    "--one",
                    mode,
                    "--n",
                    str(args.n),
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            rate, drawing = json.loads(out)
            rates[mode].append(rate)
            if mode == "on":
                share.append(drawing)
            print(f"{mode}: {rate:,.0f} batches/s", file=sys.stderr)
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    print(
        f"dispatch1 ({args.n:,} one-item mini-batches, 2 workers, K={args.repeat}): "
        f"bar off {off:,.0f} batches/s [{min(rates['off']):,.0f}..{max(rates['off']):,.0f}], "
        f"bar on {on:,.0f} batches/s [{min(rates['on']):,.0f}..{max(rates['on']):,.0f}], "
        f"on/off = {on / off:.3f}; drawing took {100 * statistics.median(share):.2f}% "
        "of the job's wall time (median)"
    )


if __name__ == "__main__":
    main()
