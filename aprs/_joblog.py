"""The job's log files, laid out the way an Azure ML ParallelRunStep user looks for them.

    on_outcome (loop) ──► JobLog.record(): one tuple appended, nothing else
                               │ every _FLUSH_S (busy: _BUSY_FLUSH_S), in a thread
                               ▼
    logs/minibatches.jsonl           one JSON array per try: MINIBATCH_COLUMNS
    logs/sys/worker/workerNNN.txt    per worker: processes started, failures, crashes, totals
                                     (every mini-batch too at logging_level DEBUG)
    logs/sys/job.txt                 the parent's own log ("aprs" logger) at logging_level
    logs/job_progress_overview.txt   a progress line every _OVERVIEW_S, and the final result
    logs/job_result.txt, job_error.txt   written at the end by write_result_files()
    logs/readme.txt                  what each file holds

``minibatches.jsonl`` starts every run (fresh or resumed) with a JSON object line
``{"run": n, "started": ..., "workers": ..., "resumed_from": ...}``; every other line is
``[index, try, worker, pid, start, end, items_in, items_out, status]`` with wall-clock
seconds and status ``done`` | ``short`` (run() returned fewer elements) | ``failed`` |
``timeout`` | ``crashed``. A try of a part of a bisected mini-batch (``isolate_failures``)
has a tenth element ``[offset, count]``: which items of mini-batch ``index`` it held; its
``try`` counts the tries of that part; ``[0, 0]`` is the row count of a table slice read
without run(). Lines are whole: a killed job leaves at most one torn last line, which
readers skip. The readers (``status``, the report, ``job_error.txt``) are ``_joblog_read``,
which holds this file's name and columns.

Invariants: the hot path (``record``) is one ``time.time()`` and one ``list.append``; encoding
and file writes happen in a worker thread with the loop free. A log that cannot be written
never stops the job (the output and journal are what matter): the error is logged once.
"""

from __future__ import annotations

import logging
import operator
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import reduce
from itertools import groupby
from typing import Any

import anyio
import anyio.to_thread
import orjson

from ._backends._base import Attempt, Crashed, Done, Failed, Outcome, TimedOut
from ._joblog_read import (  # the file's name and columns, as its readers expect them
    MINIBATCH_COLUMNS,
    MINIBATCHES_FILE,
    group_failures,
    read_failures,
)
from ._progress import LiveStats, format_duration

__all__ = ("JobLog", "write_result_files")

log = logging.getLogger("aprs.joblog")

OVERVIEW_FILE = "job_progress_overview.txt"
_STATUS: dict[type, str] = {
    Done: "done",
    Failed: "failed",
    TimedOut: "timeout",
    Crashed: "crashed",
}
_FLUSH_S = 0.5
# A busy job (more than _BUSY_ROWS rows in a flush) flushes every _BUSY_FLUSH_S instead:
# each flush allocates its rows' lines anew, and at 50k tries/s half a second of them is
# ~10 MB of peak RSS (the memory benchmark's growth) and page faults on fresh arenas.
_BUSY_ROWS = 1024
_ENCODE_ROWS = 512  # rows encoded per orjson call (_write_rows)
_BUSY_FLUSH_S = 0.05
# fields of a recorded row (JobLog.record), for the flush thread's C-level passes
_WORKER = operator.itemgetter(2)
_PID = operator.itemgetter(3)
_RUN_S = operator.itemgetter(5)
_SIZE = operator.itemgetter(6)
_RETURNED = operator.itemgetter(7)
_STATUS_OF = operator.itemgetter(8)
_SPAN = operator.itemgetter(9)
_OVERVIEW_S = 5.0

_README = """\
aprs job logs (the layout follows Azure ML ParallelRunStep's "logs" folder)

job_result.json / job_result.txt   the result: status, counts, reason (JSON / text)
job_error.txt                      failures grouped by error: count + the first of each
job_progress_overview.txt          a progress line every few seconds while the job runs
failures.jsonl                     one JSON record per failed try, with traceback and items
minibatches.jsonl                  one line per try: [index, try, worker, pid, start, end,
                                   items_in, items_out, status], + [offset, count] for a
                                   part of a bisected mini-batch; object lines mark each run
journal.jsonl, state.json          the resume journal and the job's fingerprint
sys/job.txt                        the parent's log (scheduling, stops, worker deaths)
sys/worker/workerNNN.txt           per worker: processes, failures, crashes, totals
user/stdout, user/stderr           what the entry script printed, per worker
user/entry_script_log              EntryScript().logger output, per worker
metrics.jsonl                      Run.get_context().log(...) and friends, one JSON per call
user/run_files                     copies of the files given to Run.upload_file
../azureml-models                  models stored by Run.register_model (use with --model-dir)
report.html                        `python -m aprs report <output>` draws these files
"""


