"""The report's Plotly figures: timeline, throughput, run() time distribution.

Each function takes ReportData and returns a plotly Figure (or None when there is nothing to
draw). Times are seconds since the job started. Invariant: the number of drawn marks is
bounded (``max_bars`` bars or a workers x ``_HEAT_BINS`` heat map, at most ``_MAX_MARKS``
markers per marker trace), whatever the number of tries.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ._data import ReportData, Try

__all__ = ("STATUS_COLORS", "run_times", "throughput", "timeline")

STATUS_COLORS = {
    "done": "#2e7d32",
    "short": "#f9a825",
    "failed": "#c62828",
    "timeout": "#ef6c00",
    "crashed": "#6a1b9a",
}
_HEAT_BINS = 400
_MAX_MARKS = 5000


def _lane(worker: int) -> str:
    return f"worker{worker:03d}" if worker >= 0 else "unknown"


def _go() -> Any:
    import plotly.graph_objects as go

    return go


def timeline(data: ReportData, max_bars: int) -> Any:
    """One lane per worker; a bar per try, or busy time per slice above ``max_bars``."""
    tries = data.tries
    if not tries:
        return None
    go = _go()
    fig = go.Figure()
    lanes = [_lane(w) for w in sorted({t.worker for t in tries})]
    if len(tries) <= max_bars:
        _bars(fig, data)
        title = "Timeline: one bar per try of a mini-batch (hover for details)"
    else:
        _heat(fig, tries)
        title = (
            f"Timeline: {len(tries):,} tries, shown as each worker's busy fraction per "
            "time slice; failures and restarts marked"
        )
        _markers(
            fig,
            [t for t in tries if t.status != "done"],
            "failed try",
            "x",
            "#c62828",
            lambda t: f"mini-batch {t.index} try {t.attempt}: {t.status}",
        )
    _markers(
        fig,
        [t for t in tries if t.attempt > 1],
        "retry (try > 1)",
        "circle-open",
        "#000000",
        lambda t: f"mini-batch {t.index} try {t.attempt}: {t.status}",
        at_start=True,
    )
    restarts = _restarts(tries)
    _markers(
        fig,
        restarts,
        "new worker process (restart)",
        "star",
        "#1565c0",
        lambda t: f"new process pid {t.pid} starts with mini-batch {t.index}",
        at_start=True,
        size=12,
    )
    fig.update_layout(
        title=title,
        barmode="overlay",
        xaxis_title="seconds since the job started",
        yaxis={"categoryorder": "array", "categoryarray": lanes[::-1]},
        height=max(260, 40 * len(lanes) + 160),
        legend={"orientation": "h", "y": -0.25},
        margin={"l": 90, "r": 20, "t": 50, "b": 40},
    )
    return fig


def _bars(fig: Any, data: ReportData) -> None:
    go = _go()
    tries = data.tries
    span = max(t.end for t in tries) - min(t.start for t in tries)
    least = span / 1500 if span > 0 else 0.001  # keep sub-pixel tries visible
    by_status: dict[str, list[Try]] = defaultdict(list)
    for t in tries:
        by_status[t.status].append(t)
    for status, group in by_status.items():
        color = STATUS_COLORS.get(status, "#757575")
        fig.add_trace(
            go.Bar(
                name=status,
                orientation="h",
                y=[_lane(t.worker) for t in group],
                x=[max(t.run_s, least) for t in group],
                base=[t.start for t in group],
                marker={
                    "color": color,
                    "line": {
                        "color": ["#000000" if t.attempt > 1 else color for t in group],
                        "width": [1.5 if t.attempt > 1 else 0 for t in group],
                    },
                },
                customdata=[
                    [
                        t.index,
                        t.label,
                        t.pid,
                        t.items_in,
                        t.items_out,
                        round(t.run_s, 4),
                        data.errors_by_try.get(t.key, ""),
                    ]
                    for t in group
                ],
                hovertemplate=(
                    "mini-batch %{customdata[0]} try %{customdata[1]}<br>"
                    "pid %{customdata[2]}, %{customdata[3]} items in, "
                    "%{customdata[4]} out<br>run() %{customdata[5]} s<br>"
                    "%{customdata[6]}<extra>" + status + "</extra>"
                ),
            )
        )


def _heat(fig: Any, tries: list[Try]) -> None:
    go = _go()
    workers = sorted({t.worker for t in tries})
    row_of = {w: i for i, w in enumerate(workers)}
    start = min(t.start for t in tries)
    end = max(t.end for t in tries)
    width = max((end - start) / _HEAT_BINS, 1e-6)
    busy = [[0.0] * _HEAT_BINS for _ in workers]
    for t in tries:
        row = busy[row_of[t.worker]]
        a, b = t.start - start, t.end - start
        first, last = int(a / width), min(int(b / width), _HEAT_BINS - 1)
        for k in range(min(first, _HEAT_BINS - 1), last + 1):
            lo, hi = max(a, k * width), min(b, (k + 1) * width)
            if hi > lo:
                row[k] += (hi - lo) / width
    fig.add_trace(
        go.Heatmap(
            z=[[min(v, 1.0) for v in row] for row in busy],
            x=[start + (k + 0.5) * width for k in range(_HEAT_BINS)],
            y=[_lane(w) for w in workers],
            colorscale="Greens",
            zmin=0,
            zmax=1,
            colorbar={"title": "busy"},
            name="busy fraction",
            hovertemplate="%{y} at %{x:.1f} s: busy %{z:.0%}<extra></extra>",
        )
    )


def _markers(
    fig: Any,
    tries: list[Try],
    name: str,
    symbol: str,
    color: str,
    text: Any,
    *,
    at_start: bool = False,
    size: int = 8,
) -> None:
    if not tries:
        return
    shown = tries[:_MAX_MARKS]
    fig.add_trace(
        _go().Scatter(
            name=name + ("" if len(shown) == len(tries) else f" (first {len(shown)})"),
            mode="markers",
            x=[t.start if at_start else t.end for t in shown],
            y=[_lane(t.worker) for t in shown],
            marker={"symbol": symbol, "color": color, "size": size},
            text=[text(t) for t in shown],
            hovertemplate="%{text}<extra></extra>",
        )
    )


def _restarts(tries: list[Try]) -> list[Try]:
    """The first try of every worker process after the worker's first one."""
    first_of: dict[tuple[int, int], Try] = {}
    for t in tries:
        key = (t.worker, t.pid)
        if key not in first_of or t.start < first_of[key].start:
            first_of[key] = t
    by_worker: dict[int, list[Try]] = defaultdict(list)
    for t in first_of.values():
        by_worker[t.worker].append(t)
    out: list[Try] = []
    for group in by_worker.values():
        group.sort(key=lambda t: t.start)
        out.extend(group[1:])
    return out


