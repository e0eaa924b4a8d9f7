"""Shared fixtures: the process-leak guard, entry-script paths, and a real-job helper."""

from __future__ import annotations

import faulthandler
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

import aprs

# Enabled before pytest configures its own faulthandler, so pytest re-enables it when it
# finishes: a crash while the interpreter shuts down (one suite run in four ended with
# SIGSEGV after every test had passed, 2026-12-02) prints the threads' stacks in CI's log.
faulthandler.enable()

SCRIPTS = Path(__file__).parent / "scripts"
LEAK_GRACE_S = 5.0


def script_path(name: str) -> Path:
    """The path of ``tests/scripts/<name>`` (".py" is added when missing)."""
    path = SCRIPTS / (name if name.endswith(".py") else f"{name}.py")
    assert path.is_file(), f"no test script {path}"
    return path


@pytest.fixture
def script() -> Callable[[str], Path]:
    """``script("echo")`` -> absolute path of tests/scripts/echo.py."""
    return script_path


def _live_children(me: psutil.Process) -> dict[int, psutil.Process]:
    return {p.pid: p for p in me.children(recursive=True)}


def _describe(p: psutil.Process) -> str:
    try:
        if p.status() == psutil.STATUS_ZOMBIE:
            return f"pid {p.pid} [zombie: exited but never waited for]"
        return f"pid {p.pid} [{p.status()}]: {' '.join(p.cmdline()) or p.name()}"
    except psutil.ZombieProcess:
        return f"pid {p.pid} [zombie: exited but never waited for]"
    except psutil.Error:
        return f"pid {p.pid} (exited while being listed)"


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    """Fail the test if it leaves a child process behind (no worker outlives its job)."""
    me = psutil.Process()
    before = set(_live_children(me))
    yield
    deadline = time.monotonic() + LEAK_GRACE_S
    while True:
        extra = [p for pid, p in _live_children(me).items() if pid not in before]
        if not extra:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    lines = "\n  ".join(_describe(p) for p in extra)
    pytest.fail(
        f"{len(extra)} child process(es) still exist {LEAK_GRACE_S:g} s after the test:\n"
        f"  {lines}",
        pytrace=False,
    )


# -- building and running real jobs ------------------------------------------------------


@dataclass
class Ran:
    """A finished job: its step, summary and output folder, with readers for its files."""

    step: aprs.ParallelRunStep
    summary: aprs.JobSummary

    @property
    def out(self) -> Path:
        return Path(self.step.output)

    def output_bytes(self) -> bytes:
        assert self.summary.output_file is not None
        return Path(self.summary.output_file).read_bytes()

    def rows(self) -> list[str]:
        return self.output_bytes().decode().splitlines()

    def failures(self) -> list[dict[str, Any]]:
        return read_failures(self.out)

    def job_result(self) -> dict[str, Any]:
        return read_job_result(self.out)


def read_failures(out: Path) -> list[dict[str, Any]]:
    """The records of ``<out>/logs/failures.jsonl``."""
    path = out / "logs" / "failures.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


def read_job_result(out: Path) -> dict[str, Any]:
    """The content of ``<out>/logs/job_result.json``."""
    data = orjson.loads((out / "logs" / "job_result.json").read_bytes())
    assert isinstance(data, dict)
    return data


def _entry(entry_script: str | os.PathLike[str]) -> str:
    text = os.fspath(entry_script)
    return os.fspath(script_path(text)) if os.sep not in text else text


def build_step(
    output: str | os.PathLike[str],
    entry_script: str | os.PathLike[str],
    inputs: Sequence[Any],
    *,
    name: str = "test-job",
    arguments: Sequence[Any] | None = None,
    side_inputs: Sequence[Any] | None = None,
    **config: Any,
) -> aprs.ParallelRunStep:
    """A ParallelRunStep with test defaults: 2 workers, no reuse.

    ``entry_script`` is a name in tests/scripts ("echo") or a path.
    """
    config.setdefault("process_count_per_node", 2)
    cfg = aprs.ParallelRunConfig(entry_script=_entry(entry_script), **config)
    return aprs.ParallelRunStep(
        name=name,
        parallel_run_config=cfg,
        inputs=inputs,
        output=output,
        side_inputs=side_inputs,
        arguments=arguments,
        allow_reuse=False,
    )


@pytest.fixture
def make_job(tmp_path: Path) -> Callable[..., aprs.ParallelRunStep]:
    """``make_job("echo", inputs, **config)`` -> a step writing to tmp_path/"out"."""

    def make(
        entry_script: str, inputs: Sequence[Any], **kwargs: Any
    ) -> aprs.ParallelRunStep:
        kwargs.setdefault("output", tmp_path / "out")
        return build_step(kwargs.pop("output"), entry_script, inputs, **kwargs)

    return make


@pytest.fixture
def job(make_job: Callable[..., aprs.ParallelRunStep]) -> Callable[..., Ran]:
    """``job("echo", inputs, **config)`` builds the step, runs it, returns a :class:`Ran`."""

    def run(entry_script: str, inputs: Sequence[Any], **kwargs: Any) -> Ran:
        step = make_job(entry_script, inputs, **kwargs)
        return Ran(step, step.run())

    return run


def make_files(folder: Path, files: dict[str, str]) -> Path:
    """Create ``folder`` with one text file per entry; return the folder."""
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return folder
