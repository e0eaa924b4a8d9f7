"""The crash matrix: {raise, sys.exit, os._exit, SIGKILL, segfault} x {run(), init()}.

Every case runs a real job through the public API on real files with 2 worker processes and
asserts ARCHITECTURE.md's invariants: every item is in the output exactly once or counted as
failed, rows are in input order, the failed tries are recorded with the worker's pid and exit
code or signal, init() runs once per worker process, and a crash never breaks the pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import aprs

from .conftest import (
    OUTPUT_NAME,
    Faults,
    assert_journal_consistent,
    assert_once_in_order,
    failures,
    final_rows,
    item_names,
    job_result,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

N_ITEMS = 12
BATCH = 2
FAULT_AT = 7  # item 7 is in mini-batch 3 (items 6 and 7)
FAULT_BATCH = FAULT_AT // BATCH


@dataclass(frozen=True)
class Fault:
    """One way to fail, and what the failure record must say about it."""

    name: str  # faulty.py's fault name
    kind: str  # failures.jsonl "kind" for a fault in run()
    error_type: str
    message: str  # fragment of the failure message
    exit_code: int | None  # the worker's exit code (negative: a signal)
    crashes: bool  # the worker process dies

    def __str__(self) -> str:
        return self.name


FAULTS = [
    Fault("raise", "failed", "ValueError", "injected fault in run()", None, False),
    Fault("sysexit", "failed", "RuntimeError", "sys.exit(3)", None, False),
    Fault("osexit", "crashed", "WorkerCrashedError", "exited with code 3", 3, True),
    Fault("kill", "crashed", "WorkerCrashedError", "killed by SIGKILL", -9, True),
    Fault("segv", "crashed", "WorkerCrashedError", "killed by SIGSEGV", -11, True),
]
INIT_MESSAGES = {
    "raise": "ValueError: injected fault in init()",
    "sysexit": "SystemExit: 3",
    "osexit": "died during init(): exited with code 3",
    "kill": "died during init(): killed by SIGKILL",
    "segv": "died during init(): killed by SIGSEGV",
}


def _assert_init_once_per_process(faults: Faults) -> None:
    """Every pid that ran run() ran init() exactly once, before (a marker per call)."""
    inits = faults.markers.inits()
    for pid in set(faults.markers.calls()):
        assert inits.count(pid) == 1, (
            f"worker {pid} ran init() {inits.count(pid)} times"
        )


def _check_record(
    record: dict, fault: Fault, item: str, pids: list[int], attempt: int
) -> None:
    assert record["mini_batch_index"] == FAULT_BATCH
    assert record["try"] == attempt
    assert record["kind"] == fault.kind
    assert record["error_type"] == fault.error_type
    assert fault.message in record["message"], record["message"]
    assert record["worker_pid"] in pids, (record["worker_pid"], pids)
    assert record["exit_code"] == fault.exit_code
    if fault.crashes:
        assert f"pid {record['worker_pid']}" in record["message"]
    assert record["items"][-1].endswith(item), record["items"]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f"{f}-in-run-once")
def test_fault_in_run_once_is_retried(faults: Faults, fault: Fault) -> None:
    """A batch whose run() fails once succeeds on retry: every item once, in order."""
    names = item_names(N_ITEMS, {FAULT_AT: f"{fault}-once"})
    faults.items(names)
    summary = faults.step(mini_batch_size=BATCH).run()

    assert summary.status == "completed"
    assert_once_in_order(final_rows(faults.out), names)
    assert (summary.items_succeeded, summary.items_failed) == (N_ITEMS, 0)
    assert (summary.mini_batches_failed, summary.retries) == (0, 1)
    assert summary.worker_crashes == (1 if fault.crashes else 0)
    pids = faults.markers.faults(names[FAULT_AT])
    assert len(pids) == 1
    [record] = failures(faults.out)
    _check_record(record, fault, names[FAULT_AT], pids, attempt=1)
    assert assert_journal_consistent(faults.out)["next"] == summary.mini_batches_total
    _assert_init_once_per_process(faults)


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f"{f}-in-run-always")
def test_fault_in_run_always_fails_only_that_batch(
    faults: Faults, fault: Fault
) -> None:
    """A batch whose run() always fails is counted failed after run_max_try tries, alone."""
    names = item_names(N_ITEMS, {FAULT_AT: f"{fault}-always"})
    faults.items(names)
    summary = faults.step(mini_batch_size=BATCH, run_max_try=3).run()

    assert summary.status == "completed"
    lost = set(names[FAULT_BATCH * BATCH : FAULT_BATCH * BATCH + BATCH])
    assert_once_in_order(final_rows(faults.out), [n for n in names if n not in lost])
    assert (summary.items_succeeded, summary.items_failed) == (N_ITEMS - BATCH, BATCH)
    assert (summary.mini_batches_failed, summary.retries) == (1, 2)
    assert summary.worker_crashes == (3 if fault.crashes else 0)
    pids = faults.markers.faults(names[FAULT_AT])
    assert len(pids) == 3, "one injected fault per try"
    records = failures(faults.out)
    assert [r["try"] for r in records] == [1, 2, 3]
    for attempt, record in enumerate(records, 1):
        _check_record(record, fault, names[FAULT_AT], pids, attempt)
    if fault.crashes:
        assert len(set(pids)) == 3, "each try ran in a fresh worker process"
    assert assert_journal_consistent(faults.out)["next"] == summary.mini_batches_total
    _assert_init_once_per_process(faults)


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f"{f}-in-init-once")
def test_fault_in_first_init_of_each_slot_is_survived(
    faults: Faults, fault: Fault
) -> None:
    """When the first init() of each worker slot fails, fresh workers finish the job."""
    names = item_names(N_ITEMS)
    faults.items(names)
    summary = faults.step(
        mini_batch_size=BATCH,
        environment_variables={"APRS_FAULTS_INIT": f"{fault}-once"},
    ).run()

    assert summary.status == "completed"
    assert_once_in_order(final_rows(faults.out), names)
    assert summary.items_failed == 0
    failed_inits = faults.markers.faults("init")
    assert 1 <= len(failed_inits) <= 2, "at most one failed init() per slot"
    assert not set(failed_inits) & set(faults.markers.calls()), (
        "a worker whose init() failed ran a mini-batch"
    )
    assert failures(faults.out) == []
    _assert_init_once_per_process(faults)


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f"{f}-in-init-always")
def test_fault_in_every_init_fails_the_job(faults: Faults, fault: Fault) -> None:
    """When every init() fails, the job stops with InitFailedError after 3 tries per slot."""
    faults.items(item_names(N_ITEMS))
    step = faults.step(
        mini_batch_size=BATCH,
        environment_variables={"APRS_FAULTS_INIT": f"{fault}-always"},
    )
    with pytest.raises(aprs.InitFailedError) as info:
        step.run()

    assert INIT_MESSAGES[fault.name] in str(info.value)
    assert "init() failed in every worker" in str(info.value)
    summary = info.value.summary
    assert summary is not None and summary.stop_reason == "init_failed"
    assert len(faults.markers.faults("init")) == 6, "3 init() tries in each of 2 slots"
    assert faults.markers.calls() == [], "no run() call without a successful init()"
    assert job_result(faults.out)["status"] == "failed"
    assert not (faults.out / OUTPUT_NAME).exists()


ENCODE_FAULTS = [
    pytest.param("badstr", "could not encode run()'s result", id="unstrable-result"),
    pytest.param("badtype", "run() returned builtins.str", id="wrong-return-type"),
]


@pytest.mark.parametrize(("fault", "message"), ENCODE_FAULTS)
@pytest.mark.parametrize("mode", ["once", "always"])
def test_result_that_cannot_be_encoded_fails_only_that_batch(
    faults: Faults, fault: str, message: str, mode: str
) -> None:
    """A result that cannot be written fails that batch's try only; the worker lives on."""
    names = item_names(N_ITEMS, {FAULT_AT: f"{fault}-{mode}"})
    faults.items(names)
    summary = faults.step(mini_batch_size=BATCH, run_max_try=2).run()

    assert summary.status == "completed"
    assert summary.worker_crashes == 0
    records = failures(faults.out)
    tries = 1 if mode == "once" else 2
    assert [r["try"] for r in records] == list(range(1, tries + 1))
    for record in records:
        assert record["mini_batch_index"] == FAULT_BATCH
        assert record["kind"] == "failed"
        assert message in record["message"], record["message"]
    if mode == "once":
        assert_once_in_order(final_rows(faults.out), names)
        assert summary.items_failed == 0
    else:
        lost = set(names[FAULT_BATCH * BATCH : FAULT_BATCH * BATCH + BATCH])
        assert_once_in_order(
            final_rows(faults.out), [n for n in names if n not in lost]
        )
        assert (summary.items_failed, summary.mini_batches_failed) == (BATCH, 1)
    assert len(set(faults.markers.inits())) <= 2, "no worker was replaced"
    _assert_init_once_per_process(faults)
