"""The peers: each function runs one whole job in this (fresh) process.

    items ──► library (2 workers, entry script loaded once per worker) ──► ordered rows
          ──► Sink: str(x) + "\\n" per row, in input order, to a temp file

Item-level peers (Pool, PPE, joblib, mpire, pebble) call `run([x])` per item and let the
library chunk `batch` items per task; batch-level peers (aiomultiprocess, bare pipes,
serial) send explicit mini-batches to `run(mini_batch)`. Each function returns a raw
result dict (see perf._workloads) and raises on a wrong row count.
"""

from __future__ import annotations

__all__ = (
    "aiomp_apply_latency",
    "aiomp_map",
    "bare_pipe_latency",
    "bare_pipes",
    "joblib_generator",
    "mpire_imap",
    "pebble_map",
    "pool_apply_async_latency",
    "pool_apply_latency",
    "pool_imap",
    "ppe_executor_latency",
    "ppe_map",
    "serial",
    "skew_ideal",
    "startup_floor",
    "startup_pool",
)

import asyncio
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from itertools import chain
from types import ModuleType
from typing import Any

from ._common import (
    Sink,
    batched,
    count_lines,
    load_script,
    make_files,
    run_async,
    time_calls,
    timed_run,
)
from ._pipes import pipe_rows, pipe_workers
from ._workloads import INIT_S, WORKERS, items, script

_SCRIPT_ENV = "PERF_SCRIPT"  # for workers that have no initializer (joblib)

_script: ModuleType | None = None  # the entry script, loaded once per worker


def _init_worker(path: str | None = None) -> None:
    global _script
    _script = load_script(path or os.environ[_SCRIPT_ENV])


def _task(x: Any) -> Any:
    if _script is None:
        _init_worker()
    assert _script is not None
    return _script.run([x])[0]


async def _arun(batch: list[Any]) -> list[Any]:
    if _script is None:
        _init_worker()
    assert _script is not None
    return _script.run(batch)


async def _atask(x: Any) -> Any:
    return _task(x)


# -- streaming jobs: (script path, lazy items, batch) -> context of ordered rows ------

Rows = Callable[[str, Iterable[Any], int], AbstractContextManager[Iterable[Any]]]


def _stream(work: dict[str, Any], rows: Rows) -> dict[str, Any]:
    path = script(work["script"])
    os.environ[_SCRIPT_ENV] = path
    data = items(work)
    with Sink() as sink:
        t0 = time.perf_counter()
        with rows(path, data, work["batch"]) as out:
            sink.drain(out, t0)
        elapsed = time.perf_counter() - t0
        sink.check(work["n"])
    return {"elapsed_s": elapsed, "first_s": sink.first_s}


@contextmanager
def _pool_imap(path: str, data: Iterable[Any], chunk: int) -> Iterator[Iterable[Any]]:
    with mp.Pool(WORKERS, initializer=_init_worker, initargs=(path,)) as pool:
        yield pool.imap(_task, data, chunksize=chunk)


@contextmanager
def _ppe_map(path: str, data: Iterable[Any], chunk: int) -> Iterator[Iterable[Any]]:
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(WORKERS, initializer=_init_worker, initargs=(path,)) as ex:
        yield ex.map(_task, data, chunksize=chunk)


@contextmanager
def _joblib(path: str, data: Iterable[Any], chunk: int) -> Iterator[Iterable[Any]]:
    from joblib import Parallel, delayed

    par = Parallel(n_jobs=WORKERS, return_as="generator", batch_size=chunk)
    yield par(delayed(_task)(x) for x in data)


@contextmanager
def _mpire(path: str, data: Iterable[Any], chunk: int) -> Iterator[Iterable[Any]]:
    from mpire import WorkerPool

    with WorkerPool(n_jobs=WORKERS) as pool:
        yield pool.imap(_task, data, chunk_size=chunk, worker_init=_init_worker)


@contextmanager
def _pebble(path: str, data: Iterable[Any], chunk: int) -> Iterator[Iterable[Any]]:
    from pebble import ProcessPool

    with ProcessPool(WORKERS, initializer=_init_worker, initargs=(path,)) as pool:
        yield pool.map(_task, data, chunksize=chunk).result()


@contextmanager
def _aiomp(path: str, data: Iterable[Any], chunk: int) -> Iterator[Iterable[Any]]:
    import aiomultiprocess

    async def main() -> list[list[Any]]:
        pool = aiomultiprocess.Pool(WORKERS, initializer=_init_worker, initargs=(path,))
        async with pool:
            return await pool.map(_arun, batched(data, chunk))

    yield chain.from_iterable(run_async(main(), "asyncio"))


@contextmanager
def _bare(path: str, data: Iterable[Any], chunk: int) -> Iterator[Iterable[Any]]:
    with pipe_workers(path, WORKERS, pump=True) as conns:
        yield pipe_rows(conns, batched(data, chunk))


@contextmanager
def _serial(path: str, data: Iterable[Any], chunk: int) -> Iterator[Iterable[Any]]:
    module = load_script(path)
    yield chain.from_iterable(module.run(b) for b in batched(data, chunk))


def pool_imap(work: dict[str, Any]) -> dict[str, Any]:
    return _stream(work, _pool_imap)


