"""The CLI's inspection commands and run helpers (issue 10), apart from the job's options.

    python -m aprs report OUTPUT [--open]   ──► aprs/_report: OUTPUT/report.html
    python -m aprs status OUTPUT            ──► aprs/_status: what the job did + resume command
    python -m aprs validate <run options>   ──► config, inputs, script imported + init() in a
                                                real worker (aprs.Runner), nothing is run
    python -m aprs run --dry-run ...        ──► the mini-batch plan (aprs/_plan.py)
    python -m aprs run ...                  ──► display_for_run(): progress display + logging

Exit codes as for run: 0 fine, 1 the checked thing is broken (validate) or the job failed
(status of a failed job is still 0: the command worked), 2 usage errors.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from typing import Any

__all__ = (
    "add_commands",
    "display_for_run",
    "dry_run",
    "record_command",
    "run_command",
    "validate_step",
)


def add_commands(sub: Any) -> None:
    """Register report, status and validate on the CLI's subparsers."""
    report = sub.add_parser(
        "report",
        help="write OUTPUT/report.html: timeline, throughput, run() times, failures",
        description="Draw a job's logs as one self-contained HTML page (works offline; "
        "for completed, failed, stopped and still-running jobs).",
    )
    report.add_argument(
        "output_dir", metavar="OUTPUT", help="the job's output directory"
    )
    report.add_argument(
        "--open", action="store_true", help="open the report in a web browser"
    )
    report.add_argument(
        "--max-bars",
        type=int,
        default=5000,
        help="above this many tries the timeline shows busy time per worker instead of "
        "one bar per try (default 5000)",
    )
    status = sub.add_parser(
        "status",
        help="what a running or stopped job has done, and the command that resumes it",
    )
    status.add_argument(
        "output_dir", metavar="OUTPUT", help="the job's output directory"
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    sub.add_parser(
        "validate",
        help="check the configuration, the inputs and the entry script (imported and "
        "init() run in a worker) without running the job; takes run's options",
        add_help=False,
    )


def run_command(args: argparse.Namespace) -> int:
    """Run `report` or `status`."""
    from ._errors import UsageError

    try:
        if args.command == "report":
            from ._report import write_report

            path = write_report(args.output_dir, max_bars=args.max_bars)
            print(path)
            if args.open:
                import webbrowser

                webbrowser.open(f"file://{os.path.abspath(path)}")
            return 0
        from ._status import job_status

        print(job_status(args.output_dir, as_json=args.json))
        return 0
    except UsageError as exc:
        print(f"aprs: error: {exc}", file=sys.stderr)
        return 2


def record_command(step: Any, argv: list[str]) -> None:
    """Remember how this job was started; the step keeps it in logs/state.json."""
    step.command = {"argv": ["python", "-m", "aprs", *argv], "cwd": os.getcwd()}


def resume_command(record: dict[str, Any]) -> str:
    """The shell command that runs the job again (it resumes from its journal)."""
    argv = [str(a) for a in record.get("argv") or []]
    cwd = str(record.get("cwd") or "")
    return f"cd {shlex.quote(cwd)} && {shlex.join(argv)}" if cwd else shlex.join(argv)


@contextlib.contextmanager
def display_for_run(
    *, progress: bool | None, quiet: bool
) -> Iterator[Callable[[Any], None] | None]:
    """Choose the display, route the "aprs" logger through it, close it at the end."""
    from ._progress import DisplayHandler, make_display

    logger = logging.getLogger("aprs")
    failures = logging.getLogger("aprs.failures")
    display = make_display(progress=progress, quiet=quiet)
    if display is None:  # --quiet: no failure lines either (they are in the logs)
        null = logging.NullHandler()
        failures.addHandler(null)
        failures.propagate = False
        try:
            yield None
        finally:
            failures.propagate = True
            failures.removeHandler(null)
        return
    handler = DisplayHandler(display)
    handler.setLevel(logging.WARNING)
    saved = logger.handlers[:]
    logger.handlers = [handler]
    try:
        yield display.update
    finally:
        logger.handlers = saved
        display.close()


def dry_run(step: Any) -> int:
    """Print the mini-batch plan of a step, run nothing."""
    from ._plan import describe_plan

    unit, value = step._batching()
    print(describe_plan(step.inputs, unit, value))
    return 0


def validate_step(step: Any) -> int:
    """Check a step the way run would, and start one real worker (import + init())."""
    from ._validate import validate

    ok, lines = validate(step)
    print("\n".join(lines))
    return 0 if ok else 1
