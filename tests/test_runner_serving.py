"""The Runner as a service's scorer, with real worker processes.

Per-item isolation (raise, crash, hang of one item in a batch of 32), adaptive batching (a
lone call is not delayed; batches grow with the queue up to batch_limit), overload
(max_pending), deadlines and cancellation, shutdown with calls in flight, from_config and
the statistics record. Busy workers are made busy by content (a {"gate": path} item that
waits for a file), never by timing.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import anyio
import pytest

import aprs

SCRIPT = os.path.join(os.path.dirname(__file__), "runner_scripts", "service.py")
BOUND_S = 60  # a bound on a wait that must end; never a timing assertion


class Gate:
    """A {"gate": path} item holds its worker until open() creates the file."""

    def __init__(self, tmp_path: Path, name: str = "gate") -> None:
        self.path = tmp_path / name
        self.item = {"gate": str(self.path)}

    async def started(self) -> None:
        marker = anyio.Path(f"{self.path}.started")
        with anyio.fail_after(BOUND_S):
            while not await marker.exists():
                await asyncio.sleep(0.005)

    def open(self) -> None:
        self.path.touch()


def runner(workers: int = 2, **kw: Any) -> aprs.Runner:
    kw.setdefault("run_invocation_timeout", 30)
    return aprs.Runner(SCRIPT, process_count_per_node=workers, **kw)


async def _settled(*calls: Any) -> list[Any]:
    return await asyncio.gather(*calls, return_exceptions=True)


# -- per-item isolation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("poison", "error", "kw"),
    [
        ("raise", ValueError, {}),
        ("exit", aprs.WorkerCrashedError, {}),
        ("hang", aprs.BatchTimeoutError, {"run_invocation_timeout": 1.0}),
    ],
    ids=["raise", "crash", "hang"],
)
async def test_one_poison_item_in_a_batch_of_32_fails_only_its_caller(
    poison, error, kw
):
    """A batch of 32 calls with one poison item: that caller fails, the 31 others succeed."""
    async with runner(1, batch_limit=32, **kw) as r:
        items: list[Any] = list(range(32))
        items[13] = poison
        results = await _settled(*(r.call(x) for x in items))
        stats = r.statistics()
    assert isinstance(results[13], error)
    good = results[:13] + results[14:]
    assert [item for item, _ in good] == items[:13] + items[14:]
    assert stats.isolated == 1
    assert max(size for _, size in good) < 32  # answered from the split halves


async def test_two_poison_items_are_both_isolated():
    """Two raising items in one batch: exactly their two callers fail."""
    async with runner(2) as r:
        items: list[Any] = [*range(40)]
        items[3] = items[30] = "raise"
        results = await _settled(*(r.call(x) for x in items))
    failed = [i for i, res in enumerate(results) if isinstance(res, ValueError)]
    assert failed == [3, 30]
    assert all(
        isinstance(res, tuple) for i, res in enumerate(results) if i not in (3, 30)
    )


@pytest.mark.parametrize("poison_at", [0, 13, 31])
async def test_halving_tries_one_half_at_a_time(poison_at):
    """One poison item in 32 costs at most log2(32) + 1 isolation tries (both halves of
    every level: up to 10); the half not tried goes back with the queue and is answered."""
    async with runner(1, batch_limit=32) as r:
        items: list[Any] = list(range(32))
        items[poison_at] = "raise"
        results = await _settled(*(r.call(x) for x in items))
        stats = r.statistics()
    assert [i for i, res in enumerate(results) if isinstance(res, ValueError)] == [
        poison_at
    ]
    assert [res[0] for i, res in enumerate(results) if i != poison_at] == [
        x for i, x in enumerate(items) if i != poison_at
    ]
    assert stats.isolated == 1
    assert 1 <= stats.isolation_tries <= 6


async def test_a_batch_where_everything_fails_stays_within_its_budget():
    """Every item raises: every caller gets ValueError, at most 2 x n isolation tries."""
    async with runner(1, batch_limit=16) as r:
        results = await _settled(*(r.call("raise") for _ in range(16)))
        stats = r.statistics()
    assert all(isinstance(res, ValueError) for res in results)
    assert stats.isolation_tries <= 2 * 16


async def test_a_lone_crash_is_retried_run_max_try_times_then_fails(tmp_path):
    """A single crashing call is tried run_max_try times alone, then raises; the pool lives."""
    async with runner(1, run_max_try=2) as r:
        with pytest.raises(aprs.WorkerCrashedError):
            await r.call("exit")
        assert r.statistics().crashes == 2
        assert await r.call("after") == ("after", 1)


# -- adaptive batching ------------------------------------------------------------------


async def test_a_lone_call_is_not_delayed_by_batch_wait_s():
    """With idle workers a call is sent at once: batch_wait_s of an hour does not delay it."""
    async with runner(2, batch_wait_s=3600) as r:
        with anyio.fail_after(BOUND_S):
            assert await r.call("alone") == ("alone", 1)
            assert await r.call("again") == ("again", 1)


async def test_batches_grow_with_the_queue_up_to_batch_limit(tmp_path):
    """Calls queued while the only worker is busy go out together, at most batch_limit each."""
    gate = Gate(tmp_path)
    async with runner(1, batch_limit=20, max_batch_size=1000, batch_wait_s=3600) as r:
        held = asyncio.ensure_future(r.call(gate.item))
        await gate.started()
        queued = [asyncio.ensure_future(r.call(i)) for i in range(50)]
        await asyncio.sleep(0)
        gate.open()
        await held
        results = await asyncio.gather(*queued)
    assert [item for item, _ in results] == list(range(50))
    assert sorted({size for _, size in results}) == [10, 20]


async def test_gathered_batch_is_sent_when_max_batch_size_items_wait(tmp_path):
    """All workers busy: a gathered batch goes out (queued behind) at max_batch_size items."""
    gate = Gate(tmp_path)
    async with runner(1, max_batch_size=5, batch_wait_s=3600) as r:
        held = asyncio.ensure_future(r.call(gate.item))
        await gate.started()
        first = [asyncio.ensure_future(r.call(i)) for i in range(5)]
        for _ in range(3):  # the callers run, then the pump sends the 5 behind the gate
            await asyncio.sleep(0)
        later = [asyncio.ensure_future(r.call(i)) for i in range(5, 8)]
        gate.open()
        await held
        sizes = [size for _, size in await asyncio.gather(*first, *later)]
    assert sizes == [5] * 5 + [3] * 3


async def test_a_gathered_batch_goes_behind_the_worker_that_started_first(tmp_path):
    """Both workers busy with one batch each: the next batch queues behind the one whose
    batch started first (it frees up first), not behind the first worker."""
    gates = [Gate(tmp_path, f"gate{i}") for i in range(3)]
    async with runner(2, batch_wait_s=0) as r:
        first = asyncio.ensure_future(r.call(gates[0].item))  # worker 0
        await gates[0].started()
        second = asyncio.ensure_future(r.call(gates[1].item))  # worker 1
        await gates[1].started()
        gates[0].open()
        await first  # worker 0 is free again; worker 1's batch started first now
        third = asyncio.ensure_future(r.call(gates[2].item))  # worker 0
        await gates[2].started()
        probe = asyncio.ensure_future(r.call("pid"))  # both busy: queued behind one
        gates[1].open()
        with anyio.fail_after(BOUND_S):  # behind worker 1: answered while gate 2 holds
            await asyncio.wait({probe, second}, return_when=asyncio.ALL_COMPLETED)
        assert not third.done()
        gates[2].open()
        await third


async def test_an_idle_worker_takes_a_call_while_the_other_holds_two_batches(tmp_path):
    """Idle means a worker holds no batch: with one running and one queued on worker 0,
    worker 1 is idle and a call goes to it at once (counting batches said none was idle,
    and the call waited for batch_wait_s or for worker 0)."""
    gates = [Gate(tmp_path, f"gate{i}") for i in range(3)]
    async with runner(2, batch_wait_s=3600, max_batch_size=1000) as r:
        await r.call("warm")  # run() timed: two batches per worker from now on
        first = asyncio.ensure_future(r.call(gates[0].item))  # worker 0
        await gates[0].started()
        second = asyncio.ensure_future(r.call(gates[1].item))  # worker 1
        await gates[1].started()
        behind = asyncio.ensure_future(r.submit([gates[2].item]))  # queued on worker 0
        for _ in range(3):
            await asyncio.sleep(0)
        gates[1].open()
        await second  # worker 1 holds nothing now; worker 0 holds two batches
        with anyio.fail_after(BOUND_S):
            assert await r.call("probe") == ("probe", 1)
        assert not first.done() and not behind.done()
        gates[0].open()
        gates[2].open()
        await first
        await behind


async def test_an_unpicklable_item_fails_its_caller_and_the_batch_goes_on(tmp_path):
    """An item pickle refuses (a lock) fails its own caller with a UsageError naming its
    type; the calls gathered with it are still answered (they were lost before)."""
    import threading

    gate = Gate(tmp_path)
    async with runner(1, batch_wait_s=3600, max_batch_size=1000) as r:
        held = asyncio.ensure_future(r.call(gate.item))
        await gate.started()
        good = [asyncio.ensure_future(r.call(i)) for i in range(3)]
        bad = asyncio.ensure_future(r.call(threading.Lock()))
        more = asyncio.ensure_future(r.call(3))
        for _ in range(3):
            await asyncio.sleep(0)
        gate.open()
        with anyio.fail_after(BOUND_S):
            await held
            answers = await asyncio.gather(*good, more)
            with pytest.raises(aprs.UsageError, match=r"lock.*cannot be pickled"):
                await bad
        assert [item for item, _ in answers] == [0, 1, 2, 3]


async def test_a_short_result_fails_the_calls_past_its_end():
    """run() returning fewer elements than it got: the calls it answered get their
    elements, the ones past the end a RemoteError "ShortResult" (never a hang)."""
    short = os.path.join(os.path.dirname(__file__), "scripts", "short.py")
    async with aprs.Runner(short, process_count_per_node=1, batch_wait_s=0) as r:
        with anyio.fail_after(BOUND_S):
            lone = await _settled(r.call("alone"))
            assert isinstance(lone[0], aprs.RemoteError)
            assert "run() returned 0 elements for 1 items" in str(lone[0])
            both = await r.submit(["a", "b"])
    assert both == ["a"]


# -- overload, deadlines, cancellation -------------------------------------------------


async def test_overload_raises_at_once_and_wait_true_waits_for_room(tmp_path):
    """Beyond max_pending items RunnerOverloadedError; with wait=True the call waits."""
    gate = Gate(tmp_path)
    async with runner(1, max_pending=3, batch_wait_s=3600) as r:
        assert r.has_room(50)  # nothing admitted: any number of items is taken
        held = asyncio.ensure_future(r.call(gate.item))
        await gate.started()
        queued = [asyncio.ensure_future(r.call(i)) for i in range(2)]
        await asyncio.sleep(0)
        assert not r.has_room(1) and r.statistics().admitted == 3
        with pytest.raises(aprs.RunnerOverloadedError, match="max_pending=3"):
            await r.call("too many")
        with pytest.raises(aprs.RunnerOverloadedError):
            await r.submit(["too", "many"])
        waiting = asyncio.ensure_future(r.call("patient", wait=True))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        assert r.statistics().rejected == 2
        gate.open()
        await held
        assert [x for x, _ in await asyncio.gather(*queued)] == [0, 1]
        assert (await waiting)[0] == "patient"


async def test_a_call_that_times_out_before_dispatch_never_runs(tmp_path):
    """call(timeout=) raises TimeoutError; its item is dropped from the queue, never run."""
    gate, mark = Gate(tmp_path), tmp_path / "ran"
    async with runner(1, batch_wait_s=3600, max_batch_size=1000) as r:
        held = asyncio.ensure_future(r.call(gate.item))
        await gate.started()
        with pytest.raises(TimeoutError):
            await r.call({"mark": str(mark)}, timeout=0.1)
        gate.open()
        await held
        assert await r.call("next") == ("next", 1)
        assert r.statistics().admitted == 0
    assert not mark.exists()


async def test_abandoned_call_in_a_batch_does_not_break_the_others(tmp_path):
    """A caller that stops waiting after dispatch: the others in its batch get their results."""
    gate = Gate(tmp_path)
    async with runner(1) as r:
        calls = [
            asyncio.ensure_future(r.call(gate.item, timeout=0.2)),
            asyncio.ensure_future(r.call("a")),
            asyncio.ensure_future(r.call("b")),
        ]
        await gate.started()
        with pytest.raises(TimeoutError):
            await calls[0]
        gate.open()
        assert await calls[1] == ("a", 3)
        assert await calls[2] == ("b", 3)


async def test_submit_timeout_raises_timeout_error(tmp_path):
    """submit(timeout=) stops waiting at the deadline with TimeoutError."""
    gate = Gate(tmp_path)
    async with runner(1) as r:
        with pytest.raises(TimeoutError):
            await r.submit([gate.item], timeout=0.2)
        gate.open()
        assert await r.submit(["x"]) == [("x", 1)]


async def test_a_submit_that_gives_up_before_dispatch_never_runs(tmp_path):
    """A submit() cancelled while its batch waits for a worker takes the batch back out."""
    gate, mark = Gate(tmp_path), tmp_path / "ran"
    async with runner(1) as r:
        held = asyncio.ensure_future(r.call(gate.item))
        await gate.started()
        with pytest.raises(TimeoutError):
            await r.submit([{"mark": str(mark)}], timeout=0.1)
        waiting = asyncio.ensure_future(r.submit([{"mark": str(mark)}]))
        await asyncio.sleep(0.05)
        waiting.cancel()  # a caller cancelled (e.g. its HTTP client went away)
        with pytest.raises(asyncio.CancelledError):
            await waiting
        gate.open()
        await held
        assert await r.submit(["next"]) == [("next", 1)]
        assert r.statistics().pending == 0
    assert not mark.exists()


async def test_close_with_calls_queued_and_in_flight(tmp_path):
    """aclose(): queued calls get RunnerClosedError, the running batch finishes."""
    gate = Gate(tmp_path)
    r = runner(1, batch_wait_s=3600, max_batch_size=1000)
    await r.start()
    held = asyncio.ensure_future(r.call(gate.item))
    await gate.started()
    queued = [asyncio.ensure_future(r.call(i)) for i in range(3)]
    await asyncio.sleep(0)
    closing = asyncio.ensure_future(r.aclose())
    await asyncio.sleep(0)
    gate.open()
    with anyio.fail_after(BOUND_S):
        await closing
    assert (await held)[0] == gate.item
    for call in queued:
        with pytest.raises(aprs.RunnerClosedError):
            await call


# -- configuration and statistics ------------------------------------------------------


async def test_from_config_and_the_statistics_record():
    """Runner.from_config shares a job's config; statistics() is a typed record."""
    config = aprs.ParallelRunConfig(
        entry_script=SCRIPT, process_count_per_node=1, mini_batch_size=4
    )
    async with aprs.Runner.from_config(config, max_pending=100) as r:
        results = await asyncio.gather(*(r.call(i) for i in range(10)))
        stats = r.statistics()
    assert [x for x, _ in results] == list(range(10))
    assert isinstance(stats, aprs.RunnerStatistics)
    assert stats.items == 10 and stats.batches >= 1
    assert stats.mean_batch_size == 10 / stats.batches
    assert stats.latency_samples == 10 and stats.latency_p50_s is not None
    assert stats.admitted == 0 and stats.pending == 0 and stats.workers_ready == 1
    assert stats.as_dict()["items"] == 10
