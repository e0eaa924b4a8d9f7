"""A killed tabular job resumes where its journal stopped, byte for byte; a done one is reused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from .conftest import table, write

GATED = Path(__file__).parent / "scripts" / "gated.py"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


def args(tmp_path: Path, out: str) -> list[str]:
    return [
        sys.executable, "-m", "aprs", "run", "--no-progress", "--json",
        "--entry-script", str(GATED), "--input", str(tmp_path / "t.csv"),
        "--input-type", "tabular", "--mini-batch-rows", "50",
        "--append-row-file-name", "scores.csv", "--process-count-per-node", "2",
        "--output", str(tmp_path / out),
    ]  # fmt: skip


def journal_next(out: Path) -> int:
    try:
        lines = (out / "logs" / "journal.jsonl").read_bytes().splitlines()
        return int(orjson.loads(lines[-1])["next"]) if lines else 0
    except (OSError, ValueError, KeyError):
        return 0


def test_killed_tabular_job_resumes_byte_identical(tmp_path: Path) -> None:
    df = table(2000)
    df.loc[1800:, "text"] = "block"  # batches 36.. wait for the gate in the killed run
    write(df, tmp_path / "t.csv", "csv")
    ref = subprocess.run(args(tmp_path, "ref"), capture_output=True, check=False)
    assert ref.returncode == 0, ref.stderr
    expected = (tmp_path / "ref" / "scores.csv").read_bytes()

    marks = tmp_path / "marks"
    marks.mkdir()
    env = {**os.environ, "TAB_GATE": str(tmp_path / "gate"), "TAB_MARKS": str(marks)}
    proc = subprocess.Popen(args(tmp_path, "out"), env=env, start_new_session=True)
    out = tmp_path / "out"
    try:
        while journal_next(out) < 30:  # event: the journal shows 30 durable batches
            assert proc.poll() is None, "the gated job ended by itself"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    durable = journal_next(out)
    for mark in marks.iterdir():
        mark.unlink()

    env = {**os.environ, "TAB_MARKS": str(marks)}
    again = subprocess.run(
        args(tmp_path, "out"), capture_output=True, env=env, check=False
    )
    assert again.returncode == 0, again.stderr
    summary = orjson.loads(again.stdout)
    assert summary["resumed_from_batch"] == durable
    assert summary["items_succeeded"] == 2000
    ran = sorted(int(m.name.split("-")[1]) for m in marks.iterdir())
    assert ran and min(ran) >= durable  # nothing below the journal was read again
    assert (out / "scores.csv").read_bytes() == expected

    third = subprocess.run(args(tmp_path, "out"), capture_output=True, check=False)
    assert third.returncode == 0
    assert orjson.loads(third.stdout)["reused"] is True
