"""`python -m aprs validate` (a real worker imports the script and runs init()) and
`run --dry-run` (the mini-batch plan), through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_files, script_path

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parent.parent


def aprs(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        [sys.executable, "-m", "aprs", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
    )


def test_validate_a_good_job_runs_init_and_nothing_else(tmp_path: Path) -> None:
    inputs = make_files(tmp_path / "in", {f"{i}.txt": "ok" for i in range(5)})
    script = tmp_path / "score.py"
    marker = tmp_path / "init-ran"
    script.write_text(
        "import sys\n"
        "def init():\n"
        f"    open({str(marker)!r}, 'w').write(' '.join(sys.argv))\n"
        "def run(mini_batch):\n"
        "    raise AssertionError('validate must not run mini-batches')\n"
    )
    out = tmp_path / "out"
    ran = aprs(
        "validate",
        "--entry-script",
        str(script),
        "--input",
        str(inputs),
        "--output",
        str(out),
        "--mini-batch-size",
        "2",
        "--",
        "--model",
        "m1",
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "inputs[0]: ok (5 files)" in ran.stdout
    assert "plan: ok (5 items in 3 mini-batches)" in ran.stdout
    assert "worker: ok" in ran.stdout and ran.stdout.rstrip().endswith("can run")
    assert "--model m1" in marker.read_text()  # init() ran with the job's arguments
    assert not out.exists()  # nothing written


def test_validate_reports_init_failure_and_missing_input(tmp_path: Path) -> None:
    script = tmp_path / "broken.py"
    script.write_text(
        "def init():\n    raise RuntimeError('model file missing')\n"
        "def run(mini_batch):\n    return mini_batch\n"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    ran = aprs(
        "validate",
        "--entry-script",
        str(script),
        "--input",
        str(empty),
        "--process-count-per-node",
        "1",
    )
    assert ran.returncode == 1
    assert "inputs[0]: FAIL" in ran.stdout
    assert "worker: FAIL" in ran.stdout and "model file missing" in ran.stdout
    assert "not valid" in ran.stdout


def test_validate_usage_error_exits_2(tmp_path: Path) -> None:
    ran = aprs("validate", "--input", str(tmp_path))
    assert ran.returncode == 2
    assert "No entry script given" in ran.stderr


def test_validate_help_speaks_as_validate() -> None:
    ran = aprs("validate", "--help")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("usage: python -m aprs validate ")
    assert "Check a job without running it" in ran.stdout
    assert "--entry-script" in ran.stdout  # run's options
    bad = aprs("validate", "--no-such-option")
    assert bad.returncode == 2
    assert "unrecognized arguments: --no-such-option" in bad.stderr


def test_dry_run_prints_the_plan(tmp_path: Path) -> None:
    inputs = make_files(tmp_path / "in", {f"f{i:02d}.txt": "ok" for i in range(7)})
    ran = aprs(
        "run",
        "--dry-run",
        "--entry-script",
        str(script_path("experience")),
        "--input",
        str(inputs),
        "--output",
        str(tmp_path / "out"),
        "--mini-batch-size",
        "3",
    )
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0] == "plan: 3 mini-batches, 7 items (mini_batch_size 3 items)"
    assert "input 0: 7 files -> 3 mini-batches (1-3 items each)" in lines[1]
    assert "mini-batch 0: f00.txt, f01.txt, f02.txt" in ran.stdout
    assert not (tmp_path / "out").exists()
