"""Every log file present and parseable after completed, failed, stopped and killed jobs;
`aprs status` on each; logging_level honoured. Real CLI processes, outcomes by content."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import make_files, script_path

from aprs._joblog import JobLog
from aprs._joblog_read import MINIBATCH_COLUMNS, read_minibatches

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parent.parent
STATUSES = {"done", "short", "failed", "timeout", "crashed"}


def run_job(
    tmp_path: Path, contents: list[str], *extra: str
) -> subprocess.CompletedProcess[str]:
    files = {f"f{i:03d}.txt": c for i, c in enumerate(contents)}
    inputs = make_files(tmp_path / "in", files)
    cmd = [
        sys.executable,
        "-m",
        "aprs",
        "run",
        "--entry-script",
        str(script_path("experience")),
        "--input",
        str(inputs),
        "--output",
        str(tmp_path / "out"),
        "--mini-batch-size",
        "1",
        "--process-count-per-node",
        "2",
        "--run-max-try",
        "2",
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        cmd, check=False, capture_output=True, text=True, env=env, timeout=90
    )


def status(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        [sys.executable, "-m", "aprs", "status", str(out), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def check_logs(logs: Path) -> tuple[list[dict[str, Any]], list[list[Any]]]:
    """The files every job leaves, each parsed; returns minibatches.jsonl's content."""
    for name in ("readme.txt", "job_progress_overview.txt", "state.json"):
        assert (logs / name).is_file(), name
    orjson.loads((logs / "state.json").read_bytes())
    for line in (logs / "failures.jsonl").read_bytes().splitlines():
        orjson.loads(line)
    runs, rows = read_minibatches(str(logs))
    raw = (logs / "minibatches.jsonl").read_bytes().splitlines()
    assert len(raw) == len(runs) + len(rows)  # every line parses
    assert runs and runs[0]["columns"] == list(MINIBATCH_COLUMNS)
    for _index, attempt, worker, pid, start, end, n_in, _n_out, st in rows:
        assert st in STATUSES and 0 <= worker < 2 and pid > 0
        assert start <= end and n_in == 1 and attempt in (1, 2)
    assert (logs / "sys" / "job.txt").is_file()
    assert list((logs / "sys" / "worker").glob("worker00*.txt"))
    return runs, rows


def test_completed_job_with_failures_and_a_crash(tmp_path: Path) -> None:
    ran = run_job(tmp_path, ["ok", "bad", "ok", "crash", "ok", "ok"])
    assert ran.returncode == 0, ran.stderr
    logs = tmp_path / "out" / "logs"
    runs, rows = check_logs(logs)
    assert len(runs) == 1
    by_status = sorted((r[0], r[1], r[8]) for r in rows if r[8] != "done")
    assert by_status == [(1, 1, "failed"), (1, 2, "failed"), (3, 1, "crashed")]
    assert sorted(r[0] for r in rows if r[8] == "done") == [0, 2, 3, 4, 5]
    result = (logs / "job_result.txt").read_text()
    assert result.startswith("status: completed") and "job_error.txt" in result
    errors = (logs / "job_error.txt").read_text()
    assert "3 failed tries, 2 distinct errors" in errors
    assert "ValueError: cannot process f001.txt" in errors
    assert "2 failed tries over 1 mini-batches" in errors
    assert "WorkerCrashedError" in errors
    overview = (logs / "job_progress_overview.txt").read_text().splitlines()
    assert overview[0].endswith("job started")
    assert "finished: completed" in overview[-1]
    worker_logs = "".join(p.read_text() for p in (logs / "sys" / "worker").iterdir())
    assert "try 1 crashed" in worker_logs and "the process died" in worker_logs
    assert "totals:" in worker_logs
    st = status(tmp_path / "out")
    assert st.returncode == 0
    assert "completed" in st.stdout.splitlines()[0]
    assert "1 crashed" in st.stdout and "nothing to resume" in st.stdout


def test_failed_job(tmp_path: Path) -> None:
    ran = run_job(tmp_path, ["ok", "bad", "ok", "ok"], "--error-threshold", "0")
    assert ran.returncode == 1
    logs = tmp_path / "out" / "logs"
    check_logs(logs)
    assert (logs / "job_result.txt").read_text().startswith("status: failed")
    assert "ValueError" in (logs / "job_error.txt").read_text()
    assert "finished: failed" in (logs / "job_progress_overview.txt").read_text()
    st = status(tmp_path / "out")
    assert "failed" in st.stdout.splitlines()[0]
    assert "python -m aprs run" in st.stdout


def test_interrupted_job_and_its_resume_command(tmp_path: Path) -> None:
    contents = ["ok"] * 3 + ["stop"] + ["ok"] * 30
    ran = run_job(tmp_path, contents)
    assert ran.returncode == 130, ran.stderr
    out = tmp_path / "out"
    check_logs(out / "logs")
    assert (
        (out / "logs" / "job_result.txt").read_text().startswith("status: interrupted")
    )
    st = status(out)
    assert st.returncode == 0
    assert "stopped (Ctrl-C / SIGTERM)" in st.stdout
    resume = st.stdout.splitlines()[-1]
    assert resume.startswith("resume with: cd ")
    assert "python -m aprs run --entry-script" in resume
    info = orjson.loads(status(out, "--json").stdout)
    assert info["status"].startswith("stopped") and info["journal"]["next"] < 34


