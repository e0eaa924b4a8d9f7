"""`python -m perf.serving`: aprs as a micro-batching scorer under closed-loop load.

    for mode in (direct, http), callers in (1, 8, 64, 256), peer in (aprs, ppe, pool):
        fresh process (perf._measure) ──► perf._serving.<mode>(peer, callers, ...)
    + aprs with 1 in 1000 items poisoned (direct, each of the callers >= 64)
    --callers / --peers / --modes pick rows (keep one invocation short on a shared machine)
    ──► Markdown tables on stdout [+ perf/RESULTS.md with --record]

Workload: perf/scripts/vector.py, ~1 ms per run() call + ~20 us per item, 2 workers. The
ceiling for it on 2 workers is 100k items/s (batches of B items cost 1 ms + B x 20 us).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from datetime import UTC, datetime
from typing import Any

from . import _report
from .__main__ import RESULTS, _base_env
from ._measure import measure

CALLERS = (1, 8, 64, 256)
PEERS = {
    "aprs": "aprs Runner.call",
    "ppe": "PPE run_in_executor",
    "pool": "Pool.apply_async",
    "bare": "floor: bare Pipe per child",
    "run": "run([x]) in-process (no IPC)",
}
POISON_EVERY = 1000


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    runner = {
        "max_batch_size": args.max_batch_size,
        "batch_wait_s": args.batch_wait_ms / 1000,
    }
    settings = (
        f"{args.duration:g} s measured after {args.warmup:g} s warm-up per row; Runner "
        f"{runner}"
    )
    command = shlex.join(["python", "-m", "perf.serving", *(argv or sys.argv[1:])])
    parts = [_report.header(datetime.now(UTC), command, settings)]
    print(parts[0] + "\n", flush=True)
    env = _base_env(calibrate=False)
    common = {"duration_s": args.duration, "warmup_s": args.warmup, "runner": runner}
    for mode in args.modes:
        rows = []
        for callers in args.callers:
            for peer in args.peers:
                if peer in ("bare", "run") and (mode != "direct" or callers != 1):
                    continue  # the floor of a lone request; no batching, no HTTP
                kw = {"peer": peer, "callers": callers, **common}
                rows.append(
                    (peer, measure(f"perf._serving:{mode}", kw, env, args.timeout))
                )
                _progress(mode, rows[-1])
        parts.append(_table(mode, rows))
        print(parts[-1] + "\n", flush=True)
    poisoned = [c for c in args.callers if c >= 64]  # rows with batches to poison
    if (
        "direct" in args.modes
        and "aprs" in args.peers
        and poisoned
        and not args.no_poison
    ):
        parts.append(_poison_table(args, common, env))
        print(parts[-1] + "\n", flush=True)
    if args.record:
        with RESULTS.open("a") as f:
            f.write("\n\n" + "\n\n".join(parts) + "\n")
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m perf.serving", description=__doc__)
    p.add_argument(
        "--modes", nargs="+", choices=("direct", "http"), default=["direct", "http"]
    )
    p.add_argument("--callers", nargs="+", type=int, default=list(CALLERS))
    p.add_argument("--peers", nargs="+", choices=tuple(PEERS), default=list(PEERS))
    p.add_argument(
        "--duration", type=float, default=3.0, help="measured seconds per row"
    )
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--batch-wait-ms", type=float, default=2.0)
    p.add_argument("--no-poison", action="store_true", help="skip the poisoned runs")
    p.add_argument("--timeout", type=float, default=120.0, help="per measurement")
    p.add_argument("--record", action="store_true", help="append to perf/RESULTS.md")
    return p.parse_args(argv)


def _progress(mode: str, row: tuple[str, dict[str, Any]]) -> None:
    peer, raw = row
    what = raw.get("error") or f"{raw['rps']:,.0f} req/s p99 {raw['p99_ms']:.2f} ms"
    print(
        f"  {mode} {peer} x{raw.get('callers', '?')}: {what}",
        file=sys.stderr,
        flush=True,
    )


def _cells(raw: dict[str, Any]) -> str:
    if "error" in raw:
        return f"{raw['error']} | | |"
    return f"{raw['rps']:,.0f} | {raw['p50_ms']:.2f} | {raw['p99_ms']:.2f} |"


def _table(mode: str, rows: list[tuple[str, dict[str, Any]]]) -> str:
    where = (
        "on `call()` in-process"
        if mode == "direct"
        else "through HTTP on examples/service"
    )
    lines = [
        f"### serving ({mode}): closed-loop callers {where}",
        "",
        "vector.py (~1 ms per run() + ~20 us per item), 2 workers; one request = one item.",
        "",
        "| callers | peer | req/s ↑ | p50 ms ↓ | p99 ms ↓ | aprs/peer (req/s) | mean batch |",
        "|---|---|---|---|---|---|---|",
    ]
    by_callers: dict[int, dict[str, dict[str, Any]]] = {}
    for peer, raw in rows:
        by_callers.setdefault(raw.get("callers", 0), {})[peer] = raw
    for peer, raw in rows:
        ours = by_callers.get(raw.get("callers", 0), {}).get("aprs", {})
        ratio = (
            f"{ours['rps'] / raw['rps']:.2f}"
            if "rps" in ours and raw.get("rps")
            else ""
        )
        batch = raw.get("scorer", {}).get("mean_batch_size", "")
        batch = f"{batch:.1f}" if isinstance(batch, float) else batch
        lines.append(
            f"| {raw.get('callers', '?')} | {PEERS[peer]} | {_cells(raw)} {ratio} | {batch} |"
        )
    return "\n".join(lines)


def _poison_table(args: argparse.Namespace, common: dict[str, Any], env: Any) -> str:
    lines = [
        f"### serving (direct): 1 in {POISON_EVERY} items poisoned (run() raises)",
        "",
        "| callers | req/s ↑ | p50 ms | p99 ms | vs clean | good items failed | poison failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for callers in [c for c in args.callers if c >= 64]:
        kw = {"peer": "aprs", "callers": callers, **common}
        clean = measure("perf._serving:direct", kw, env, args.timeout)
        bad = measure(
            "perf._serving:direct",
            {**kw, "poison_every": POISON_EVERY},
            env,
            args.timeout,
        )
        _progress("poison", ("aprs", bad))
        if "error" in bad or "error" in clean:
            lines.append(
                f"| {callers} | {bad.get('error') or clean.get('error')} ||||||"
            )
            continue
        lines.append(
            f"| {callers} | {_cells(bad)} {bad['rps'] / clean['rps']:.2f} | "
            f"{bad['good_failed']} | {bad['poison_failed']} of "
            f"{bad['poison_failed'] + bad['poison_ok']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
