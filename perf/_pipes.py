"""The bare baseline: a parent, two multiprocessing children, one duplex Pipe each.

    parent ──send(batch)──► pipe ──► [pump thread ─► inbox] ─► run(batch) ─┐
       ▲  wait() on both pipes, reorder by batch id, yield rows in order   │
       └───────────────────────────── pipe ◄──────────────send(result)─────┘

At most IN_FLIGHT pickled batches per child. The child's pump thread keeps reading
while run() or send() is busy, so a parent blocked sending a large batch and a child
blocked sending a large result cannot deadlock; without pump (latency: one call in
flight) the child just loops recv -> run -> send.
"""

from __future__ import annotations

__all__ = ("IN_FLIGHT", "pipe_rows", "pipe_workers")

import multiprocessing as mp
import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection, wait
from typing import Any

from ._common import load_script

IN_FLIGHT = 4  # batches per child: enough to hide one round trip


@contextmanager
def pipe_workers(path: str, count: int, *, pump: bool) -> Iterator[list[Connection]]:
    """Start `count` children running `path`; yield the parent ends of their pipes."""
    conns, procs = [], []
    try:
        for _ in range(count):
            parent, child = mp.Pipe()
            proc = mp.Process(target=_child, args=(child, path, pump), daemon=True)
            proc.start()
            child.close()
            conns.append(parent)
            procs.append(proc)
        yield conns
        for c in conns:
            c.send(None)
        for p in procs:
            p.join(10)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()


def pipe_rows(conns: list[Connection], batches: Iterable[list[Any]]) -> Iterator[Any]:
    """Dispatch batches to the least-loaded child; yield result rows in input order."""
    todo = enumerate(batches)
    inflight: dict[Connection, deque[int]] = {c: deque() for c in conns}
    done: dict[int, list[Any]] = {}
    nxt = 0

    def feed(conn: Connection) -> None:
        while len(inflight[conn]) < IN_FLIGHT:
            job = next(todo, None)
            if job is None:
                return
            conn.send(job[1])
            inflight[conn].append(job[0])

    for c in conns:
        feed(c)
    while busy := [c for c in conns if inflight[c]]:
        for c in wait(busy):
            done[inflight[c].popleft()] = c.recv()
            feed(c)
        while nxt in done:
            yield from done.pop(nxt)
            nxt += 1


def _child(conn: Connection, path: str, pump: bool) -> None:
    module = load_script(path)
    if not pump:
        while (batch := conn.recv()) is not None:
            conn.send(module.run(batch))
        return
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    threading.Thread(target=_pump, args=(conn, inbox), daemon=True).start()
    while (batch := inbox.get()) is not None:
        conn.send(module.run(batch))


def _pump(conn: Connection, inbox: queue.SimpleQueue[Any]) -> None:
    while True:
        msg = conn.recv()
        inbox.put(msg)
        if msg is None:
            return
