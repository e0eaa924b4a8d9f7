"""Serving benchmark, measurement side: closed-loop callers against one scorer.

    direct: C caller tasks ──► scorer.call(item) ──► 2 worker processes (vector.py)
    http:   C connections (keep-alive, raw HTTP/1.1) ──► examples/service/app.py with the
            same scorer, in its own process (uvicorn + httptools + uvloop)

A closed loop: each caller sends its next request as soon as the previous one is answered.
Requests that end inside the measured window (after a warm-up) count; latency is per
request, from send to answer. Scorers:

    aprs    aprs.Runner.call (micro-batching)
    ppe     loop.run_in_executor(ProcessPoolExecutor, run([x])) per request
    pool    multiprocessing.Pool.apply_async(run([x])) wrapped in an asyncio future
    bare    the floor (direct, 1 caller only): run([x]) over a bare Pipe per child
    run     the lone-request target's reference (direct, 1 caller): run([x]) in this process

Each function runs in a fresh process (perf._measure) and returns a raw result dict.
"""

from __future__ import annotations

__all__ = ("direct", "http", "serve")

import asyncio
import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any, Self

from ._common import load_script, run_async
from ._measure import ROOT
from ._peers import _init_worker, _task
from ._workloads import WORKERS, script

SCRIPT = script("vector")
APP = ROOT / "examples" / "service" / "app.py"
POISON = -1


# -- scorers: call(item) -> awaitable result, used as `async with` ----------------------


class PPEScorer:
    """One ``run_in_executor`` on a ProcessPoolExecutor per request."""

    def __init__(self) -> None:  # before the event loop runs: fork under uvloop breaks
        from concurrent.futures import ProcessPoolExecutor

        self.ex = ProcessPoolExecutor(
            WORKERS, initializer=_init_worker, initargs=(SCRIPT,)
        )
        self.ex.submit(_task, 0).result()  # workers started now, outside the loop

    async def __aenter__(self) -> Self:
        await asyncio.gather(*(self.call(i) for i in range(WORKERS * 4)))  # warm
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.ex.shutdown()

    async def call(self, item: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.ex, _task, item)

    def statistics(self) -> dict[str, Any]:
        return {"workers_ready": WORKERS}

    def has_room(self, n: int) -> bool:  # no admission limit (examples/service/app.py)
        return True


