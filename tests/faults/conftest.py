"""Helpers for the fault-injection suite: real jobs on real files, marker files, the CLI.

Everything here decides by content and observes by files: the entry script
``tests/faults/scripts/faulty.py`` leaves one marker file per event (init, run call, fault,
started) in a folder, and tests count them. The only waiting is bounded polling of the file
system for something a process is known to be about to do (``wait_for``), never a sleep that
hopes something has happened.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

import aprs

FAULTS_SCRIPTS = Path(__file__).parent / "scripts"
FAULTY = FAULTS_SCRIPTS / "faulty.py"
SHORT_INIT_TIMEOUT_CLI = FAULTS_SCRIPTS / "aprs_short_init_timeout.py"
WAIT_S = 30.0  # bound for every poll of the file system (a hang guard, not a timing)
CLI_TIMEOUT_S = 90.0
OUTPUT_NAME = "parallel_run_step.txt"


# -- inputs -----------------------------------------------------------------------------


def make_items(folder: Path, names: Iterable[str]) -> list[Path]:
    """One small text file per name in ``folder``; returns the paths in input (sorted) order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = folder / name
        path.write_text(f"content of {name}\nsecond line\n", encoding="utf-8")
        paths.append(path)
    return sorted(paths)


def item_names(
    n: int, faults: dict[int, str] | None = None, width: int = 3
) -> list[str]:
    """``NNN-ok`` for i in range(n), with ``faults[i]`` (e.g. "kill-once") replacing "ok"."""
    faults = faults or {}
    return [f"{i:0{width}d}-{faults.get(i, 'ok')}" for i in range(n)]


def row_of(name: str) -> str:
    """The row faulty.py writes for the item ``name``."""
    return f"{name} content of {name}"


# -- markers ----------------------------------------------------------------------------


@dataclass
class Markers:
    """The marker folder faulty.py writes to (APRS_FAULTS_DIR)."""

    path: Path

    def _files(self, prefix: str) -> list[Path]:
        return sorted(p for p in self.path.iterdir() if p.name.startswith(prefix))

    def inits(self) -> list[int]:
        """The pid of every init() call, one entry per call."""
        return [int(p.name.split("-")[1]) for p in self._files("init-")]

    def calls(self, item: str | None = None) -> list[int]:
        """The pid of every run() call (whose first item is ``item``, when given)."""
        out = []
        for p in self._files("call-"):
            rest = p.name[len("call-") :]
            name, pid, _ = rest.rsplit("-", 2)
            if item is None or name == item:
                out.append(int(pid))
        return out

    def faults(self, item: str) -> list[int]:
        """The pid of every fault injected for ``item`` (or "init")."""
        out = []
        for p in self._files(f"fault-{item}-"):
            out.append(int(p.name[len(f"fault-{item}-") :].split("-")[0]))
        return out

    def started(self) -> dict[str, int]:
        """started-<name> files: item name -> pid of the worker that started it."""
        out = {}
        for p in self._files("started-"):
            text = p.read_text()
            if text:
                out[p.name[len("started-") :]] = int(text)
        return out

    def all_pids(self) -> set[int]:
        """Every worker pid any marker names."""
        return {*self.inits(), *self.calls(), *self.started().values()}


@dataclass
class Faults:
    """A test's folders: inputs, markers, output, and the env that points faulty.py at them."""

    root: Path
    markers: Markers
    env: dict[str, str] = field(default_factory=dict)

    @property
    def inputs(self) -> Path:
        return self.root / "in"

    @property
    def out(self) -> Path:
        return self.root / "out"

    def items(self, names: Iterable[str]) -> list[Path]:
        return make_items(self.inputs, names)

    def config(self, **kwargs: Any) -> aprs.ParallelRunConfig:
        """A ParallelRunConfig for faulty.py with 2 workers; env merged with ``self.env``."""
        env = {**self.env, **kwargs.pop("environment_variables", {})}
        kwargs.setdefault("process_count_per_node", 2)
        kwargs.setdefault("mini_batch_size", 1)
        return aprs.ParallelRunConfig(
            entry_script=os.fspath(FAULTY), environment_variables=env, **kwargs
        )

    def step(
        self, *, output: Path | None = None, allow_reuse: bool = False, **kwargs: Any
    ) -> aprs.ParallelRunStep:
        return aprs.ParallelRunStep(
            name="faults",
            parallel_run_config=self.config(**kwargs),
            inputs=[aprs.FileDataset.from_files(os.fspath(self.inputs))],
            output=os.fspath(output or self.out),
            allow_reuse=allow_reuse,
        )


@pytest.fixture
def faults(tmp_path: Path) -> Faults:
    """Folders for one fault test and the env that tells faulty.py where its markers go."""
    markers = tmp_path / "markers"
    markers.mkdir()
    return Faults(tmp_path, Markers(markers), {"APRS_FAULTS_DIR": os.fspath(markers)})


# -- output files -----------------------------------------------------------------------


