"""`python -m aprs validate`: check a job without running it.

    ParallelRunStep (built from run's options: the configuration is checked there)
        ──► script found + compiles (the checks run() does first)
        ──► inputs and side inputs exist, mini-batch plan counted
        ──► output directory can be created / written
        ──► one real worker (aprs.Runner, 1 process): imports the script, finds run(),
            runs init() with the job's arguments and environment, then shutdown()

Nothing is written to the output directory and no mini-batch is run. Each check prints one
line, ``ok`` or ``FAIL`` with the one-paragraph reason the job itself would give.
"""

from __future__ import annotations

import os
import time
from typing import Any

__all__ = ("validate",)


def validate(step: Any) -> tuple[bool, list[str]]:
    """Run every check; (all passed, one line per check)."""
    from ._errors import AprsError
    from ._step_checks import check_script

    lines: list[str] = [f"configuration: ok ({step!r})"]
    ok = True
    try:
        script_path, source_dir = check_script(step.config)
        lines.append(f"entry script: ok ({script_path} compiles)")
    except AprsError as exc:
        return False, [*lines, f"entry script: FAIL: {exc}"]
    ok &= _check_inputs(step, lines)
    ok &= _check_output(step.output, lines)
    ok &= _check_worker(step, script_path, source_dir, lines)
    lines.append("valid: the job can run" if ok else "not valid: fix the FAIL lines")
    return ok, lines


def _check_inputs(step: Any, lines: list[str]) -> bool:
    from ._datasets import FileDataset
    from ._plan import expected_totals

    ok = True
    for i, inp in enumerate(step.inputs):
        if isinstance(inp, FileDataset):
            n = len(inp.resolve())
            if n == 0:
                ok = False
                lines.append(f"inputs[{i}]: FAIL: {inp!r} contains no files")
            else:
                lines.append(f"inputs[{i}]: ok ({n} files)")
    for path in step.side_inputs:
        if not os.path.exists(path):
            ok = False
            lines.append(f"side input {path}: FAIL: does not exist")
    if ok:
        unit, value = step._batching()
        keyed = bool(step.config.partition_keys)
        items, batches = expected_totals(step.inputs, unit, value, keyed=keyed)
        if batches is not None:
            lines.append(f"plan: ok ({items} items in {batches} mini-batches)")
    return ok


def _check_output(output: str, lines: list[str]) -> bool:
    path = output
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    if os.path.isdir(path) and os.access(path, os.W_OK):
        what = "exists" if path == output else "will be created"
        lines.append(f"output: ok ({output} {what})")
        return True
    lines.append(f"output: FAIL: {output} cannot be written ({path} is not writable)")
    return False


def _check_worker(
    step: Any, script_path: str, source_dir: str | None, lines: list[str]
) -> bool:
    from ._errors import AprsError
    from ._runner import Runner
    from ._step import run_coroutine

    cfg = step.config
    entry = script_path
    if source_dir is None and not os.path.isabs(entry) and entry.endswith(".py"):
        entry = os.path.abspath(entry)

    async def start() -> float:
        started = time.perf_counter()
        runner = Runner(
            entry,
            process_count_per_node=1,
            source_directory=source_dir,
            arguments=step._worker_argv(),
            environment_variables={
                **(cfg.environment_variables or {}),
                "AZUREML_BI_OUTPUT_PATH": step.output,
            },
            environment=cfg.environment,
            logging_level=cfg.effective_logging_level,
        )
        async with runner:
            return time.perf_counter() - started

    try:
        took = run_coroutine(start)
    except AprsError as exc:
        lines.append(f"worker: FAIL: {str(exc).strip()}")
        return False
    lines.append(
        f"worker: ok (imported the script, found run(), init() and shutdown() ran; "
        f"{took:.2f} s)"
    )
    return True