def test_killed_job_still_readable(tmp_path: Path) -> None:
    ran = run_job(tmp_path, ["ok", "ok", "kill"] + ["ok"] * 10)
    assert ran.returncode == -9
    out = tmp_path / "out"
    logs = out / "logs"
    assert not (logs / "job_result.json").exists()
    read_minibatches(str(logs))  # whatever was flushed parses (torn lines skipped)
    st = status(out)
    assert "stopped (killed: its process is gone)" in st.stdout
    assert "resume with: " in st.stdout


def test_logging_level_debug_logs_every_mini_batch(tmp_path: Path) -> None:
    ran = run_job(tmp_path, ["ok"] * 4, "--logging-level", "DEBUG")
    assert ran.returncode == 0
    worker_logs = "".join(
        p.read_text() for p in (tmp_path / "out" / "logs" / "sys" / "worker").iterdir()
    )
    for i in range(4):
        assert f"mini-batch {i} try 1: done" in worker_logs


def test_status_of_a_folder_without_a_job(tmp_path: Path) -> None:
    st = status(tmp_path)
    assert st.returncode == 2
    assert "is not the output directory of an aprs job" in st.stderr


def test_minibatch_rows_encode_as_one_json_array_per_line() -> None:
    from aprs._joblog import _encode_lines

    rows = [
        (0, 1, 0, 123, 1.5, 1.75, 10, 10, "done"),
        (1, 2, 1, 124, 1.5, 2.0, 4, 0, "failed", [2, 2]),
        (2, 1, 0, 123, 2.0, 2.25, 1, 1, "done", [0, 1]),
        (3, 1, 1, 124, 2.5, 2.75, 3, 1, "short"),
    ]
    data = _encode_lines(rows)
    assert data.endswith(b"\n") and data.count(b"\n") == len(rows)
    assert [orjson.loads(line) for line in data.splitlines()] == [list(r) for r in rows]
    assert _encode_lines([]) == b""


def test_flushes_sum_quiet_tries_and_log_the_rest_in_order(tmp_path: Path) -> None:
    """A flush only sums a worker's successes of the process already named (the fast
    path); a new pid, a short result or a failure in a flush gives the same lines, in
    try order, as one row at a time; totals and minibatches.jsonl match every row."""
    from aprs._backends._base import Attempt, Crashed, Done, Failed, Outcome

    log = JobLog(str(tmp_path), workers=2)
    log.open()
    flushes: list[list[tuple[int, int, Outcome]]] = [
        [(0, 1, Done(1, b"", 0.5, 11, 0)), (1, 1, Done(1, b"", 0.25, 21, 1))],
        [(i, 1, Done(1, b"", 0.125, 11, 0)) for i in range(2, 6)],  # quiet: summed
        [
            (6, 1, Done(1, b"", 0.125, 11, 0)),
            (7, 1, Failed("ValueError", "bad", run_s=0.5, pid=11, worker_index=0)),
            (8, 1, Crashed(-9, 9, "killed", 0.5, 11, 0)),
            (9, 1, Done(0, b"", 0.25, 12, 0)),  # a new process, and short
            (10, 1, Done(1, b"", 0.25, 21, 1)),
        ],
    ]
    for rows in flushes:
        for batch_id, attempt, outcome in rows:
            log.record(Attempt(batch_id, attempt, 1, b""), outcome)
        log._write(log.rows, None)
        log.rows = []
    log.close(None)
    text0 = (tmp_path / "sys" / "worker" / "worker000.txt").read_text().splitlines()
    assert [line.split("  ", 1)[1] for line in text0] == [
        "process pid 11 serves worker000 (process #1 of this worker)",
        (
            "mini-batch 7 try 1 failed after 0.500 s in pid 11: run() raised "
            "(see logs/failures.jsonl)"
        ),
        (
            "mini-batch 8 try 1 crashed after 0.500 s in pid 11: the process died: it "
            "was replaced"
        ),
        "process pid 12 serves worker000 (process #2 of this worker)",
        (
            "mini-batch 9 try 1 short after 0.250 s in pid 12: run() returned 0 elements "
            "for 1 items"
        ),
        (
            "totals: 9 tries, 6 items returned, 3 failed tries, run() 2.375 s in all, "
            "2 process(es)"
        ),
    ]
    text1 = (tmp_path / "sys" / "worker" / "worker001.txt").read_text()
    assert "totals: 2 tries, 2 items returned, 0 failed tries, run() 0.500 s" in text1
    _, written = read_minibatches(str(tmp_path))
    assert [r[0] for r in written] == list(range(11))
    assert [r[8] for r in written][6:10] == ["done", "failed", "crashed", "short"]
    for row in written:
        assert row[4] <= row[5] and round(row[5] - row[4], 3) in (0.125, 0.25, 0.5)