def throughput(data: ReportData) -> Any:
    """Items/s succeeded and failed tries/s over time."""
    tries = data.tries
    if not tries:
        return None
    go = _go()
    start = min(t.start for t in tries)
    end = max(t.end for t in tries)
    span = max(end - start, 1e-3)
    bins = max(10, min(200, int(span)))
    width = span / bins
    items = [0.0] * bins
    failed = [0.0] * bins
    for t in tries:
        k = min(int((t.end - start) / width), bins - 1)
        if t.status in ("done", "short"):
            items[k] += min(t.items_out, t.items_in)
        else:
            failed[k] += 1
    xs = [start + (k + 0.5) * width for k in range(bins)]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=xs, y=[v / width for v in items], name="items/s", mode="lines+markers"
        )
    )
    if any(failed):
        fig.add_trace(
            go.Bar(
                x=xs,
                y=[v / width for v in failed],
                name="failed tries/s",
                marker={"color": STATUS_COLORS["failed"]},
                yaxis="y2",
                opacity=0.6,
            )
        )
    fig.update_layout(
        title=f"Throughput over time ({width:.2g} s slices)",
        xaxis_title="seconds since the job started",
        yaxis={"title": "items succeeded / s", "rangemode": "tozero"},
        yaxis2={
            "title": "failed tries / s",
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
        },
        height=340,
        legend={"orientation": "h", "y": -0.3},
        margin={"l": 70, "r": 70, "t": 50, "b": 40},
    )
    return fig


def run_times(data: ReportData) -> Any:
    """Histogram of run() seconds per try (every status), log-scaled counts."""
    tries = data.tries
    if not tries:
        return None
    go = _go()
    fig = go.Figure()
    for status in ("done", "short", "failed", "timeout", "crashed"):
        values = [t.run_s for t in tries if t.status == status]
        if values:
            fig.add_trace(
                go.Histogram(
                    x=values,
                    name=status,
                    marker={"color": STATUS_COLORS[status]},
                    nbinsx=60,
                    opacity=0.8,
                )
            )
    fig.update_layout(
        title="Distribution of run() times per try",
        barmode="stack",
        xaxis_title="run() seconds",
        yaxis_title="tries",
        yaxis_type="log",
        height=320,
        legend={"orientation": "h", "y": -0.3},
        margin={"l": 70, "r": 20, "t": 50, "b": 40},
    )
    return fig