@dataclass(slots=True)
class _WorkerState:
    pid: int = 0
    processes: int = 0
    tries: int = 0
    items: int = 0
    failures: int = 0
    run_s: float = 0.0


@dataclass(slots=True)
class JobLog:
    """Collects per-try rows on the loop and writes every log file from a thread.

    Args:
        log_dir: ``<output>/logs``.
        fresh: truncate the per-run files (a resumed run appends).
        workers: worker processes of the job.
        logging_level: the job's ``logging_level`` (DEBUG adds one line per mini-batch
            to the worker logs; the parent's log file uses it as its level).
        resumed_from: first mini-batch of this run (0 for a fresh run).
    """

    log_dir: str
    fresh: bool = True
    workers: int = 1
    logging_level: str = "INFO"
    resumed_from: int = 0
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    _workers: dict[int, _WorkerState] = field(default_factory=dict)
    _handler: logging.Handler | None = None
    _old_level: int = logging.NOTSET
    _broken: bool = False
    _started: float = field(default_factory=time.time)

    # -- loop side ----------------------------------------------------------------------

    def record(self, attempt: Attempt, outcome: Outcome) -> None:
        """One try ended (hot path: call from the loop, never blocks)."""
        kind = type(outcome)
        self.rows.append(
            (
                attempt.batch_id,
                attempt.attempt,
                outcome.worker_index,
                outcome.pid,
                time.time(),
                outcome.run_s,
                attempt.size,
                outcome.returned if kind is Done else 0,  # type: ignore[union-attr]
                _STATUS.get(kind, "failed"),
                # a part of a bisected mini-batch (aprs._isolate.Part): (offset, count)
                None if attempt.token is None else attempt.token.span,
            )
        )

    async def run(self, live: Callable[[], LiveStats]) -> None:
        """Flush rows every _FLUSH_S (_BUSY_FLUSH_S while busy) and an overview line every
        _OVERVIEW_S; until cancelled."""
        next_overview = time.monotonic() + _OVERVIEW_S
        busy = False
        while True:
            await anyio.sleep(_BUSY_FLUSH_S if busy else _FLUSH_S)
            line = None
            if time.monotonic() >= next_overview:
                next_overview = time.monotonic() + _OVERVIEW_S
                line = live().line()
            busy = len(self.rows) > _BUSY_ROWS
            await self.flush(line)

    async def flush(self, overview: str | None = None) -> None:
        """Write the rows collected so far (and an overview line), in a thread."""
        rows, self.rows = self.rows, []
        if rows or overview:
            await anyio.to_thread.run_sync(self._write, rows, overview)

    # -- thread side --------------------------------------------------------------------

    def open(self) -> None:
        """Create the folders, start this run's files, attach the parent's log file."""
        sys_dir = os.path.join(self.log_dir, "sys", "worker")
        os.makedirs(sys_dir, exist_ok=True)
        if self.fresh:
            for name in os.listdir(sys_dir):
                if name.startswith("worker") and name.endswith(".txt"):
                    os.unlink(os.path.join(sys_dir, name))
        mode = "wb" if self.fresh else "ab"
        with open(os.path.join(self.log_dir, "readme.txt"), "w") as f:
            f.write(_README)
        runs = 0 if self.fresh else _count_runs(self._path(MINIBATCHES_FILE))
        marker = {
            "run": runs + 1,
            "started": self._started,
            "workers": self.workers,
            "resumed_from": self.resumed_from,
            "columns": MINIBATCH_COLUMNS,
        }
        with open(self._path(MINIBATCHES_FILE), mode) as f:
            f.write(orjson.dumps(marker) + b"\n")
        with open(self._path(OVERVIEW_FILE), mode) as f:
            what = "" if self.fresh else f", resumed at mini-batch {self.resumed_from}"
            f.write(f"{_stamp(self._started)}  job started{what}\n".encode())
        self._attach_handler(mode)

    def _attach_handler(self, mode: str) -> None:
        level = logging.getLevelName(self.logging_level.upper())
        level = level if isinstance(level, int) else logging.INFO
        handler = logging.FileHandler(
            os.path.join(self.log_dir, "sys", "job.txt"),
            mode=mode[0],
            encoding="utf-8",
        )
        handler.setLevel(level)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        logger = logging.getLogger("aprs")
        self._old_level = logger.level
        if logger.getEffectiveLevel() > level:
            logger.setLevel(level)
        logger.addHandler(handler)
        self._handler = handler

    def close(self, final_line: str | None) -> None:
        """Write what is left, the worker totals and the last overview line (blocking)."""
        rows, self.rows = self.rows, []
        self._write(rows, final_line)
        now = _stamp(time.time())
        for index, w in sorted(self._workers.items()):
            self._append(
                self._worker_path(index),
                f"{now}  totals: {w.tries} tries, {w.items} items returned, "
                f"{w.failures} failed tries, run() {w.run_s:.3f} s in all, "
                f"{w.processes} process(es)\n",
            )
        if self._handler is not None:
            logger = logging.getLogger("aprs")
            logger.removeHandler(self._handler)
            logger.setLevel(self._old_level)
            self._handler.close()
            self._handler = None

    def _write(self, rows: list[tuple[Any, ...]], overview: str | None) -> None:
        try:
            if rows:
                self._write_rows(rows)
            if overview:
                self._append(
                    self._path(OVERVIEW_FILE), f"{_stamp(time.time())}  {overview}\n"
                )
        except OSError as exc:
            if not self._broken:
                self._broken = True
                log.error("the job's log files cannot be written: %s", exc)

    def _write_rows(self, rows: list[tuple[Any, ...]]) -> None:
        with open(self._path(MINIBATCHES_FILE), "ab") as f:
            # _ENCODE_ROWS at a time: the buffers of one piece (~30 KB) are reused by the
            # next; a whole flush's (~150 KB and up, several copies) came from this
            # thread's malloc arena, which kept growing over a long job
            f.writelines(
                _encode_lines(_lines(rows[i : i + _ENCODE_ROWS]))
                for i in range(0, len(rows), _ENCODE_ROWS)
            )
        for worker, mine in groupby(sorted(rows, key=_WORKER), _WORKER):
            lines = self._worker_rows(worker, list(mine))
            if lines:
                self._append(self._worker_path(worker), "".join(lines))

    def _worker_rows(self, worker: int, rows: list[tuple[Any, ...]]) -> list[str]:
        """One worker's rows of a flush: its totals, and the lines for its log file.

        Rows that need no line (a success of the process already named, above DEBUG) are
        only summed: a flush holds thousands of them, and this thread holds the GIL the
        event loop needs.
        """
        w = self._workers.get(worker)
        if w is None:
            w = self._workers[worker] = _WorkerState()
        debug = self.logging_level.upper() == "DEBUG"
        if (
            not debug
            and w.pid
            and set(map(_STATUS_OF, rows)) == {"done"}
            and set(map(_PID, rows)) <= {w.pid, 0}
            and not any(map(operator.lt, map(_RETURNED, rows), map(_SIZE, rows)))
        ):
            w.tries += len(rows)
            w.items += sum(map(_RETURNED, rows))
            w.run_s = reduce(operator.add, map(_RUN_S, rows), w.run_s)
            return []
        lines: list[str] = []
        for row in rows:
            self._worker_lines(w, row, lines, debug=debug)
        return lines

    @staticmethod
    def _worker_lines(
        w: _WorkerState, row: tuple[Any, ...], lines: list[str], *, debug: bool
    ) -> None:
        """Count one try in its worker's totals; its lines (if any) go to ``lines``."""
        batch_id, attempt, worker, pid, end, run_s, size, returned, kind, _ = row
        status = _status(kind, size, returned)
        if pid and pid != w.pid:
            w.pid = pid
            w.processes += 1
            lines.append(
                f"{_stamp(end - run_s)}  process pid {pid} serves worker{worker:03d} "
                f"(process #{w.processes} of this worker)\n"
            )
        w.tries += 1
        w.items += returned
        w.run_s += run_s
        if status in ("failed", "timeout", "crashed", "short"):
            w.failures += 1
            what = {
                "failed": "run() raised (see logs/failures.jsonl)",
                "timeout": "run() timed out: the process was killed and replaced",
                "crashed": "the process died: it was replaced",
                "short": f"run() returned {returned} elements for {size} items",
            }[status]
            lines.append(
                f"{_stamp(end)}  mini-batch {batch_id} try {attempt} {status} "
                f"after {run_s:.3f} s in pid {pid}: {what}\n"
            )
        if debug:
            lines.append(
                f"{_stamp(end)}  mini-batch {batch_id} try {attempt}: {status}, "
                f"{size} items in, {returned} out, run() {run_s:.3f} s\n"
            )

    def _path(self, name: str) -> str:
        return os.path.join(self.log_dir, name)

    def _worker_path(self, worker: int) -> str:
        name = f"worker{worker:03d}.txt" if worker >= 0 else "unknown.txt"
        return os.path.join(self.log_dir, "sys", "worker", name)

    @staticmethod
    def _append(path: str, text: str) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)


