"""The service API: warm workers, submit / call / map, failures reaching the caller."""

from __future__ import annotations

import asyncio
import os

import pytest

import aprs

SCRIPT = os.path.join(os.path.dirname(__file__), "runner_scripts", "service.py")


@pytest.fixture
async def runner():
    async with aprs.Runner(
        SCRIPT,
        process_count_per_node=2,
        run_invocation_timeout=1.0,
        max_batch_size=8,
        batch_limit=8,
        batch_wait_s=0.01,
    ) as r:
        yield r


async def test_submit_returns_what_run_returned(runner):
    """submit() sends one mini-batch and returns run()'s list."""
    assert await runner.submit(["a", "b"]) == [("a", 2), ("b", 2)]


async def test_user_exception_keeps_its_type_and_remote_traceback(runner):
    """An exception raised by run() reaches the caller with its type; the child traceback is the cause."""
    with pytest.raises(ValueError, match="item asked to raise") as info:
        await runner.submit(["raise"])
    assert "in run" in str(info.value.__cause__)
    assert await runner.submit(["ok"]) == [("ok", 1)]


async def test_unimportable_exception_becomes_remote_error(runner):
    """An exception class the parent cannot import arrives as RemoteError with type and traceback."""
    with pytest.raises(aprs.RemoteError) as info:
        await runner.submit(["boom"])
    assert info.value.type_name == "Boom"
    assert "cannot import" in str(info.value)
    assert "Traceback" in info.value.traceback_text


async def test_concurrent_calls_are_micro_batched(runner):
    """Concurrent call()s are grouped into mini-batches of at most batch_limit items."""
    results = await asyncio.gather(*(runner.call(i) for i in range(20)))
    assert [item for item, _ in results] == list(range(20))
    sizes = {size for _, size in results}
    assert max(sizes) > 1 and max(sizes) <= 8


async def test_map_yields_in_input_order(runner):
    """map() yields one result per mini-batch, in input order."""
    seen = []
    async for rows in runner.map(range(50), batch_size=7):
        seen.extend(item for item, _ in rows)
    assert seen == list(range(50))


async def test_hang_times_out_and_worker_is_replaced(runner):
    """A hung run() raises BatchTimeoutError; its worker is replaced and the runner keeps working."""
    with pytest.raises(aprs.BatchTimeoutError):
        await runner.submit(["hang"])
    assert await runner.submit(["after"]) == [("after", 1)]
    assert runner.statistics().timeouts == 1


async def test_crash_raises_worker_crashed_and_pool_survives(runner):
    """A worker that dies mid-run raises WorkerCrashedError with the exit code; others keep going."""
    with pytest.raises(aprs.WorkerCrashedError) as info:
        await runner.submit(["exit"])
    assert info.value.exit_code == 7
    assert "exited with code 7" in str(info.value)
    results = await asyncio.gather(*(runner.submit([i]) for i in range(10)))
    assert [r[0][0] for r in results] == list(range(10))


async def test_closed_runner_refuses_work():
    """After aclose(), submit() raises RunnerClosedError."""
    r = aprs.Runner(SCRIPT, process_count_per_node=1)
    async with r:
        assert await r.submit([1]) == [(1, 1)]
    with pytest.raises(aprs.RunnerClosedError):
        await r.submit([1])


async def test_missing_script_is_a_usage_error(tmp_path):
    """A script path that does not exist fails at construction with UsageError."""
    with pytest.raises(aprs.UsageError, match="not found"):
        aprs.Runner(str(tmp_path / "nope.py"))


async def test_init_failure_raises_on_enter(tmp_path):
    """init() failing in every worker raises InitFailedError from `async with`, with its traceback."""
    script = tmp_path / "bad_init.py"
    script.write_text(
        "def init():\n    raise RuntimeError('no model')\n\ndef run(mb):\n    return mb\n"
    )
    with pytest.raises(aprs.InitFailedError, match="no model"):
        async with aprs.Runner(str(script), process_count_per_node=1):
            pass


async def test_aclose_fails_a_batch_that_is_still_running(tmp_path):
    """aclose() while run() is busy: the caller gets RunnerClosedError, never a hang."""
    script = tmp_path / "slow.py"
    script.write_text(
        "import signal, time\n"
        "def init():\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "def run(mb):\n"
        "    open(mb[0], 'w').close()\n"
        "    time.sleep(3600)\n"
    )
    started = tmp_path / "started"
    r = aprs.Runner(str(script), process_count_per_node=1)
    await r.start()
    task = asyncio.ensure_future(r.submit([str(started)]))
    while not started.exists():
        await asyncio.sleep(0.01)
    from aprs._backends._slots import WorkerSlots

    grace, WorkerSlots._SHUTDOWN_GRACE_S = WorkerSlots._SHUTDOWN_GRACE_S, 0.2
    try:
        await r.aclose()
    finally:
        WorkerSlots._SHUTDOWN_GRACE_S = grace
    with pytest.raises(aprs.RunnerClosedError):
        await asyncio.wait_for(task, 10)


async def test_native_thread_pools_get_each_workers_share_of_the_cores(monkeypatch):
    """The Runner's workers size BLAS / OpenMP pools as a job's do: cores // workers,
    unless environment_variables or the parent's environment set them."""
    monkeypatch.setenv("MKL_NUM_THREADS", "5")
    probe = os.path.join(os.path.dirname(__file__), "scripts", "env_probe.py")
    async with aprs.Runner(
        probe, process_count_per_node=2, environment_variables={"OMP_NUM_THREADS": "3"}
    ) as r:
        got = await r.submit(
            ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"]
        )
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    assert got == [
        f"OPENBLAS_NUM_THREADS={share}",
        "OMP_NUM_THREADS=3",
        "MKL_NUM_THREADS=5",
    ]