def read_rows(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def final_rows(out: Path) -> list[str]:
    return read_rows(out / OUTPUT_NAME)


def partial_rows(out: Path) -> list[str]:
    return read_rows(out / f"{OUTPUT_NAME}.partial")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_bytes().splitlines():
        if line:
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                break  # a torn last line of a killed writer
    return records


def failures(out: Path) -> list[dict[str, Any]]:
    return read_jsonl(out / "logs" / "failures.jsonl")


def journal(out: Path) -> list[dict[str, Any]]:
    return read_jsonl(out / "logs" / "journal.jsonl")


def journal_next(out: Path) -> int:
    entries = journal(out)
    return int(entries[-1]["next"]) if entries else 0


def job_result(out: Path) -> dict[str, Any]:
    data = orjson.loads((out / "logs" / "job_result.json").read_bytes())
    assert isinstance(data, dict)
    return data


def state(out: Path) -> dict[str, Any]:
    data = orjson.loads((out / "logs" / "state.json").read_bytes())
    assert isinstance(data, dict)
    return data


def assert_once_in_order(rows: Sequence[str], expected_names: Sequence[str]) -> None:
    """``rows`` are exactly the rows of ``expected_names``, each once, in that order."""
    expected = [row_of(n) for n in expected_names]
    dupes = sorted({r for r in rows if rows.count(r) > 1})
    assert not dupes, f"duplicated rows: {dupes}"
    missing = sorted(set(expected) - set(rows))
    extra = sorted(set(rows) - set(expected))
    assert not missing and not extra, f"missing rows {missing}, unexpected rows {extra}"
    assert list(rows) == expected, "rows are not in input order"


def assert_journal_consistent(out: Path) -> dict[str, Any]:
    """The last journal entry covers exactly the rows in the partial or final output."""
    entries = journal(out)
    assert entries, "the journal is empty"
    last = entries[-1]
    final = out / OUTPUT_NAME
    path = final if final.exists() else out / f"{OUTPUT_NAME}.partial"
    data = path.read_bytes()
    assert len(data) == last["offset"], (
        f"journal offset {last['offset']} != output size {len(data)}"
    )
    assert data.count(b"\n") == last["items_ok"], (
        "journal items_ok != rows in the output"
    )
    nexts = [e["next"] for e in entries]
    assert nexts == sorted(nexts), f"journal went backwards: {nexts}"
    return last


# -- processes --------------------------------------------------------------------------


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    """Poll ``predicate`` until it is truthy; fail after ``timeout`` s (a hang guard)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_pids_gone(pids: Iterable[int], timeout: float = 5.0) -> None:
    """Every pid has exited (or is a zombie awaiting its reaper) within ``timeout`` s."""
    pids = set(pids)
    assert pids, "no worker pid was recorded"
    deadline = time.monotonic() + timeout
    while True:
        alive = sorted(p for p in pids if _alive(p))
        if not alive:
            return
        if time.monotonic() > deadline:
            described = []
            for pid in alive:
                try:
                    described.append(
                        f"{pid}: {' '.join(psutil.Process(pid).cmdline())}"
                    )
                except psutil.Error:
                    described.append(str(pid))
            pytest.fail(f"worker processes outlived the job: {described}")
        time.sleep(0.02)


def cli_args(
    faults: Faults,
    *extra: str,
    output: Path | None = None,
    batch: int = 1,
    launcher: Sequence[str] = ("-m", "aprs"),
) -> list[str]:
    """``python -m aprs run`` for faulty.py over ``faults.inputs``."""
    return [
        sys.executable,
        *launcher,
        "run",
        "--entry-script",
        os.fspath(FAULTY),
        "--input",
        os.fspath(faults.inputs),
        "--output",
        os.fspath(output or faults.out),
        "--mini-batch-size",
        str(batch),
        "--process-count-per-node",
        "2",
        "--no-progress",
        *extra,
    ]


def cli_env(faults: Faults, **extra: str) -> dict[str, str]:
    """The CLI's environment: ours plus the marker folder (not part of the fingerprint)."""
    env = dict(os.environ)
    env.pop("APRS_FAULTS_GATE", None)
    env.update(faults.env)
    env.update(extra)
    return env


def run_cli(
    faults: Faults,
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = CLI_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to its end (bounded by ``timeout``) in the test's folder."""
    return subprocess.run(
        list(args),
        cwd=faults.root,
        env=env or cli_env(faults),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_cli(
    faults: Faults,
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    new_session: bool = False,
) -> subprocess.Popen[str]:
    """Start the CLI in the background; the caller must stop and wait for it."""
    return subprocess.Popen(
        list(args),
        cwd=faults.root,
        env=env or cli_env(faults),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=new_session,
    )


def stop_cli(
    proc: subprocess.Popen[str], timeout: float = CLI_TIMEOUT_S
) -> tuple[str, str]:
    """Wait for a CLI started with start_cli; SIGKILL its group if it outlives ``timeout``."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        _out, err = proc.communicate()
        pytest.fail(f"the CLI did not exit within {timeout:g} s\n{err}")


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and its descendants (cleanup after a failed assertion only)."""
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


def one_paragraph(text: str) -> bool:
    """True when ``text`` is one paragraph: no blank line and no traceback."""
    return (
        "\n\n" not in text.strip() and "Traceback (most recent call last)" not in text
    )
