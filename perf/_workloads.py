"""The benchmarks: inputs, entry scripts, peers, and the columns of each report table.

    Bench ──► cases (kwargs for a peer function) ──► one fresh process per measurement
          └─► columns (raw results of K runs ──► median [min..max], aprs/peer ratio)

A raw result is the dict a peer function returns (elapsed_s, first_s, p50_us, ...)
plus rss_mb, the measurement process's peak RSS (ru_maxrss).
"""

from __future__ import annotations

__all__ = ("Bench", "Column", "Peer", "benchmarks", "items", "script")

import itertools
import statistics
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent / "scripts"
WORKERS = 2
PAYLOAD_BYTES = 256 * 1024
INIT_S = 0.2  # perf/scripts/startup.py sleeps this long in init()

Runs = dict[str, list[dict[str, Any]]]  # case -> raw results of one peer
Values = Callable[[Runs, dict[str, Runs]], list[float]]  # (this peer, all peers)


def script(name: str) -> str:
    return str(SCRIPTS / f"{name}.py")


def items(work: dict[str, Any]) -> Iterable[Any]:
    """A fresh, lazy input for one job (never materialised)."""
    kind, n = work["items"], work["n"]
    if kind == "range":
        return range(n)
    if kind == "gen":  # a generator: no len(), so a peer must stream it
        return (i for i in range(n))
    if kind == "bytes":  # ASCII letters, so str() of it is ~256 KiB, not ~1 MiB
        letters = string.ascii_letters.encode()
        blob = (letters * (PAYLOAD_BYTES // len(letters) + 1))[:PAYLOAD_BYTES]
        return itertools.repeat(blob, n)
    if kind == "ndarray":
        import numpy as np

        return itertools.repeat(np.arange(PAYLOAD_BYTES // 8, dtype=np.float64), n)
    raise ValueError(f"unknown items kind {kind!r}")


@dataclass(frozen=True)
class Peer:
    label: str
    target: str  # "module:function", run in a fresh process per measurement
    aprs: bool = False


@dataclass(frozen=True)
class Column:
    label: str  # ↑ higher is better, ↓ lower is better
    cases: tuple[str, ...]  # the cases it reads: an error in one shows in the cell
    values: Values
    fmt: str = ",.0f"
    spread: bool = False  # show [min..max]
    ratio: bool = False  # add an aprs/peer column


@dataclass(frozen=True)
class Bench:
    name: str
    title: str
    about: str
    cases: dict[str, dict[str, Any]]  # case label -> kwargs of the peer function
    peers: tuple[Peer, ...]
    columns: tuple[Column, ...]
    wants_loop: bool = False  # pass loop="uvloop"|"asyncio" to every peer


APRS_STEP = Peer("aprs", "perf._aprs:run_step", aprs=True)
POOL_IMAP = Peer("Pool.imap", "perf._peers:pool_imap")
STREAMING = (
    POOL_IMAP,
    Peer("ProcessPoolExecutor.map", "perf._peers:ppe_map"),
    Peer("joblib generator", "perf._peers:joblib_generator"),
    Peer("mpire imap", "perf._peers:mpire_imap"),
    Peer("pebble map", "perf._peers:pebble_map"),
    Peer("aiomultiprocess map", "perf._peers:aiomp_map"),
    Peer("bare two pipes", "perf._peers:bare_pipes"),
    Peer("serial loop", "perf._peers:serial"),
)
LAZY = (POOL_IMAP, STREAMING[3], STREAMING[2])  # peers that stream a generator


def _each(case: str, fn: Callable[[dict[str, Any]], float | None]) -> Values:
    """Per-run values of one case; a run without the value (None) is skipped."""

    def values(runs: Runs, _all: dict[str, Runs]) -> list[float]:
        got = (fn(r) for r in runs[case] if "error" not in r)
        return [v for v in got if v is not None]

    return values


def _rss(case: str = "") -> Column:
    return Column("peak RSS MB ↓", (case,), _each(case, lambda r: r["rss_mb"]))


def _first(case: str = "") -> Column:
    return Column("first result ms ↓", (case,), _each(case, _ms("first_s")), ",.1f")


def _ms(key: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda r: None if r.get(key) is None else 1e3 * r[key]


def _rate(label: str, per_run: float, case: str = "", fmt: str = ",.0f") -> Column:
    return Column(
        label, (case,), _each(case, lambda r: per_run / r["elapsed_s"]), fmt, True, True
    )


def _efficiency(runs: Runs, every: dict[str, Runs]) -> list[float]:
    serial = statistics.median(r["elapsed_s"] for r in every["serial loop"][""])
    return [serial / WORKERS / r["elapsed_s"] for r in runs[""]]


def _growth(small: str, large: str) -> Values:
    def values(runs: Runs, _all: dict[str, Runs]) -> list[float]:
        return [
            b["rss_mb"] / a["rss_mb"]
            for a, b in zip(runs[small], runs[large], strict=False)
        ]

    return values


def _si(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


def _stream(script_name: str, kind: str, n: int, batch: int) -> dict[str, Any]:
    return {"work": {"script": script_name, "items": kind, "n": n, "batch": batch}}


def _dispatch(quick: bool) -> list[Bench]:
    n1, n100 = (20_000, 200_000) if quick else (200_000, 2_000_000)
    peers = (APRS_STEP, *STREAMING)
    return [
        Bench(
            "dispatch1",
            f"dispatch, 1-item mini-batches ({n1:,} batches)",
            "echo.py; the whole job incl. pool start-up and ordered file output. "
            "Peers: chunksize 1.",
            {"": _stream("echo", "range", n1, 1)},
            peers,
            (_rate("batches/s ↑", n1), _first(), _rss()),
        ),
        Bench(
            "dispatch100",
            f"dispatch, 100-item mini-batches ({n100:,} items)",
            "echo.py; Pool/PPE/joblib/mpire/pebble chunk 100 items, aiomultiprocess, "
            "bare pipes and serial send explicit 100-item mini-batches.",
            {"": _stream("echo", "range", n100, 100)},
            peers,
            (_rate("items/s ↑", n100), _first(), _rss()),
        ),
    ]


def _cpu(quick: bool) -> Bench:
    n = 40 if quick else 400
    return Bench(
        "cpu",
        f"CPU-bound, {n} mini-batches of ~10 ms pure Python",
        f"burn.py; efficiency = (serial loop time / {WORKERS}) / time; "
        "serial loop is 0.5 by definition.",
        {"": _stream("burn", "range", n, 1)},
        (APRS_STEP, *STREAMING),
        (
            Column("efficiency ↑", ("",), _efficiency, ".2f", True, True),
            Column("time s ↓", ("",), _each("", lambda r: r["elapsed_s"]), ".2f"),
        ),
    )


def _payload(quick: bool) -> Bench:
    n = 200 if quick else 2000
    mb = n * PAYLOAD_BYTES / 1e6
    return Bench(
        "payload",
        f"payload, {n} mini-batches of 256 KiB in and out",
        "payload.py returns its input; MB/s counts input bytes one way (1 MB = 1e6 B). "
        "bytes: ASCII; numpy: float64 array (str() of it is short).",
        {
            "bytes": _stream("payload", "bytes", n, 1),
            "numpy": _stream("payload", "ndarray", n, 1),
        },
        (APRS_STEP, *STREAMING),
        (
            _rate("bytes MB/s ↑", mb, "bytes", ",.1f"),
            _rate("numpy MB/s ↑", mb, "numpy", ",.1f"),
        ),
    )


def _memory(quick: bool) -> Bench:
    small, large = (10_000, 1_000_000) if quick else (100_000, 10_000_000)
    s, b = _si(small), _si(large)
    return Bench(
        "memory",
        f"parent peak RSS, lazy generator of {s} vs {b} ints, 100-item batches",
        "echo.py; peak RSS (ru_maxrss) of the process that runs the job; "
        "growth = RSS@large / RSS@small, target <= 1.10.",
        {s: _stream("echo", "gen", small, 100), b: _stream("echo", "gen", large, 100)},
        (APRS_STEP, *LAZY),
        (
            Column(
                f"RSS MB @{s} ↓", (s,), _each(s, lambda r: r["rss_mb"]), ",.0f", True
            ),
            Column(
                f"RSS MB @{b} ↓",
                (b,),
                _each(b, lambda r: r["rss_mb"]),
                ",.0f",
                True,
                True,
            ),
            Column("growth ↓", (s, b), _growth(s, b), ".2f", True),
            Column(f"items/s @{b} ↑", (b,), _each(b, lambda r: large / r["elapsed_s"])),
        ),
    )


def _latency(quick: bool) -> Bench:
    n = 200 if quick else 2000
    peers = (
        Peer("aprs Runner.submit", "perf._aprs:runner_latency", aprs=True),
        Peer("Pool.apply (sync)", "perf._peers:pool_apply_latency"),
        Peer("Pool.apply_async (awaited)", "perf._peers:pool_apply_async_latency"),
        Peer("PPE run_in_executor", "perf._peers:ppe_executor_latency"),
        Peer("aiomultiprocess apply", "perf._peers:aiomp_apply_latency"),
        Peer("bare pipe (add_reader)", "perf._peers:bare_pipe_latency"),
    )
    return Bench(
        "latency",
        f"warm single-item round trip, {n} sequential calls from asyncio",
        "echo.py; 50 warm-up calls first; microseconds per awaited call.",
        {"": {"calls": n}},
        peers,
        (
            Column(
                "p50 µs ↓", ("",), _each("", lambda r: r["p50_us"]), ",.0f", True, True
            ),
            Column(
                "p99 µs ↓", ("",), _each("", lambda r: r["p99_us"]), ",.0f", True, True
            ),
        ),
        wants_loop=True,
    )


def _skew(quick: bool) -> Bench:
    n = 200 if quick else 2000
    peers = (
        APRS_STEP,
        POOL_IMAP,
        STREAMING[6],
        Peer(f"ideal (sum of sleeps / {WORKERS})", "perf._peers:skew_ideal"),
    )
    return Bench(
        "skew",
        f"heavy-tailed run() times, {n} mini-batches, ordered output",
        "skew.py sleeps Pareto(1.2) capped at 200 ms (mean ~2 ms), from a hash of the item.",
        {"": _stream("skew", "range", n, 1)},
        peers,
        (
            Column(
                "time s ↓",
                ("",),
                _each("", lambda r: r["elapsed_s"]),
                ".2f",
                True,
                True,
            ),
            Column("reorder peak", ("",), _each("", lambda r: r.get("reorder_peak"))),
        ),
    )


def _startup() -> Bench:
    peers = (
        Peer("python -m aprs run", "perf._aprs:startup", aprs=True),
        Peer("python -c (Pool of 2)", "perf._peers:startup_pool"),
        Peer("python -c pass (floor)", "perf._peers:startup_floor"),
    )
    return Bench(
        "startup",
        "start-up: 10-item job, init() sleeps 0.2 s, empty run()",
        f"Wall time of a fresh interpreter minus the {INIT_S} s init (floor: no init).",
        {"": {"n": 10}},
        peers,
        (
            Column(
                "overhead s ↓",
                ("",),
                _each("", lambda r: r["elapsed_s"] - r["init_s"]),
                ".3f",
                True,
                True,
            ),
        ),
    )


def benchmarks(quick: bool) -> list[Bench]:
    return [
        *_dispatch(quick),
        _cpu(quick),
        _payload(quick),
        _memory(quick),
        _latency(quick),
        _skew(quick),
        _startup(),
    ]
