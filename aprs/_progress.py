"""What a running job shows: a live snapshot of its counts, and the displays that draw it.

    job (event loop) ── every 0.25 s ──► LiveStats (a small frozen snapshot)
                                             │
                       ┌─────────────────────┼──────────────────────┐
                       ▼                     ▼                      ▼
                RichProgress            PlainProgress          logs/job_progress_overview.txt
                (a terminal: a bar      (a pipe / CI: one      (_joblog, every few seconds)
                 redrawn in place)       line every few s)

Invariants: the engine never waits for a display. The job's progress task builds one
``LiveStats`` per tick (a handful of attribute reads) and hands it over; rendering happens at
most ``_MAX_FPS`` times a second on the loop, never per mini-batch. Failure lines come in
through ``failure()`` (the CLI routes the ``aprs.failures`` logger here): the first
``first_failures`` are printed one line each, every later one only bumps a single
"N more failures (see logs/failures.jsonl)" line, so a job with 10,000 failures prints a few
lines, not 10,000.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from typing import IO, Any, Protocol

__all__ = (
    "DisplayHandler",
    "LiveStats",
    "PlainProgress",
    "ProgressDisplay",
    "RichProgress",
    "format_duration",
    "make_display",
)

_MAX_FPS = 4  # redraws per second, at most (each costs ~1.3 ms of loop time)


@dataclass(frozen=True, slots=True)
class LiveStats:
    """One snapshot of a running job (all counts include a resumed run's earlier part)."""

    elapsed_s: float
    batches_done: int  # final: succeeded + failed for good
    batches_failed: int
    batches_total: int | None  # None while unknown (lazy inputs, byte-sized batches)
    items_done: int  # items of the final batches (succeeded + failed)
    items_failed: int
    items_total: int | None
    retries: int
    failed_tries: int
    workers_alive: int
    workers: int
    in_flight: int
    reorder_window: int
    items_at_start: int = 0  # done before this run (resume): not part of the rate
    stopping: bool = False
    finished: bool = False  # the final snapshot: the workers have exited

    @property
    def items_rate(self) -> float:
        """Items per second processed by this run."""
        done = self.items_done - self.items_at_start
        return done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the current rate; None when the total or the rate is unknown."""
        rate = self.items_rate
        if self.items_total is None or rate <= 0:
            return None
        return max(0.0, (self.items_total - self.items_done) / rate)

    def line(self) -> str:
        """One plain line: the CI log and the progress overview file use it."""
        parts = [
            f"mini-batches {_of(self.batches_done, self.batches_total)}",
            f"items {_of(self.items_done, self.items_total)}",
            f"{self.items_rate:,.1f} items/s",
        ]
        eta = self.eta_s
        if eta is not None:
            parts.append(f"ETA {format_duration(eta)}")
        parts += [
            f"failed {self.batches_failed}",
            f"retries {self.retries}",
            self.workers_text(),
            f"window {self.reorder_window}",
            f"elapsed {format_duration(self.elapsed_s)}",
        ]
        return ", ".join(parts)

    def workers_text(self) -> str:
        """``workers 2/2 alive`` while running; ``workers 2 (stopped)`` at the end."""
        if self.finished:
            return f"workers {self.workers} (stopped)"
        return f"workers {self.workers_alive}/{self.workers} alive"


def _of(done: int, total: int | None) -> str:
    if total is None:
        return f"{done:,}"
    pct = 100.0 * done / total if total else 100.0
    return f"{done:,}/{total:,} ({pct:.0f}%)"


def format_duration(seconds: float) -> str:
    """``75.2`` -> ``"1m15s"``; ``3725`` -> ``"1h02m"``."""
    s = int(seconds + 0.5)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class ProgressDisplay(Protocol):
    """What the CLI drives: ticks from the job, log lines, failure lines, and the end."""

    def update(self, stats: LiveStats) -> None: ...
    def message(self, line: str) -> None: ...
    def failure(self, line: str) -> None: ...
    def close(self) -> None: ...


class DisplayHandler(logging.Handler):
    """Routes the "aprs" logger through a display: failures coalesce, others print above it."""

    def __init__(self, display: ProgressDisplay) -> None:
        super().__init__()
        self.display = display
        self.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if record.name == "aprs.failures":
                self.display.failure(line)
            else:
                self.display.message(line)
        except Exception:
            self.handleError(record)


class _Failures:
    """The first ``first`` failure lines verbatim, then a count of the rest."""

    def __init__(self, first: int) -> None:
        self.first = first
        self.seen = 0

    def accept(self, line: str) -> str | None:
        """The line to print now, or None when it only adds to the count."""
        self.seen += 1
        return line if self.seen <= self.first else None

    @property
    def more(self) -> int:
        return max(0, self.seen - self.first)

    def more_line(self) -> str:
        return f"{self.more} more failures (see logs/failures.jsonl)"


class PlainProgress:
    """Not a terminal: one progress line every ``every_s`` seconds and at the end."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        every_s: float = 5.0,
        first_failures: int = 5,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.every_s = every_s
        self.failures = _Failures(first_failures)
        self._last = time.monotonic()
        self._stats: LiveStats | None = None
        self._more_shown = 0

    def update(self, stats: LiveStats) -> None:
        self._stats = stats
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._emit(stats)

    def _emit(self, stats: LiveStats) -> None:
        lines = [f"aprs: progress: {stats.line()}"]
        if self.failures.more != self._more_shown:
            self._more_shown = self.failures.more
            lines.append(f"aprs: {self.failures.more_line()}")
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()

    def message(self, line: str) -> None:
        self.stream.write(f"aprs: {line}\n")
        self.stream.flush()

    def failure(self, line: str) -> None:
        shown = self.failures.accept(line)
        if shown is not None:
            self.message(shown)

    def close(self) -> None:
        if self._stats is not None and _worth_showing(self._stats):
            self._emit(self._stats)


class RichProgress:
    """A terminal: rich's Live display, redrawn in place at most ``_MAX_FPS`` times/s."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        first_failures: int = 5,
        force_terminal: bool | None = None,
        width: int | None = None,
    ) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(
            file=stream if stream is not None else sys.stderr,
            force_terminal=force_terminal,
            width=width,
            highlight=False,
        )
        self.failures = _Failures(first_failures)
        self._stats: LiveStats | None = None
        self._next_draw = 0.0
        self._live = Live(
            console=self.console,
            auto_refresh=False,  # no thread: we redraw from the job's tick
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def update(self, stats: LiveStats) -> None:
        self._stats = stats
        now = time.monotonic()
        if now >= self._next_draw:
            self._next_draw = now + 1.0 / _MAX_FPS
            self._live.update(self._render(stats), refresh=True)

    def message(self, line: str) -> None:
        self.console.print(f"aprs: {_escape(line)}", soft_wrap=True)

    def failure(self, line: str) -> None:
        shown = self.failures.accept(line)
        if shown is not None:
            self.console.print(f"[red]x[/] aprs: {_escape(shown)}", soft_wrap=True)
        elif self._stats is not None:
            self._next_draw = 0.0  # show the new count with the next tick

    def close(self) -> None:
        if self._stats is not None and _worth_showing(self._stats):
            self._live.update(self._render(self._stats), refresh=True)
        self._live.stop()

    def _render(self, s: LiveStats) -> Any:
        """Plain Text lines (a Table costs ~4x more to draw)."""
        from rich.text import Text

        text = Text()
        text.append("aprs ", style="bold cyan")
        if s.items_total is not None:
            width = 40
            filled = min(width, int(width * s.items_done / max(s.items_total, 1)))
            text.append("━" * filled, style="green")
            text.append("━" * (width - filled), style="grey23")
            text.append(f" {_pct(s.items_done, s.items_total)}")
        else:
            text.append("(total not known yet)", style="dim")
        eta = s.eta_s
        text.append(f"\nmini-batches {_of(s.batches_done, s.batches_total)}  ")
        text.append(f"items {_of(s.items_done, s.items_total)}  ")
        text.append(f"{s.items_rate:,.1f} items/s  ", style="green")
        text.append(
            f"ETA {format_duration(eta) if eta is not None else '?'}  ", style="cyan"
        )
        text.append(f"elapsed {format_duration(s.elapsed_s)}\n")
        text.append(
            f"failed {s.batches_failed}  ", style="red" if s.batches_failed else ""
        )
        text.append(f"retries {s.retries}  ", style="yellow" if s.retries else "")
        text.append(f"{s.workers_text()}  ")
        text.append(f"in flight {s.in_flight}  reorder window {s.reorder_window}")
        if s.stopping:
            text.append("  stopping...", style="bold yellow")
        if self.failures.more:
            text.append(f"\n{self.failures.more_line()}", style="red")
        return text


def _worth_showing(stats: LiveStats) -> bool:
    """A job that stopped before any try ended (a usage error) gets no final line."""
    return stats.batches_done > 0 or stats.failed_tries > 0 or stats.elapsed_s >= 5.0


def _pct(done: int, total: int) -> str:
    return f"{100.0 * done / total:.0f}%" if total else "100%"


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def make_display(
    *, progress: bool | None, quiet: bool, stream: IO[str] | None = None
) -> ProgressDisplay | None:
    """The display for the CLI: rich on a terminal, plain lines otherwise, none when quiet.

    Args:
        progress: ``--progress`` (True) / ``--no-progress`` (False) / detect (None).
        quiet: ``--quiet``: no progress and no failure lines, only the final summary.
        stream: where to draw (default stderr).
    """
    if quiet:
        return None
    out = stream if stream is not None else sys.stderr
    tty = bool(getattr(out, "isatty", lambda: False)())
    if progress is False:
        return PlainProgress(out, every_s=float("inf"))  # failure lines only
    if progress or tty:
        return RichProgress(out, force_terminal=True if progress else None)
    return PlainProgress(out)
