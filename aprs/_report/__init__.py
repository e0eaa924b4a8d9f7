"""`python -m aprs report OUTPUT`: one self-contained HTML page drawn from a job's logs.

    logs/job_result.json | state.json + journal ─┐
    logs/minibatches.jsonl (one row per try) ─────┼──► _data.ReportData ──► _figures (Plotly)
    logs/failures.jsonl ──────────────────────────┘                          │
                                                         _page: summary, figures, tables,
                                                         plotly.js inlined ──► report.html

The page needs no network (plotly.js is inlined, no CDN) and works for completed, failed,
stopped and still-running jobs (it draws whatever the logs hold so far). Above ``max_bars``
tries, the timeline shows each worker's busy fraction per time slice instead of one bar per
try, so a 100k-mini-batch job stays a page a browser opens in a second.

Needs the ``report`` extra (``pip install 'aprs[report]'``: plotly).
"""

from __future__ import annotations

import os

from .._errors import UsageError

__all__ = ("write_report",)


def write_report(output_dir: str, *, max_bars: int = 5000) -> str:
    """Write ``<output_dir>/report.html`` and return its path.

    Raises:
        UsageError: the directory holds no aprs job, or plotly is not installed.
    """
    try:
        import plotly  # noqa: F401
    except ImportError:
        raise UsageError(
            "The report needs plotly, which is not installed. Install the report extra: "
            "pip install 'aprs[report]'."
        ) from None
    from ._data import load
    from ._page import render

    data = load(output_dir)
    html = render(data, max_bars=max_bars)
    path = os.path.join(output_dir, "report.html")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(html)
    os.replace(tmp, path)
    return path