def _lines(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Recorded rows as the columns of minibatches.jsonl (+ the span of a part)."""
    # times to the microsecond: round(t * 1e6) / 1e6 prints at most 6 decimals and
    # costs a fifth of round(t, 6) (a decimal conversion per call, ~0.6 us)
    out: list[tuple[Any, ...]] = [
        (
            b,
            a,
            w,
            p,
            round((e - r) * 1e6) / 1e6,
            round(e * 1e6) / 1e6,
            s,
            n,
            _status(k, s, n),
        )
        for b, a, w, p, e, r, s, n, k, _ in rows
    ]
    if any(map(_SPAN, rows)):  # parts of a bisected mini-batch: + their span
        for i, row in enumerate(rows):
            if row[9] is not None:
                out[i] = (*out[i], row[9])
    return out


def _status(kind: str, size: int, returned: int) -> str:
    """A row's status: its outcome's, or ``short`` when run() returned too few elements."""
    return "short" if kind == "done" and returned < size else kind


def _stamp(t: float) -> str:
    return (
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))
        + f".{int(t % 1 * 1000):03d}Z"
    )


def _count_runs(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.startswith(b"{"))
    except OSError:
        return 0


def write_result_files(log_dir: str, summary: Any) -> None:
    """``job_result.txt`` (the summary in words) and ``job_error.txt`` (grouped failures)."""
    with open(os.path.join(log_dir, "job_result.txt"), "w", encoding="utf-8") as f:
        f.write(summary.render() + "\n")
        if summary.status != "completed" or summary.mini_batches_failed:
            f.write(
                "\nsee job_error.txt (failures grouped by error) and failures.jsonl\n"
            )
    groups = group_failures(read_failures(log_dir))
    with open(os.path.join(log_dir, "job_error.txt"), "w", encoding="utf-8") as f:
        if not groups:
            f.write("no failures\n")
            return
        total = sum(g.count for g in groups)
        f.write(f"{total} failed tries, {len(groups)} distinct errors\n")
        for n, g in enumerate(groups, 1):
            first = g.first
            f.write(
                f"\n[{n}] {g.error_type}: {g.message}\n"
                f"    {g.count} failed tries over {len(g.batches)} mini-batches; first: "
                f"mini-batch {first.get('mini_batch_index')} try {first.get('try')}, "
                f"pid {first.get('worker_pid')}\n"
            )
            tb = str(first.get("traceback") or "").rstrip()
            if tb:
                f.write("    " + tb.replace("\n", "\n    ") + "\n")


def overview_final_line(summary: Any) -> str:
    """The last line of the overview file."""
    return (
        f"finished: {summary.status}; mini-batches {summary.mini_batches_succeeded} "
        f"succeeded, {summary.mini_batches_failed} failed of {summary.mini_batches_total}; "
        f"items {summary.items_succeeded} succeeded, {summary.items_failed} failed; "
        f"elapsed {format_duration(summary.elapsed_s)}"
        + (f"; {summary.message}" if summary.message else "")
    )


def _encode_lines(rows: list[tuple[Any, ...]]) -> bytes:
    """One JSON array per line, from one orjson call for all the rows.

    One ``orjson.dumps`` per row allocated a ~4 KB buffer per row in this (flush) thread:
    ~17k rows per flush at 45k tries/s grew the thread's malloc arena to ~70 MB of freed
    but unreturned memory (parent peak RSS 250 MB for 100k one-item batches). A row's only
    nested list is its last element (the part span), so "],[" occurs only between rows.
    """
    if not rows:
        return b""
    return orjson.dumps(rows)[1:-1].replace(b"],[", b"]\n[") + b"\n"
