"""Timeouts: a run() that hangs (sleep 3600 s) against run_invocation_timeout = 1 s.

Huge margins, outcome assertions: the tests never measure elapsed time; they assert the
failed try, the attempt count, that the worker was replaced (new pid, init() ran again) and
that the batches pipelined behind the hung one were neither lost nor run twice.
"""

from __future__ import annotations

import functools
import os

import pytest

import aprs
from aprs import _step_workers

from .conftest import (
    OUTPUT_NAME,
    SHORT_INIT_TIMEOUT_CLI,
    Faults,
    assert_once_in_order,
    cli_args,
    failures,
    final_rows,
    item_names,
    job_result,
    run_cli,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

TIMEOUT_S = 1.0
N_ITEMS = 12
HANG_AT = 6  # by then the single worker's pipeline is 4 deep: 7, 8, 9 queue behind it


def test_hung_batch_is_retried_in_a_fresh_worker(faults: Faults) -> None:
    """A run() that hangs once is killed at the timeout and succeeds in a new worker."""
    names = item_names(N_ITEMS, {HANG_AT: "hang-once"})
    faults.items(names)
    summary = faults.step(
        process_count_per_node=1, run_invocation_timeout=TIMEOUT_S, run_max_try=3
    ).run()

    assert summary.status == "completed"
    assert_once_in_order(final_rows(faults.out), names)
    assert (summary.worker_timeouts, summary.retries, summary.items_failed) == (1, 1, 0)
    hung_pid = faults.markers.started()[names[HANG_AT]]
    [record] = failures(faults.out)
    assert (record["mini_batch_index"], record["try"], record["kind"]) == (
        HANG_AT,
        1,
        "timeout",
    )
    assert record["error_type"] == "BatchTimeoutError"
    assert record["worker_pid"] == hung_pid
    assert f"pid {hung_pid}" in record["message"]
    assert "run_invocation_timeout=1" in record["message"]

    inits = faults.markers.inits()
    assert len(inits) == 2 and inits.count(hung_pid) == 1, "one worker, replaced once"
    [new_pid] = set(inits) - {hung_pid}
    assert faults.markers.calls(names[HANG_AT]).count(new_pid) == 1, (
        "the retry ran in the replacement worker"
    )
    for name in names[HANG_AT + 1 :]:
        assert faults.markers.calls(name) == [new_pid], (
            f"{name}: queued behind the hung batch, it must run once, in the new worker"
        )


def test_batch_that_always_hangs_fails_after_run_max_try(faults: Faults) -> None:
    """A run() that always hangs fails its batch after run_max_try timeouts; others survive."""
    names = item_names(N_ITEMS, {HANG_AT: "hang-always"})
    faults.items(names)
    summary = faults.step(
        process_count_per_node=1, run_invocation_timeout=TIMEOUT_S, run_max_try=2
    ).run()

    assert summary.status == "completed"
    assert_once_in_order(
        final_rows(faults.out), [n for n in names if n != names[HANG_AT]]
    )
    assert (
        summary.worker_timeouts,
        summary.items_failed,
        summary.mini_batches_failed,
    ) == (
        2,
        1,
        1,
    )
    records = failures(faults.out)
    assert [(r["mini_batch_index"], r["try"], r["kind"]) for r in records] == [
        (HANG_AT, 1, "timeout"),
        (HANG_AT, 2, "timeout"),
    ]
    hung = faults.markers.faults(names[HANG_AT])
    assert len(set(hung)) == 2, "each try hung in a different worker"
    assert {r["worker_pid"] for r in records} == set(hung)
    inits = faults.markers.inits()
    assert len(inits) == len(set(inits)), "init() ran once per worker process"
    assert set(hung) <= set(inits), "the replacement ran init() before the retry"
    # A third worker is started after the second timeout; whether it reaches init()
    # depends on whether work is left for it (the pool's pipelining), so 2 or 3.
    assert 2 <= len(inits) <= 3
    for name in names[HANG_AT + 1 :]:
        assert len(faults.markers.calls(name)) == 1, f"{name} ran more than once"


def test_hangs_in_both_workers_lose_nothing(faults: Faults) -> None:
    """Two hung batches with two workers: each is retried once; every item once, in order."""
    names = item_names(N_ITEMS, {3: "hang-once", 4: "hang-once"})
    faults.items(names)
    summary = faults.step(run_invocation_timeout=TIMEOUT_S, run_max_try=2).run()

    assert summary.status == "completed"
    assert_once_in_order(final_rows(faults.out), names)
    assert (summary.worker_timeouts, summary.retries, summary.items_failed) == (2, 2, 0)
    records = failures(faults.out)
    assert sorted((r["mini_batch_index"], r["try"]) for r in records) == [
        (3, 1),
        (4, 1),
    ]
    for name in names:
        expected = 2 if "hang" in name else 1
        assert len(faults.markers.calls(name)) <= expected, f"{name} ran too often"
    inits = faults.markers.inits()
    assert len(inits) == len(set(inits)), "init() ran once per worker process"


def _short_init_timeout(monkeypatch: pytest.MonkeyPatch, seconds: float = 1.0) -> None:
    """Bound init() by ``seconds`` instead of 3 * run_invocation_timeout + 30 s (not
    configurable)."""
    short = functools.partial(_step_workers.WorkerSpec, init_timeout_s=seconds)
    monkeypatch.setattr(_step_workers, "WorkerSpec", short)


def test_stuck_init_fails_the_job(
    faults: Faults, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An init() that never returns is killed at its timeout: InitFailedError, not a hang."""
    _short_init_timeout(monkeypatch)
    faults.items(item_names(4))
    step = faults.step(
        run_invocation_timeout=TIMEOUT_S,
        environment_variables={"APRS_FAULTS_INIT": "hang-always"},
    )
    with pytest.raises(aprs.InitFailedError) as info:
        step.run()

    assert "did not finish within 1 s, the init timeout" in str(info.value)
    # a hung init() is waited for once per slot, not max_init_tries times (issue #7)
    assert "2 attempts on 2 worker slots" in str(info.value), "one wait in each slot"
    assert "waited for once per worker slot" in str(info.value)
    # A loaded machine may kill a worker before it even reaches init(): at most 2.
    assert len(faults.markers.inits()) <= 2
    assert faults.markers.calls() == []
    assert job_result(faults.out)["stop_reason"] == "init_failed"


def test_stuck_init_message_names_the_bound_applied(
    faults: Faults, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With WorkerSpec.init_timeout_s set (1.5 s), the fix names that bound and how to
    raise it, not Azure's 3 * run_invocation_timeout + 30 s, which did not apply."""
    _short_init_timeout(monkeypatch, 1.5)
    faults.items(item_names(2))
    step = faults.step(
        run_invocation_timeout=TIMEOUT_S,
        process_count_per_node=1,
        environment_variables={"APRS_FAULTS_INIT": "hang-always"},
    )
    with pytest.raises(aprs.InitFailedError) as info:
        step.run()

    message = str(info.value)
    assert "did not finish within 1.5 s, the init timeout" in message
    assert (
        "Make init() return within the bound (1.5 s), or raise the init timeout set "
        "for these workers (WorkerSpec.init_timeout_s)."
    ) in message
    assert "3 * run_invocation_timeout" not in message


def test_stuck_init_exits_1_from_the_cli(faults: Faults) -> None:
    """The CLI exits 1 with the reason when init() never returns (init timeout 1 s)."""
    faults.items(item_names(4))
    env = {**os.environ, **faults.env, "APRS_FAULTS_INIT": "hang-always"}
    args = cli_args(faults, launcher=[os.fspath(SHORT_INIT_TIMEOUT_CLI)])
    proc = run_cli(faults, args, env=env)

    assert proc.returncode == 1, proc.stderr
    assert "init() did not finish within 1 s" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (faults.out / OUTPUT_NAME).exists()
