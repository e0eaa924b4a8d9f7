"""The report page: summary cards, the figures, stragglers and failures tables, inlined JS."""

from __future__ import annotations

import html
import statistics
import time
from typing import Any

from ._data import ReportData, Try
from ._figures import run_times, throughput, timeline

__all__ = ("render",)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;
color:#212121;background:#fafafa}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.sub{color:#616161;font-size:13px;margin-bottom:16px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:10px 14px;
min-width:120px} .card b{display:block;font-size:20px} .card span{color:#616161;font-size:12px}
.status-completed b{color:#2e7d32} .status-failed b{color:#c62828}
.status-running b{color:#1565c0} .status-stopped b{color:#ef6c00}
.fig{background:#fff;border:1px solid #e0e0e0;border-radius:6px;margin:12px 0;padding:4px}
table{border-collapse:collapse;background:#fff;font-size:13px;width:100%}
th,td{border:1px solid #e0e0e0;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f5} pre{white-space:pre-wrap;font-size:12px;margin:4px 0}
.none{color:#616161;font-style:italic}
"""


def render(data: ReportData, *, max_bars: int) -> str:
    """The whole page as one string (plotly.js inlined)."""
    from plotly.offline import get_plotlyjs

    figures = [
        ("timeline", timeline(data, max_bars)),
        ("throughput", throughput(data)),
        ("run-times", run_times(data)),
    ]
    parts = [_summary(data)]
    for div_id, fig in figures:
        if fig is None:
            continue
        parts.append(
            '<div class="fig">'
            + fig.to_html(
                full_html=False,
                include_plotlyjs=False,
                div_id=div_id,
                config={"responsive": True, "displaylogo": False},
            )
            + "</div>"
        )
    if not data.tries:
        parts.append('<p class="none">No mini-batch has run yet.</p>')
    parts.append(_stragglers(data.tries))
    parts.append(_failures(data))
    name = html.escape(str(data.status.get("name") or "aprs job"))
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>aprs report: {name}</title><style>{_CSS}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )


def _card(label: str, value: Any, cls: str = "") -> str:
    return (
        f'<div class="card {cls}"><b>{html.escape(str(value))}</b>'
        f"<span>{html.escape(label)}</span></div>"
    )


def _summary(data: ReportData) -> str:
    st = data.status
    status = str(st["status"])
    kind = status.split(" ")[0]
    result, journal = st.get("result"), st.get("journal")
    cards = [_card("status", status, f"status-{kind}")]
    if result is not None and kind in ("completed", "failed"):
        cards += [
            _card("mini-batches", f"{result['mini_batches_total']:,}"),
            _card("succeeded", f"{result['mini_batches_succeeded']:,}"),
            _card("failed", f"{result['mini_batches_failed']:,}"),
            _card("items succeeded", f"{result['items_succeeded']:,}"),
            _card("items failed", f"{result['items_failed']:,}"),
            _card("retries", f"{result['retries']:,}"),
            _card("elapsed", f"{result['elapsed_s']:.1f} s"),
            _card("workers", result["workers"]),
            _card(
                "crashes / timeouts",
                f"{result['worker_crashes']} / {result['worker_timeouts']}",
            ),
        ]
    elif journal is not None:
        cards += [
            _card("mini-batches in the output", f"{journal['next']:,}"),
            _card("items succeeded", f"{journal['items_ok']:,}"),
            _card("items failed", f"{journal['items_failed']:,}"),
        ]
    t = st["tries"]
    cards.append(_card("tries recorded", f"{sum(t.values()):,}"))
    if data.tries:
        span = max(x.end for x in data.tries) - min(x.start for x in data.tries)
        ok = sum(min(x.items_out, x.items_in) for x in data.tries if x.status == "done")
        if span > 0:
            cards.append(_card("items/s (while running)", f"{ok / span:,.1f}"))
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(data.t0)) if data.t0 else "-"
    )
    reason = ""
    if result is not None and result.get("message"):
        reason = f"<div class='sub'>reason: {html.escape(result['message'])}</div>"
    command = st.get("command")
    resume = ""
    if command and kind not in ("completed",):
        resume = f"<div class='sub'>run again / resume: <code>{html.escape(command)}</code></div>"
    return (
        f"<h1>aprs report: {html.escape(str(st.get('name')))}</h1>"
        f"<div class='sub'>{html.escape(data.output_dir)} · started {when} · "
        f"{len(data.runs)} run(s) · generated "
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}</div>"
        f"{reason}{resume}<div class='cards'>{''.join(cards)}</div>"
    )


def _stragglers(tries: list[Try], show: int = 10) -> str:
    done = [t for t in tries if t.status in ("done", "short")]
    if len(done) < 2:
        return ""
    times = [t.run_s for t in done]
    median = statistics.median(times)
    q = statistics.quantiles(times, n=100) if len(times) >= 2 else [median] * 99
    slowest = sorted(tries, key=lambda t: -t.run_s)[:show]
    rows = "".join(
        f"<tr><td>{t.index}</td><td>{t.attempt}</td><td>worker{t.worker:03d}</td>"
        f"<td>{t.pid}</td><td>{t.run_s:.3f}</td>"
        f"<td>{(t.run_s / median if median > 0 else 0):.1f}x</td><td>{t.status}</td></tr>"
        for t in slowest
    )
    return (
        "<h2>Stragglers: the slowest run() calls</h2>"
        f"<div class='sub'>run() seconds: median {median:.4f}, p95 {q[94]:.4f}, "
        f"p99 {q[98]:.4f}, max {max(times):.4f}</div>"
        "<table id='stragglers'><tr><th>mini-batch</th><th>try</th><th>worker</th>"
        "<th>pid</th><th>run() s</th><th>x median</th><th>status</th></tr>"
        f"{rows}</table>"
    )


def _failures(data: ReportData) -> str:
    if not data.failures:
        return "<h2>Failures</h2><p class='none'>No failed tries.</p>"
    rows = []
    for g in data.failures:
        first = g.first
        batches = sorted(g.batches)
        shown = ", ".join(map(str, batches[:20])) + (
            " ..." if len(batches) > 20 else ""
        )
        tb = html.escape(str(first.get("traceback") or first.get("message") or ""))
        rows.append(
            f"<tr><td><b>{html.escape(g.error_type)}</b><br>{html.escape(g.message)}"
            f"<details><summary>first: mini-batch {first.get('mini_batch_index')} try "
            f"{first.get('try')}</summary><pre>{tb}</pre></details></td>"
            f"<td>{g.count}</td><td>{len(batches)}</td><td>{shown}</td></tr>"
        )
    return (
        "<h2>Failures grouped by error</h2><table id='failures'><tr><th>error</th>"
        "<th>failed tries</th><th>mini-batches</th><th>which</th></tr>"
        + "".join(rows)
        + "</table>"
    )
