"""Progress on a terminal (a real pseudo-terminal), in a pipe, quiet; failure lines coalesce."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from conftest import make_files, script_path

from aprs._progress import LiveStats, PlainProgress, RichProgress

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parent.parent


def _inputs(folder: Path, n: int = 40, bad_every: int = 4) -> Path:
    files = {f"f{i:03d}.txt": "bad" if i % bad_every == 1 else "ok" for i in range(n)}
    return make_files(folder, files)


def _cmd(tmp_path: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "aprs",
        "run",
        "--entry-script",
        str(script_path("experience")),
        "--input",
        str(_inputs(tmp_path / "in")),
        "--output",
        str(tmp_path / "out"),
        "--mini-batch-size",
        "2",
        "--process-count-per-node",
        "2",
        "--run-max-try",
        "2",
        *extra,
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm", "COLUMNS": "120"}


def test_terminal_shows_totals_rate_eta_and_coalesced_failures(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        _cmd(tmp_path), stdin=slave, stdout=slave, stderr=slave, env=_env()
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    text = b"".join(chunks).decode("utf-8", "replace")
    assert "\x1b[" in text  # drawn with terminal control sequences (in place)
    assert "mini-batches 20/20 (100%)" in text
    assert "items 40/40 (100%)" in text
    assert "ETA " in text and "items/s" in text
    assert re.search(r"workers [0-2]/2 alive", text)  # while running
    # the final frame says the workers stopped instead of "0/2 alive"
    assert "workers 2 (stopped)" in text.rsplit("mini-batches 20/20", 1)[-1]
    # 10 bad files x 2 tries = 20 failed tries: 5 printed, the rest counted in one line
    assert text.count("ValueError: cannot process") == 5
    assert "15 more failures (see logs/failures.jsonl)" in text
    assert "status: completed" in text


def test_pipe_gets_plain_lines_and_failures_coalesce(tmp_path: Path) -> None:
    proc = subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        _cmd(tmp_path), capture_output=True, text=True, env=_env(), timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert "\x1b[" not in err  # no control sequences in a pipe
    progress = [ln for ln in err.splitlines() if ln.startswith("aprs: progress: ")]
    assert progress, err
    assert "mini-batches 20/20 (100%), items 40/40 (100%)" in progress[-1]
    assert "workers 2 (stopped)" in progress[-1]
    assert err.count("ValueError: cannot process") == 5
    assert "aprs: 15 more failures (see logs/failures.jsonl)" in err
    assert "status: completed" in proc.stdout


def test_quiet_prints_only_the_summary(tmp_path: Path) -> None:
    proc = subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        _cmd(tmp_path, "--quiet"),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert proc.stdout.startswith("status: completed")


def _stats(**kw: object) -> LiveStats:
    base: dict[str, object] = {
        "elapsed_s": 10.0,
        "batches_done": 5,
        "batches_failed": 1,
        "batches_total": 20,
        "items_done": 50,
        "items_failed": 2,
        "items_total": 200,
        "retries": 3,
        "failed_tries": 4,
        "workers_alive": 2,
        "workers": 2,
        "in_flight": 3,
        "reorder_window": 1,
    }
    base.update(kw)
    return LiveStats(**base)  # type: ignore[arg-type]


def test_plain_line_with_and_without_known_totals() -> None:
    known = _stats().line()
    assert "mini-batches 5/20 (25%)" in known and "items 50/200 (25%)" in known
    assert "5.0 items/s" in known and "ETA 30s" in known  # 150 items left at 5/s
    lazy = _stats(batches_total=None, items_total=None).line()
    assert "mini-batches 5," in lazy and "items 50," in lazy
    assert "ETA" not in lazy and "5.0 items/s" in lazy


def test_failure_lines_coalesce_into_one_count() -> None:
    out = io.StringIO()
    display = PlainProgress(out, every_s=0.0, first_failures=3)
    for i in range(10):
        display.failure(f"mini-batch {i} failed")
    display.update(_stats())
    text = out.getvalue()
    assert text.count(" failed\n") == 3
    assert text.count("7 more failures (see logs/failures.jsonl)") == 1


def test_rich_display_redraws_with_counts() -> None:
    out = io.StringIO()
    display = RichProgress(out, force_terminal=True, width=120)
    display.update(_stats())
    display.failure("mini-batch 3 try 1/3 failed: ValueError: boom")
    display.close()
    text = out.getvalue()
    assert "items 50/200 (25%)" in text and "ETA 30s" in text
    assert "ValueError: boom" in text
