"""The example digits service (examples/service) over real HTTP on 127.0.0.1.

Each test starts ``python examples/service/app.py --port 0`` as a real process (uvicorn,
Starlette, an aprs Runner and its worker processes), talks to it with httpx and stops it
with SIGTERM: concurrent requests, bad requests, a worker killed under load, overload (503)
and a clean shutdown that leaves no process behind.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import psutil
import pytest

pytest.importorskip("sklearn", reason="the digits service needs the examples extra")

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "service" / "app.py"
GATE = Path(__file__).parent / "runner_scripts" / "gate.py"
START_TIMEOUT_S = 120.0  # sklearn import + training in every worker, on a busy machine


class Service:
    """A running ``app.py`` process: its URL, its worker pids, its stderr."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.stderr_path = tmp_path / "service.stderr"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(APP), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=ROOT,
        )
        self.url = self._wait_for_url()

    def wait_ready(self, workers: int) -> None:
        """Until ``workers`` workers have run init() (start-up returns after the first)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while httpx.get(f"{self.url}/healthz").json()["workers_ready"] < workers:
            assert time.monotonic() < deadline, "the workers did not all start"
            time.sleep(0.05)

    def _wait_for_url(self) -> str:
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        line = b""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not line.endswith(b"\n"):
            if not sel.select(max(0.0, deadline - time.monotonic())):
                raise AssertionError(f"the service did not start: {self.stderr()}")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise AssertionError(f"the service exited: {self.stderr()}")
            line += chunk
        text = line.decode()
        assert text.startswith("serving on http://127.0.0.1:"), text
        return text.split()[2]

    def workers(self) -> list[psutil.Process]:
        """The worker processes: the fork server's children, or the spawned ones."""
        direct = psutil.Process(self.proc.pid).children()
        zygotes = [p for p in direct if "aprs._bridge._zygote" in p.cmdline()]
        forked = [w for z in zygotes for w in z.children()]
        return forked + [p for p in direct if p not in zygotes]

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, then wait for the exit; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._stderr.close()
            if self.proc.stdout is not None:
                self.proc.stdout.close()


@pytest.fixture(scope="module")
def digits() -> tuple[list[list[float]], list[int]]:
    """Held-out digit images and what the service's model (same training) predicts."""
    from sklearn.datasets import load_digits
    from sklearn.svm import SVC

    data: Any = load_digits()
    half = len(data.target) // 2
    model = SVC(gamma=0.001).fit(data.data[:half], data.target[:half])
    images = data.data[half : half + 300]
    return images.tolist(), [int(x) for x in model.predict(images)]


def _started(tmp_path: Path) -> Iterator[Service]:
    svc = Service(tmp_path, "--workers", "2", "--run-max-try", "3")
    try:
        svc.wait_ready(2)
        yield svc
    finally:
        svc.stop()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """A service of its own, for tests that kill or stop it."""
    yield from _started(tmp_path)