class PoolScorer:
    """``multiprocessing.Pool.apply_async`` per request, resolved through a future."""

    def __init__(self) -> None:
        import multiprocessing as mp

        self.pool = mp.Pool(WORKERS, initializer=_init_worker, initargs=(SCRIPT,))

    async def __aenter__(self) -> Self:
        await asyncio.gather(*(self.call(i) for i in range(WORKERS * 4)))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.pool.terminate()
        self.pool.join()

    async def call(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def done(r: Any) -> None:
            loop.call_soon_threadsafe(_settle, fut, r, None)

        def fail(e: BaseException) -> None:
            loop.call_soon_threadsafe(_settle, fut, None, e)

        self.pool.apply_async(_task, (item,), callback=done, error_callback=fail)
        return await fut

    def statistics(self) -> dict[str, Any]:
        return {"workers_ready": WORKERS}

    def has_room(self, n: int) -> bool:  # no admission limit (examples/service/app.py)
        return True


class BareScorer:
    """The floor: two children on a bare Pipe each, ``run([x])`` per request, answers read
    with ``loop.add_reader`` (perf/_pipes.py). No batching, retries or timeouts: what a
    lone request costs on this machine beyond run() itself."""

    def __init__(self) -> None:
        from collections import deque

        from ._pipes import pipe_workers

        self._cm = pipe_workers(str(SCRIPT), WORKERS, pump=False)
        self.conns = self._cm.__enter__()
        self.waiting: dict[Any, deque[asyncio.Future[Any]]] = {
            c: deque() for c in self.conns
        }
        self._next = 0

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        for c in self.conns:
            loop.add_reader(c.fileno(), self._on_reply, c)
        await asyncio.gather(*(self.call(i) for i in range(WORKERS * 4)))
        return self

    def _on_reply(self, conn: Any) -> None:
        fut = self.waiting[conn].popleft()
        if not fut.done():
            fut.set_result(conn.recv()[0])

    async def __aexit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for c in self.conns:
            loop.remove_reader(c.fileno())
        self._cm.__exit__(None, None, None)

    async def call(self, item: Any) -> Any:
        conn = self.conns[self._next % WORKERS]
        self._next += 1
        fut = asyncio.get_running_loop().create_future()
        self.waiting[conn].append(fut)
        conn.send([item])
        return await fut

    def statistics(self) -> dict[str, Any]:
        return {"workers_ready": WORKERS}

    def has_room(self, n: int) -> bool:  # no admission limit (examples/service/app.py)
        return True


class InProcess:
    """The reference of the lone-request target: ``run([x])`` called in this process, no
    worker, no IPC (it blocks the loop for run()'s time, which is what it measures)."""

    def __init__(self) -> None:
        self.module = load_script(str(SCRIPT))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    async def call(self, item: Any) -> Any:
        return self.module.run([item])[0]

    def statistics(self) -> dict[str, Any]:
        return {}

    def has_room(self, n: int) -> bool:
        return True


def _settle(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(result)
    else:
        fut.set_exception(exc)


def _scorer(peer: str, runner: dict[str, Any]) -> Any:
    if peer == "aprs":
        import aprs

        return aprs.Runner(SCRIPT, process_count_per_node=WORKERS, **runner)
    scorers = {
        "ppe": PPEScorer,
        "pool": PoolScorer,
        "bare": BareScorer,
        "run": InProcess,
    }
    return scorers[peer]()


# -- the closed loop ---------------------------------------------------------------------


async def closed_loop(
    call: Callable[[int], Awaitable[Any]],
    callers: int,
    duration_s: float,
    warmup_s: float,
    poison_every: int = 0,
) -> dict[str, Any]:
    """``callers`` tasks calling back to back; stats of the calls ending in the window."""
    t_start = time.perf_counter()
    t0, t1 = t_start + warmup_s, t_start + warmup_s + duration_s
    lat: list[float] = []
    errors = {"good_failed": 0, "poison_failed": 0, "poison_ok": 0}

    async def caller(k: int) -> None:
        i = k
        while True:
            poisoned = poison_every > 0 and i % poison_every == poison_every - 1
            item = POISON if poisoned else i
            sent = time.perf_counter()
            if sent >= t1:
                return
            try:
                await call(item)
                ok = True
            except Exception:
                ok = False
            end = time.perf_counter()
            if t0 <= sent and end <= t1:
                lat.append(end - sent)
                if poisoned:
                    errors["poison_ok" if ok else "poison_failed"] += 1
                elif not ok:
                    errors["good_failed"] += 1
            i += callers

    await asyncio.gather(*(caller(k) for k in range(callers)))
    lat.sort()
    n = len(lat)
    return {
        "callers": callers,
        "requests": n,
        "rps": n / duration_s,
        "p50_ms": lat[n // 2] * 1000 if n else float("nan"),
        "p99_ms": lat[min(n - 1, int(n * 0.99))] * 1000 if n else float("nan"),
        **errors,
    }


def direct(
    peer: str,
    callers: int,
    duration_s: float,
    warmup_s: float,
    poison_every: int = 0,
    runner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Closed-loop callers on ``scorer.call`` in this process."""

    scorer_ = _scorer(peer, runner or {})

    async def main() -> dict[str, Any]:
        async with scorer_ as scorer:
            result = await closed_loop(
                scorer.call, callers, duration_s, warmup_s, poison_every
            )
            stats = scorer.statistics()
        if not isinstance(stats, dict):
            stats = {k: getattr(stats, k) for k in dir(stats) if not k.startswith("_")}
        result["scorer"] = {
            k: v for k, v in stats.items() if isinstance(v, int | float)
        }
        return result

    return run_async(main(), "uvloop")  # type: ignore[no-any-return]


# -- through HTTP ------------------------------------------------------------------------


def _load_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("service_app", APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def serve(peer: str, runner: str = "{}") -> None:
    """Server process: the example app on ``peer``'s scorer; prints its port when ready."""
    import json

    import uvicorn

    app_module = _load_app()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    limits = app_module.Limits(features=0)
    app = app_module.create_app(
        _scorer(peer, json.loads(runner)),
        limits,
        lambda: print(port, flush=True),
    )
    config = uvicorn.Config(
        app, loop="uvloop", http="httptools", access_log=False, log_level="warning"
    )
    uvicorn.Server(config).run(sockets=[sock])


class _Server:
    def __init__(self, peer: str, runner: dict[str, Any]) -> None:
        import json

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "perf._serving", peer, json.dumps(runner)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {peer} server did not start")
        self.port = int(line)

    def __enter__(self) -> Self:
        return self

    def statistics(self) -> dict[str, Any]:
        """The numbers of the server's /stats (its Runner's, and gc's collections)."""
        import json
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats") as r:
            stats = json.loads(r.read())
        numbers = {
            k: v
            for k, v in stats.get("runner", {}).items()
            if isinstance(v, int | float)
        }
        if "gc" in stats:
            numbers["gc_collections"] = sum(stats["gc"]["collections"])
        return numbers

    def __exit__(self, et: type[BaseException] | None, *rest: object) -> None:
        self.proc.terminate()
        self.proc.wait(30)


class _Connection:
    """A keep-alive HTTP/1.1 connection sending ``{"pixels": item}`` to /predict."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def call(self, item: int) -> Any:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                "127.0.0.1", self.port
            )
        assert self.reader is not None
        body = b'{"pixels":%d}' % item
        self.writer.write(
            b"POST /predict HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        payload = await self.reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            raise ValueError(payload.decode(errors="replace"))
        return payload


def http(
    peer: str,
    callers: int,
    duration_s: float,
    warmup_s: float,
    poison_every: int = 0,
    runner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Closed-loop HTTP callers (one connection each) on the example service."""
    with _Server(peer, runner or {}) as server:
        conns = [_Connection(server.port) for _ in range(callers)]
        index: dict[int, _Connection] = {}

        async def call(item: int) -> Any:
            task = asyncio.current_task()
            key = id(task)
            conn = index.get(key)
            if conn is None:
                conn = index[key] = conns[len(index)]
            return await conn.call(item)

        async def main() -> dict[str, Any]:
            return await closed_loop(call, callers, duration_s, warmup_s, poison_every)

        result: dict[str, Any] = run_async(main(), "uvloop")
        result["scorer"] = server.statistics()
        return result


if __name__ == "__main__":
    serve(*sys.argv[1:])