def ppe_map(work: dict[str, Any]) -> dict[str, Any]:
    return _stream(work, _ppe_map)


def joblib_generator(work: dict[str, Any]) -> dict[str, Any]:
    return _stream(work, _joblib)


def mpire_imap(work: dict[str, Any]) -> dict[str, Any]:
    return _stream(work, _mpire)


def pebble_map(work: dict[str, Any]) -> dict[str, Any]:
    return _stream(work, _pebble)


def aiomp_map(work: dict[str, Any]) -> dict[str, Any]:
    return _stream(work, _aiomp)


def bare_pipes(work: dict[str, Any]) -> dict[str, Any]:
    return _stream(work, _bare)


def serial(work: dict[str, Any]) -> dict[str, Any]:
    return _stream(work, _serial)


def skew_ideal(work: dict[str, Any]) -> dict[str, Any]:
    """Not a run: the sum of skew.py's sleeps over the items, divided by the workers."""
    module = load_script(script(work["script"]))
    total = sum(module.duration(x) for x in items(work))
    return {"elapsed_s": total / WORKERS}


# -- latency: warm workers, sequential awaited calls ----------------------------------


def pool_apply_latency(calls: int, loop: str) -> dict[str, Any]:
    with mp.Pool(WORKERS, initializer=_init_worker, initargs=(script("echo"),)) as pool:

        async def call(x: int) -> Any:
            return pool.apply(_task, (x,))  # blocks the loop: the sync floor

        return run_async(time_calls(call, calls), loop)


def pool_apply_async_latency(calls: int, loop: str) -> dict[str, Any]:
    with mp.Pool(WORKERS, initializer=_init_worker, initargs=(script("echo"),)) as pool:

        async def call(x: int) -> Any:
            ev = asyncio.get_running_loop()
            fut = ev.create_future()
            pool.apply_async(
                _task,
                (x,),
                callback=lambda r: ev.call_soon_threadsafe(fut.set_result, r),
                error_callback=lambda e: ev.call_soon_threadsafe(fut.set_exception, e),
            )
            return await fut

        return run_async(time_calls(call, calls), loop)


def ppe_executor_latency(calls: int, loop: str) -> dict[str, Any]:
    from concurrent.futures import ProcessPoolExecutor

    path = script("echo")
    with ProcessPoolExecutor(WORKERS, initializer=_init_worker, initargs=(path,)) as ex:

        async def call(x: int) -> Any:
            return await asyncio.get_running_loop().run_in_executor(ex, _task, x)

        return run_async(time_calls(call, calls), loop)


def aiomp_apply_latency(calls: int, loop: str) -> dict[str, Any]:
    import aiomultiprocess

    child_loop = None
    if loop == "uvloop":
        import uvloop

        child_loop = uvloop.new_event_loop

    async def main() -> dict[str, Any]:
        async with aiomultiprocess.Pool(
            WORKERS,
            initializer=_init_worker,
            initargs=(script("echo"),),
            loop_initializer=child_loop,
        ) as pool:
            return await time_calls(lambda x: pool.apply(_atask, (x,)), calls)

    return run_async(main(), loop)


def bare_pipe_latency(calls: int, loop: str) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        ev = asyncio.get_running_loop()
        waiting: dict[Any, asyncio.Future[Any]] = {}
        with pipe_workers(script("echo"), WORKERS, pump=False) as conns:
            for c in conns:
                ev.add_reader(
                    c.fileno(), lambda c=c: waiting.pop(c).set_result(c.recv())
                )

            async def call(x: int) -> Any:
                conn = conns[x % WORKERS]
                waiting[conn] = fut = ev.create_future()
                conn.send([x])
                return await fut

            try:
                return await time_calls(call, calls)
            finally:
                for c in conns:
                    ev.remove_reader(c.fileno())

    return run_async(main(), loop)


# -- start-up: a fresh interpreter per job --------------------------------------------

_POOL_MAIN = """
import importlib.util, multiprocessing as mp, os, sys
def init():
    global M
    s = importlib.util.spec_from_file_location("entry", sys.argv[1])
    M = importlib.util.module_from_spec(s)
    s.loader.exec_module(M)
    M.init()
def task(x):
    return M.run([x])
if __name__ == "__main__":
    files = sorted(os.path.join(sys.argv[2], f) for f in os.listdir(sys.argv[2]))
    with mp.Pool(2, initializer=init) as pool, open(sys.argv[3], "w") as out:
        for rows in pool.imap(task, files):
            out.writelines(str(r) + "\\n" for r in rows)
"""


def startup_pool(n: int) -> dict[str, Any]:
    with Sink() as sink:
        inputs = sink.dir / "inputs"
        make_files(inputs, n)
        cmd = [
            sys.executable,
            "-c",
            _POOL_MAIN,
            script("startup"),
            str(inputs),
            str(sink.path),
        ]
        elapsed = timed_run(cmd)
        if count_lines(sink.path) != n:
            raise RuntimeError(f"expected {n} rows")
    return {"elapsed_s": elapsed, "init_s": INIT_S}


def startup_floor(n: int) -> dict[str, Any]:
    return {"elapsed_s": timed_run([sys.executable, "-c", "pass"]), "init_s": 0.0}
