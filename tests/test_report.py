"""`python -m aprs report`: report.html opened in a real headless Chromium (Playwright
driving the system's chromium), for completed, aggregated, killed and 100k-try jobs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import make_files, script_path

from aprs._joblog_read import read_minibatches

pytestmark = pytest.mark.timeout(150)

REPO = Path(__file__).resolve().parent.parent


def _chromium() -> str | None:
    for path in ("/usr/lib/chromium/chromium", shutil.which("chromium") or ""):
        if path and os.path.isfile(path):
            return path
    return None


@pytest.fixture
def page() -> Iterator[Any]:
    """A page in a fresh headless Chromium, closed (with all its processes) after the test."""
    from playwright.sync_api import sync_playwright

    exe = _chromium()
    assert exe is not None, "chromium is not installed (.ci/run installs it)"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=exe, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            new = browser.new_page()
            new.set_default_timeout(120_000)  # a hang guard on a loaded machine
            yield new
        finally:
            browser.close()


def open_page(page: Any, html: Path) -> tuple[Any, list[str]]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("http*://**", lambda route: route.abort())  # offline: no CDN
    page.goto(html.as_uri())
    page.wait_for_selector("h1")
    return page, errors


def aprs(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        [sys.executable, "-m", "aprs", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
    )


def run_job(tmp_path: Path, contents: list[str]) -> Path:
    files = {f"f{i:03d}.txt": c for i, c in enumerate(contents)}
    out = tmp_path / "out"
    aprs(
        "run",
        "--entry-script",
        str(script_path("experience")),
        "--input",
        str(make_files(tmp_path / "in", files)),
        "--output",
        str(out),
        "--mini-batch-size",
        "1",
        "--process-count-per-node",
        "2",
        "--run-max-try",
        "2",
    )
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    return run_job(tmp, ["ok", "bad", "ok", "crash", "ok"] + ["ok"] * 7)


def test_report_of_a_finished_job_renders_in_chromium(
    finished: Path, page: Any
) -> None:
    ran = aprs("report", str(finished))
    assert ran.returncode == 0, ran.stderr
    html = finished / "report.html"
    assert ran.stdout.strip() == str(html)
    text = html.read_text()
    assert "<script src" not in text  # self-contained
    page, errors = open_page(page, html)
    page.wait_for_selector("#timeline .main-svg")
    assert errors == []
    # one bar per try recorded: 12 files, 2 failed tries of "bad", a crashed first try
    # of "crash" (its retry is done) -> 14 tries
    _, rows = read_minibatches(str(finished / "logs"))
    assert len(rows) == 14, rows
    assert page.locator("#timeline g.point").count() == 14
    lanes = page.locator("#timeline .ytick text").all_text_contents()
    assert lanes and set(lanes) <= {"worker000", "worker001"}
    legend = " ".join(page.locator("#timeline .legendtext").all_text_contents())
    assert "failed" in legend and "crashed" in legend and "retry (try > 1)" in legend
    assert page.locator("#throughput .main-svg").count() >= 1
    assert page.locator("#run-times g.point").count() >= 1
    assert page.locator("#stragglers tr").count() >= 3
    failures = page.locator("#failures").inner_text()
    assert "ValueError" in failures and "WorkerCrashedError" in failures
    assert "completed" in page.locator(".card").first.inner_text()


def test_many_tries_are_aggregated(finished: Path, page: Any) -> None:
    ran = aprs("report", str(finished), "--max-bars", "5")
    assert ran.returncode == 0, ran.stderr
    page, errors = open_page(page, finished / "report.html")
    page.wait_for_selector("#timeline .main-svg")
    assert errors == []
    assert page.locator("#timeline g.point").count() == 0  # no bar per try
    assert page.locator("#timeline .hm").count() == 1  # the busy-time heat map
    assert "busy fraction" in (page.locator("#timeline .gtitle").text_content() or "")


def test_report_of_a_killed_job(tmp_path: Path, page: Any) -> None:
    out = run_job(tmp_path, ["ok", "ok", "kill"] + ["ok"] * 6)
    assert not (out / "logs" / "job_result.json").exists()
    ran = aprs("report", str(out))
    assert ran.returncode == 0, ran.stderr
    page, errors = open_page(page, out / "report.html")
    assert errors == []  # rows flushed before the kill are drawn; none is fine too
    assert "stopped" in page.locator(".card").first.inner_text()
    assert "python -m aprs run" in page.content()


def test_report_of_100k_tries_stays_small(tmp_path: Path, page: Any) -> None:
    logs = tmp_path / "big" / "logs"
    logs.mkdir(parents=True)
    t0 = time.time() - 3600
    (logs / "state.json").write_bytes(
        orjson.dumps({"status": "running", "name": "big", "pid": 0, "time": t0})
    )
    lines = [orjson.dumps({"run": 1, "started": t0, "workers": 8, "resumed_from": 0})]
    for i in range(100_000):
        w = i % 8
        start = t0 + i * 0.03
        status = "failed" if i % 997 == 0 else "done"
        lines.append(
            orjson.dumps([i, 1, w, 1000 + w, start, start + 0.2, 10, 10, status])
        )
    (logs / "minibatches.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    ran = aprs("report", str(tmp_path / "big"))
    assert ran.returncode == 0, ran.stderr
    html = tmp_path / "big" / "report.html"
    assert html.stat().st_size < 8_000_000  # plotly.js is ~4.7 MB of it
    page, errors = open_page(page, html)
    page.wait_for_selector("#timeline .main-svg")
    assert errors == []
    assert page.locator("#timeline .hm").count() == 1


def test_report_needs_a_job(tmp_path: Path) -> None:
    ran = aprs("report", str(tmp_path))
    assert ran.returncode == 2
    assert "is not the output directory of an aprs job" in ran.stderr


def test_report_open_hands_the_page_to_the_browser(
    finished: Path, tmp_path: Path
) -> None:
    # webbrowser honours $BROWSER: a real program that records what it was asked to open
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {opened}\n')
    browser.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(REPO), "BROWSER": f"{browser} %s"}
    ran = subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        [sys.executable, "-m", "aprs", "report", str(finished), "--open"],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
    )
    assert ran.returncode == 0, ran.stderr
    page = finished / "report.html"
    assert ran.stdout.strip() == str(page)
    deadline = time.monotonic() + 10  # the browser runs in the background
    while not opened.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert opened.read_text() == f"file://{page.resolve()}"