@pytest.fixture(scope="module")
def shared_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One service for the tests that only send requests (start-up costs seconds)."""
    yield from _started(tmp_path_factory.mktemp("service"))


async def _load(
    url: str, images: list[list[float]], clients: int, on_answer: Any = None
) -> list[tuple[int, Any]]:
    """Send every image as its own request from ``clients`` concurrent callers."""
    answers: list[tuple[int, Any]] = [(0, None)] * len(images)
    todo = iter(range(len(images)))
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:

        async def caller() -> None:
            for i in todo:
                r = await http.post("/predict", json={"pixels": images[i]})
                answers[i] = (r.status_code, r.json())
                if on_answer is not None:
                    on_answer()

        await asyncio.gather(*(caller() for _ in range(clients)))
    return answers


async def test_concurrent_requests_get_their_own_predictions(shared_service, digits):
    """200 single-item requests from 32 callers and a list request: each gets its own labels."""
    images, expected = digits
    answers = await _load(shared_service.url, images[:200], clients=32)
    assert answers == [(200, {"prediction": p}) for p in expected[:200]]
    async with httpx.AsyncClient(base_url=shared_service.url) as http:
        r = await http.post("/predict", json={"instances": images[200:300]})
        assert r.status_code == 200
        assert r.json() == {"predictions": expected[200:300]}
        stats = (await http.get("/stats")).json()
        assert stats["requests"]["ok"] >= 201
        # tune_gc ran after start-up: start-up's objects frozen, the young threshold raised
        assert stats["gc"]["frozen"] > 10_000
        assert stats["gc"]["threshold"][0] == 50_000
        assert (await http.get("/healthz")).json() == {
            "status": "ok",
            "workers_ready": 2,
        }


BAD_REQUESTS = [
    (b"{not json", 400, "not valid JSON"),
    (b'{"pixels": [1, 2, 3]}', 422, "not a list of 64 numbers"),
    (b'{"instances": []}', 422, "1 to 1024 items"),
    (b'{"something": 1}', 422, '{"pixels"'),
    (b'{"pixels": [' + b"99," * 63 + b"99]}", 422, "pixel values must be in 0..16"),
    (b"[" + b"0," * 600_000 + b"0]", 413, "limit"),
]


async def test_bad_requests_get_4xx_with_a_reason(shared_service, digits):
    """Malformed, wrong or oversized bodies get a 4xx JSON error naming the problem."""
    images, expected = digits
    async with httpx.AsyncClient(base_url=shared_service.url) as http:
        for body, status, message in BAD_REQUESTS:
            r = await http.post("/predict", content=body)
            assert (r.status_code, message in r.json()["error"]) == (status, True), body
        r = await http.post("/predict", json={"pixels": images[0]})
        assert r.json() == {"prediction": expected[0]}
    assert "Traceback" not in shared_service.stderr()


async def test_worker_killed_under_load_every_request_answered(service, digits):
    """SIGKILL of a worker while 64 callers send: every request still gets its prediction."""
    images, expected = digits
    victim = service.workers()[0]
    answered = 0

    def kill_after_a_while() -> None:
        nonlocal answered
        answered += 1
        if answered == 50:
            victim.kill()

    answers = await _load(service.url, images, clients=64, on_answer=kill_after_a_while)
    assert answers == [(200, {"prediction": p}) for p in expected]
    assert not victim.is_running()
    async with httpx.AsyncClient(base_url=service.url) as http:
        stats = (await http.get("/stats")).json()
    assert stats["runner"]["crashes"] == 1
    assert len(service.workers()) == 2  # replaced


async def test_sigterm_runs_shutdown_in_every_worker_and_leaves_nothing(
    service, digits
):
    """SIGTERM: requests in flight are answered, each worker's shutdown() runs, no orphans."""
    images, expected = digits
    workers = service.workers()
    assert len(workers) == 2
    async with httpx.AsyncClient(base_url=service.url) as http:
        r = await http.post("/predict", json={"instances": images[:50]})
        assert r.json() == {"predictions": expected[:50]}
    status = service.stop()
    assert status in (0, -signal.SIGTERM)
    stderr = service.stderr()
    for w in workers:
        assert f"score.py: worker {w.pid} shut down" in stderr
        assert not w.is_running()
    assert "Traceback" not in stderr


async def test_overload_answers_503_at_once_and_recovers(tmp_path):
    """Beyond --max-pending items waiting, a request gets 503 with Retry-After at once."""
    gate = tmp_path / "gate"
    svc = Service(
        tmp_path, "--workers", "1", "--max-pending", "4", "--features", "0",
        "--entry-script", str(GATE),
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=svc.url, timeout=60) as http:
            blocked = asyncio.ensure_future(
                http.post("/predict", json={"pixels": {"gate": str(gate)}})
            )
            started = anyio.Path(tmp_path / "gate.started")
            while not await started.exists():
                await asyncio.sleep(0.01)
            waiting = [
                asyncio.ensure_future(http.post("/predict", json={"pixels": i}))
                for i in range(3)
            ]
            while (await http.get("/stats")).json()["runner"]["admitted"] < 4:
                await asyncio.sleep(0.01)
            r = await http.post("/predict", json={"pixels": "one too many"})
            assert r.status_code == 503
            assert r.headers["retry-after"] == "1"
            assert "overloaded" in r.json()["error"]
            gate.touch()
            assert (await blocked).json() == {"prediction": {"gate": str(gate)}}
            assert [(await w).json()["prediction"] for w in waiting] == [0, 1, 2]
            r = await http.post("/predict", json={"pixels": "after"})
            assert r.json() == {"prediction": "after"}
            # a list request is admitted whole or not at all: with room for 3 items, a
            # list of 4 gets 503 and none of its items runs
            gate2 = tmp_path / "gate2"
            blocked = asyncio.ensure_future(
                http.post("/predict", json={"pixels": {"gate": str(gate2)}})
            )
            started = anyio.Path(tmp_path / "gate2.started")
            while not await started.exists():
                await asyncio.sleep(0.01)
            items_before = (await http.get("/stats")).json()["runner"]["items"]
            r = await http.post("/predict", json={"instances": ["a", "b", "c", "d"]})
            assert r.status_code == 503
            assert "room for 3" in r.json()["error"]
            gate2.touch()
            assert (await blocked).status_code == 200
            stats = (await http.get("/stats")).json()["runner"]
            assert stats["items"] == items_before + 1  # only the gate item ran
            assert stats["admitted"] == 0
            r = await http.post("/predict", json={"instances": ["a", "b", "c", "d"]})
            assert r.json() == {"predictions": ["a", "b", "c", "d"]}
    finally:
        svc.stop()
