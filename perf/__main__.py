"""`python -m perf`: run aprs and its peers on the same workloads, report in Markdown.

    benchmarks ──► for each of K rounds, each peer, each case:
                     fresh process (perf._measure) ──► raw result or error/timeout
               ──► one table per benchmark (perf._report) ──► stdout [+ RESULTS.md]

Rounds are interleaved (round 1 of every peer, then round 2, ...) so drift in the
machine's speed spreads over all peers. A peer that fails or times out is not retried
in later rounds; its row shows the error.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import _report
from ._measure import ROOT, measure
from ._workloads import Bench, Peer, Runs, benchmarks, script

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
RESULTS_HEADER = "# aprs performance results\n"
LOOPS = {"uvloop": ["uvloop"], "asyncio": ["asyncio"], "both": ["uvloop", "asyncio"]}


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    benches = benchmarks(args.quick)
    names = [b.name for b in benches]
    unknown = set(args.only or ()) - set(names)
    if unknown:
        sys.exit(f"unknown benchmark(s) {sorted(unknown)}; choose from {names}")
    benches = [b for b in benches if not args.only or b.name in args.only]
    loops = LOOPS[args.loop]
    env = _base_env(calibrate=any(b.name == "cpu" for b in benches))
    settings = (
        f"K={args.repeat}, loop {args.loop}, timeout {args.timeout:g} s per "
        f"measurement{', quick' if args.quick else ''}"
        + (f", burn loops {env['PERF_BURN_LOOPS']}" if "PERF_BURN_LOOPS" in env else "")
    )
    command = shlex.join(["python", "-m", "perf", *(argv or sys.argv[1:])])
    parts = [_report.header(datetime.now(UTC), command, settings)]
    print(parts[0] + "\n", flush=True)
    for bench in benches:
        results = _run(bench, loops, env, args)
        try:
            parts.append(_report.table(bench, results, _aprs_rows(bench, loops)))
        except Exception as exc:  # keep the other benchmarks' tables
            parts.append(f"### {bench.name}: report failed ({exc!r})\n\n{results}")
        print(parts[-1] + "\n", flush=True)
    if args.record:
        _record("\n\n".join(parts) + "\n")
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m perf", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--quick", action="store_true", help="~10x smaller inputs (smoke run)"
    )
    p.add_argument(
        "--only", nargs="+", metavar="NAME", help="run only these benchmarks"
    )
    p.add_argument("--repeat", type=int, default=3, metavar="K", help="runs per peer")
    p.add_argument(
        "--loop",
        choices=sorted(LOOPS),
        default="uvloop",
        help="aprs's event loop (and the latency callers'); both = two aprs rows",
    )
    p.add_argument(
        "--timeout",
        type=float,
        help="seconds per measurement (default 300, or 60 with --quick)",
    )
    p.add_argument(
        "--record",
        action="store_true",
        help=f"append the report to {RESULTS.relative_to(ROOT)}",
    )
    args = p.parse_args(argv)
    if args.timeout is None:
        args.timeout = 60.0 if args.quick else 300.0
    return args


def _run(
    bench: Bench, loops: list[str], env: dict[str, str], args: Any
) -> dict[str, Runs]:
    """K interleaved rounds over every (peer, loop, case); raw results per row label."""
    rows = [(p, loop) for p in bench.peers for loop in (loops if p.aprs else loops[:1])]
    results: dict[str, Runs] = {_label(p, loop, loops): {} for p, loop in rows}
    for k in range(args.repeat):
        for peer, loop in rows:
            label = _label(peer, loop, loops)
            for case, kwargs in bench.cases.items():
                runs = results[label].setdefault(case, [])
                if any("error" in r for r in runs):
                    continue
                if bench.wants_loop:
                    kwargs = {**kwargs, "loop": loop}
                t0 = time.perf_counter()
                raw = measure(peer.target, kwargs, _env(env, peer, loop), args.timeout)
                runs.append(raw)
                run = f"{label}{f' {case}' if case else ''} run {k + 1}/{args.repeat}"
                _progress(bench.name, run, raw, time.perf_counter() - t0)
    return results


def _label(peer: Peer, loop: str, loops: list[str]) -> str:
    return f"{peer.label} [{loop}]" if peer.aprs and len(loops) > 1 else peer.label


def _aprs_rows(bench: Bench, loops: list[str]) -> dict[str, str]:
    """Ratio name ("aprs", or "aprs [loop]" with two loops) -> label of the aprs row."""
    aprs = next(p for p in bench.peers if p.aprs)
    return {
        (f"aprs [{loop}]" if len(loops) > 1 else "aprs"): _label(aprs, loop, loops)
        for loop in loops
    }


def _env(base: dict[str, str], peer: Peer, loop: str) -> dict[str, str]:
    env = dict(base)
    env.pop("APRS_LOOP", None)
    if peer.aprs and loop == "asyncio":
        env["APRS_LOOP"] = "asyncio"
    return env


def _base_env(calibrate: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), env.get("PYTHONPATH")])
    )
    if calibrate:
        spec = importlib.util.spec_from_file_location("perf_burn", script("burn"))
        assert spec is not None and spec.loader is not None
        burn = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(burn)
        env["PERF_BURN_LOOPS"] = str(burn.calibrate())
    return env


def _progress(name: str, run: str, raw: dict[str, Any], wall: float) -> None:
    what = raw.get("error") or ", ".join(
        f"{key}={value:.4g}" for key, value in raw.items() if isinstance(value, float)
    )
    print(f"[{name}] {run} ({wall:.1f} s): {what}", file=sys.stderr, flush=True)


def _record(text: str) -> None:
    if not RESULTS.exists() or not RESULTS.read_text().strip():
        RESULTS.write_text(RESULTS_HEADER)
    with open(RESULTS, "a", encoding="utf-8") as f:
        f.write("\n" + text)
    print(f"appended to {RESULTS.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
