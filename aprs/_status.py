"""`python -m aprs status OUTPUT`: what a job has done so far, and how to go on.

    logs/state.json (status, pid) ─┐
    logs/journal.jsonl (durable) ──┼──► JobStatus ──► text (or --json)
    logs/minibatches.jsonl (tries) ┤                  + the exact command that resumes it
    logs/failures.jsonl, job_result.json

Only reads files; works while the job runs (every file is appended whole lines, a torn last
line is skipped). "running" means the state says so and the recorded process is alive;
a state of "running" whose process is gone is a killed job, which the same command resumes.
"""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec
import orjson

from ._errors import UsageError
from ._job_state import read_json
from ._joblog_read import group_failures, read_failures, read_minibatches
from ._journal import Journal

__all__ = ("collect_status", "job_status")


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def collect_status(output_dir: str) -> dict[str, Any]:
    """Everything `status` prints, as a dict."""
    logs = os.path.join(output_dir, "logs")
    state = read_json(os.path.join(logs, "state.json"))
    if state is None:
        raise UsageError(
            f"{output_dir} is not the output directory of an aprs job (there is no "
            "logs/state.json). Pass the --output directory of a job that has started."
        )
    command = state.get("command") or {}
    result = read_json(os.path.join(logs, "job_result.json"))
    journal = Journal.load(os.path.join(logs, "journal.jsonl"))
    runs, rows = read_minibatches(logs)
    status = str(state.get("status"))
    if status == "running" and not _alive(state.get("pid")):
        status = "stopped (killed: its process is gone)"
    elif status == "interrupted":
        status = "stopped (Ctrl-C / SIGTERM)"
    tries = {"done": 0, "short": 0, "failed": 0, "timeout": 0, "crashed": 0}
    for row in rows:
        tries[row[8]] = tries.get(row[8], 0) + 1
    info: dict[str, Any] = {
        "name": state.get("name"),
        "status": status,
        "pid": state.get("pid"),
        "runs": len(runs),
        "tries": tries,
        "part_tries": sum(1 for row in rows if len(row) > 9),  # isolate_failures
        "last_activity": max((r[5] for r in rows), default=state.get("time")),
        "journal": None if journal is None else msgspec.to_builtins(journal),
        "result": result,
        "failures": [
            {"error": f"{g.error_type}: {g.message}", "tries": g.count}
            for g in group_failures(read_failures(logs))[:5]
        ],
        "command": _command_line(command),
    }
    return info


def _command_line(command: dict[str, Any]) -> str | None:
    from ._commands import resume_command

    return resume_command(command) if command.get("argv") else None


def job_status(output_dir: str, *, as_json: bool = False) -> str:
    """The text (or JSON) that `python -m aprs status` prints."""
    info = collect_status(output_dir)
    if as_json:
        return orjson.dumps(info, option=orjson.OPT_INDENT_2).decode()
    lines = [f"job {info['name']}: {info['status']}"]
    result, journal = info["result"], info["journal"]
    if info["status"] in ("completed", "failed") and result is not None:
        lines.append(
            f"mini-batches: {result['mini_batches_total']} total, "
            f"{result['mini_batches_succeeded']} succeeded, "
            f"{result['mini_batches_failed']} failed; items: "
            f"{result['items_succeeded']} succeeded, {result['items_failed']} failed"
        )
        if result.get("message"):
            lines.append(f"reason: {result['message']}")
    elif journal is not None:
        lines.append(
            f"in the output (journaled): mini-batches 0..{journal['next'] - 1} "
            f"({journal['batches_ok']} succeeded, {journal['batches_failed']} failed); "
            f"items {journal['items_ok']} succeeded, {journal['items_failed']} failed"
        )
    t = info["tries"]
    lines.append(
        f"tries recorded: {sum(t.values())} ({t['done']} done, {t['short']} short, "
        f"{t['failed']} raised, {t['timeout']} timed out, {t['crashed']} crashed) "
        f"over {info['runs']} run(s)"
    )
    if info["part_tries"]:
        lines[-1] += (
            f"; {info['part_tries']} of them on parts of bisected mini-batches "
            "(isolate_failures)"
        )
    if isinstance(info["last_activity"], float):
        ago = time.time() - info["last_activity"]
        stamp = time.strftime(
            "%Y-%m-%d %H:%M:%S UTC", time.gmtime(info["last_activity"])
        )
        lines.append(f"last activity: {stamp} ({ago:.0f} s ago)")
    for f in info["failures"]:
        lines.append(f"failure: {f['tries']} x {f['error']}")
    lines.append(_next_step(info))
    return "\n".join(lines)


def _next_step(info: dict[str, Any]) -> str:
    cmd = info["command"] or "run the same ParallelRunStep again (step.run())"
    status = info["status"]
    if status == "completed":
        return "nothing to resume; to run it again from scratch add --no-reuse"
    if status == "running":
        return f"still running (pid {info['pid']}); if it stops, resume with: {cmd}"
    if status == "failed":
        return f"failed; fix the cause, then run it again (starts afresh): {cmd}"
    return f"resume with: {cmd}"
