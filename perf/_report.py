"""Markdown report: a header (machine, commit, settings) and one table per benchmark.

raw results {peer: {case: [run, ...]}} ──► Column.values ──► "median [min..max]"
                                       └─► aprs median / peer median (per aprs row)
"""

from __future__ import annotations

__all__ = ("header", "table")

import multiprocessing as mp
import os
import platform
import statistics
import subprocess
from datetime import datetime
from importlib import metadata

import psutil

from ._measure import ROOT
from ._workloads import Bench, Column, Runs

_LIBS = ("joblib", "mpire", "pebble", "aiomultiprocess", "uvloop", "numpy", "psutil")
_MAX_ERROR = 90


def header(started: datetime, command: str, settings: str) -> str:
    vm = psutil.virtual_memory()
    versions = ", ".join(f"{name} {_version(name)}" for name in _LIBS)
    return "\n".join(
        [
            f"## {started:%Y-%m-%d %H:%M} UTC · commit {_commit()}",
            "",
            (
                f"- machine: {_cpu_model()}, {os.cpu_count()} logical cores "
                f"({psutil.cpu_count(logical=False)} physical), "
                f"{vm.total / 2**30:.1f} GiB RAM, Python {platform.python_version()}, "
                f"{platform.platform()}"
            ),
            f"- load average at start (1 / 5 / 15 min): {_load()}",
            f"- peers: {versions}; start method {mp.get_start_method()}",
            f"- command: `{command}`; {settings}",
            (
                "- cells: median [min..max] of the runs; ↑ higher is better, ↓ lower "
                "is better; aprs/peer compares medians"
            ),
        ]
    )


def table(bench: Bench, results: dict[str, Runs], aprs: dict[str, str]) -> str:
    """One Markdown table: a row per peer, metric columns, then aprs/peer ratios.

    `aprs` maps a ratio's name ("aprs", or "aprs [asyncio]" with two loops) to the
    label of the aprs row it uses.
    """
    ratio_cols = [c for c in bench.columns if c.ratio]
    heads = ["peer", *(c.label for c in bench.columns)]
    for col in ratio_cols:
        for name in aprs:
            key = f" ({col.label[:-2]})" if len(ratio_cols) > 1 else ""
            heads.append(f"{name}/peer{key}")
    lines = [
        f"### {bench.name}: {bench.title}",
        "",
        bench.about,
        "",
        "| " + " | ".join(heads) + " |",
        "|" + "---|" * len(heads),
    ]
    for peer, runs in results.items():
        cells = [peer, *_dedup([_cell(col, runs, results) for col in bench.columns])]
        for col in ratio_cols:
            cells += [_ratio(col, results[aprs[n]], runs, results) for n in aprs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(col: Column, runs: Runs, every: dict[str, Runs]) -> str:
    error = _error(col, runs)
    if error:
        return error
    try:
        values = col.values(runs, every)
    except Exception:  # a missing baseline shows as n/a
        return "n/a"
    if not values:
        return "—"
    mid = statistics.median(values)
    if not col.spread or len(values) == 1:
        return format(mid, col.fmt)
    return f"{mid:{col.fmt}} [{min(values):{col.fmt}}..{max(values):{col.fmt}}]"


def _dedup(cells: list[str]) -> list[str]:
    """Show a row's error once; later cells with the same error become "—"."""
    seen: set[str] = set()
    out = []
    for cell in cells:
        repeat = cell in seen
        if cell.startswith(("error:", "timeout")):
            seen.add(cell)
        out.append("—" if repeat else cell)
    return out


def _ratio(col: Column, mine: Runs, theirs: Runs, every: dict[str, Runs]) -> str:
    if _error(col, mine) or _error(col, theirs):
        return "—"
    try:
        ratio = statistics.median(col.values(mine, every)) / statistics.median(
            col.values(theirs, every)
        )
    except (ValueError, ZeroDivisionError, statistics.StatisticsError, KeyError):
        return "—"
    return f"{ratio:.2f}" if ratio >= 0.1 else f"{ratio:.2g}"


def _error(col: Column, runs: Runs) -> str:
    for case in col.cases:
        for run in runs.get(case, []):
            if "error" in run:
                msg = " ".join(str(run["error"]).split()).replace("|", "\\|")
                if msg == "timeout":
                    return "timeout"
                short = msg if len(msg) <= _MAX_ERROR else msg[: _MAX_ERROR - 1] + "…"
                return f"error: {short}"
        if not runs.get(case):
            return "not run"
    return ""


def _load() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "missing"


def _git(*args: str) -> str:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # read-only: never take index.lock
    proc = subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, env=env, check=True
    )
    return proc.stdout.strip()


def _commit() -> str:
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"uncommitted (on {head})" if dirty else head
