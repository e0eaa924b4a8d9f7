"""isolate_failures: a failing mini-batch is bisected so that only its poison items fail.

Real jobs over files named by what faulty.py does with them (``NNN-fail`` raises on every
try, ``NNN-osexit-always`` kills its worker, ``NNN-hang-always`` sleeps past the timeout).
Every assertion is on files the job wrote (output, journal, logs) and on the marker files
the script leaves per run() call, never on timing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

import aprs
from aprs._isolate import budget
from aprs._report._data import load as load_report
from aprs._status import job_status

from .conftest import (
    OUTPUT_NAME,
    Faults,
    Markers,
    assert_journal_consistent,
    assert_once_in_order,
    assert_pids_gone,
    cli_args,
    cli_env,
    failures,
    final_rows,
    item_names,
    job_result,
    journal_next,
    kill_tree,
    partial_rows,
    row_of,
    run_cli,
    start_cli,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def _good(names: list[str]) -> list[str]:
    return [n for n in names if n.endswith("-ok")]


def _part_rows(out: Path) -> list[list[Any]]:
    """The minibatches.jsonl rows of part tries (a tenth element: [offset, count])."""
    lines = (out / "logs" / "minibatches.jsonl").read_bytes().splitlines()
    rows = [orjson.loads(line) for line in lines if line.startswith(b"[")]
    return [r for r in rows if len(r) == 10]


def _final_failures(out: Path) -> dict[str, int]:
    """Item name -> failed tries alone (records of one-item parts)."""
    counts: dict[str, int] = {}
    for rec in failures(out):
        part = rec.get("part")
        if part is not None and part[1] == 1:
            [name] = [os.path.basename(i) for i in rec["items"]]
            counts[name] = counts.get(name, 0) + 1
    return counts


def test_only_poison_items_fail_and_good_rows_are_written_in_order(
    faults: Faults,
) -> None:
    """3 poison items in 2 of 4 mini-batches: the 21 good rows, in order; 3 failed items."""
    names = item_names(24, {3: "fail", 14: "fail", 15: "fail"})
    faults.items(names)
    summary = faults.step(mini_batch_size=6, run_max_try=2, isolate_failures=True).run()

    assert summary.status == "completed"
    assert_once_in_order(final_rows(faults.out), _good(names))
    counts = (
        summary.items_succeeded,
        summary.items_failed,
        summary.items_isolated,
        summary.mini_batches_succeeded,
        summary.mini_batches_failed,
    )
    assert counts == (21, 3, 3, 2, 2)
    result = job_result(faults.out)
    assert (result["items_succeeded"], result["items_failed"]) == (21, 3)
    assert (result["mini_batches_failed"], result["items_isolated"]) == (2, 3)
    assert "3 isolated as poison items" in summary.render()
    last = assert_journal_consistent(faults.out)
    assert (last["items_ok"], last["items_failed"], last["batches_failed"]) == (
        21,
        3,
        2,
    )
    # each poison item had run_max_try=2 tries alone, and no good item failed alone
    assert _final_failures(faults.out) == {names[3]: 2, names[14]: 2, names[15]: 2}
    parts = _part_rows(faults.out)
    assert {r[0] for r in parts} == {0, 2}  # only the failing mini-batches were split
    assert all(r[6] == r[9][1] for r in parts)  # items_in is the part's count
    # `status` and the report read the part tries
    assert f"{len(parts)} of them on parts of bisected" in job_status(str(faults.out))
    report = load_report(str(faults.out))
    assert sorted(t.key for t in report.tries if t.part) == sorted(
        (r[0], r[1], r[9][0]) for r in parts
    )
    single = [t for t in report.tries if (t.index, t.part) == (0, (3, 1))]
    assert [t.label for t in single] == ["1 of item 3", "2 of item 3"]
    assert "ValueError" in report.errors_by_try[single[0].key]
    # the good mini-batches ran once; the split ones cost about 2 x log2(6) + retries
    calls = len(faults.markers.calls())
    assert 2 + 2 <= calls <= 2 + 2 * (1 + budget(6, 2))


def test_off_by_default_a_failure_fails_the_whole_mini_batch(faults: Faults) -> None:
    """Without the flag, Azure's rule: the poison item's mini-batch fails whole."""
    names = item_names(24, {3: "fail", 14: "fail", 15: "fail"})
    faults.items(names)
    summary = faults.step(mini_batch_size=6, run_max_try=2).run()

    assert summary.status == "completed"
    assert_once_in_order(final_rows(faults.out), names[6:12] + names[18:])
    assert (summary.items_failed, summary.items_isolated) == (12, 0)
    assert summary.mini_batches_failed == 2
    assert _part_rows(faults.out) == []
    assert all(rec["part"] is None for rec in failures(faults.out))
    assert len(faults.markers.calls()) == 2 + 2 * 2  # 2 good batches, 2 x 2 tries


def test_crash_and_hang_on_one_item_are_isolated(faults: Faults) -> None:
    """A worker-killing item and a hanging item: each fails alone; the rest is written."""
    names = item_names(8, {1: "osexit-always", 6: "hang-always"})
    faults.items(names)
    summary = faults.step(
        mini_batch_size=4,
        run_max_try=1,
        run_invocation_timeout=1.0,
        isolate_failures=True,
    ).run()

    assert summary.status == "completed"
    assert_once_in_order(final_rows(faults.out), _good(names))
    assert (summary.items_failed, summary.items_isolated) == (2, 2)
    assert summary.mini_batches_failed == 2
    # whole, half, item alone: 3 lost tries each
    assert (summary.worker_crashes, summary.worker_timeouts) == (3, 3)
    kinds = {
        os.path.basename(rec["items"][0]): rec["kind"]
        for rec in failures(faults.out)
        if rec["part"] is not None and rec["part"][1] == 1
    }
    assert kinds == {names[1]: "crashed", names[6]: "timeout"}
    assert_pids_gone(faults.markers.all_pids())


def test_error_threshold_counts_poison_items_and_stops_promptly(
    faults: Faults,
) -> None:
    """error_threshold=1: the job stops when the 2nd poison item fails, not earlier.

    Without isolation the first failed mini-batch alone (4 items) would cross it.
    """
    names = item_names(200, {1: "fail", 6: "fail", 9: "fail"})
    faults.items(names)
    step = faults.step(
        mini_batch_size=4,
        run_max_try=1,
        error_threshold=1,
        isolate_failures=True,
        environment_variables={"APRS_FAULTS_SLEEP": "0.005"},
    )
    with pytest.raises(aprs.ErrorThresholdError) as info:
        step.run()

    summary = info.value.summary
    assert summary is not None and summary.stop_reason == "error_threshold"
    assert summary.items_failed == 2 and summary.items_isolated == 2
    assert "error_threshold=1 was crossed: 2 items failed" in str(info.value)
    calls = len(faults.markers.calls())
    assert calls < 50, f"{calls} run() calls: the stop was not prompt"
    done = journal_next(faults.out)
    kept = [n for n in names[: 4 * done] if n.endswith("-ok")]
    assert_once_in_order(partial_rows(faults.out), kept)


def test_a_mini_batch_with_two_poison_items_counts_once(faults: Faults) -> None:
    """allowed_failed_count=1 (mini_batch_error_threshold): one bisected mini-batch with
    two poison items is one failed mini-batch, so the job completes."""
    names = item_names(16, {1: "fail", 2: "fail"})
    faults.items(names)
    summary = faults.step(
        mini_batch_size=4, run_max_try=1, allowed_failed_count=1, isolate_failures=True
    ).run()

    assert summary.status == "completed"
    assert (summary.mini_batches_failed, summary.items_failed) == (1, 2)
    assert_once_in_order(final_rows(faults.out), _good(names))


def test_budget_exhausted_the_rest_fails_as_a_group(faults: Faults) -> None:
    """4 items, 3 of them poison, run_max_try=3: the budget of 2 x 4 tries runs out.

    Depth first: the whole try; [0, 1] fails and splits (budget 8 -> 6 -> 4); item 0 and
    item 1 get 3 tries alone (4 -> 0); then [2, 3] fails and, with no budget left, its
    two items fail together, the good item 2 with them. Mini-batch 1 is all good.
    """
    names = item_names(8, {0: "fail", 1: "fail", 3: "fail"})
    faults.items(names)
    summary = faults.step(mini_batch_size=4, run_max_try=3, isolate_failures=True).run()

    assert budget(4, 3) == 8
    assert summary.status == "completed"
    assert (summary.items_failed, summary.items_isolated) == (4, 2)
    assert final_rows(faults.out) == [row_of(n) for n in names[4:]]
    records = failures(faults.out)
    assert [r["part"] for r in records] == [
        None,
        [0, 2],
        *[[0, 1]] * 3,
        *[[1, 1]] * 3,
        [2, 2],
    ]
    assert len(faults.markers.calls()) == len(records) + 1 == 10


def test_budget_bounds_a_big_mini_batch_where_everything_fails() -> None:
    """The budget is 2 x n for small batches, and a few hundred tries for huge ones."""
    assert budget(2, 3) == 4
    assert budget(32, 3) == 64
    assert budget(10_000, 3) == 16 * (2 * 14 + 3)  # 496, not 20,000
    assert budget(1024, 1) == 16 * (2 * 10 + 1)


# -- resume -----------------------------------------------------------------------------

N_RESUME = 64
BATCH = 4
GATED_FROM = 60  # the last mini-batch blocks on a gate file in the killed run
RESUME_NAMES = item_names(
    N_RESUME,
    {5: "fail", 22: "fail", 41: "fail", 42: "fail"}
    | dict.fromkeys(range(GATED_FROM, N_RESUME), "block"),
)
SLEEP = {"APRS_FAULTS_SLEEP": "0.01"}


def _args(faults: Faults, inputs: Path) -> list[str]:
    args = cli_args(faults, "--isolate-failures", "--run-max-try", "2", batch=BATCH)
    args[args.index("--input") + 1] = os.fspath(inputs)
    return args


def test_killed_isolating_job_resumes_to_identical_output(
    faults: Faults, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """SIGKILL mid-job, rerun: the output equals an uninterrupted run's, byte for byte."""
    faults.items(RESUME_NAMES)
    root = tmp_path_factory.mktemp("isolate-reference")
    (root / "markers").mkdir()
    ref = Faults(
        root, Markers(root / "markers"), {"APRS_FAULTS_DIR": str(root / "markers")}
    )
    proc = run_cli(ref, _args(ref, faults.inputs), env=cli_env(ref, **SLEEP))
    assert proc.returncode == 0, proc.stderr
    expected = (ref.out / OUTPUT_NAME).read_bytes()
    good = [n for n in RESUME_NAMES if not n.endswith("-fail")]
    assert_once_in_order(expected.decode().splitlines(), good)

    args = _args(faults, faults.inputs)
    env = cli_env(faults, APRS_FAULTS_GATE=os.fspath(faults.root / "gate"), **SLEEP)
    killed = start_cli(faults, args, env=env)
    try:
        wait_for(lambda: journal_next(faults.out) >= 3, "3 mini-batches journaled")
        killed.kill()
        killed.wait(timeout=30)
    finally:
        kill_tree(killed.pid)
        killed.communicate()
    assert_pids_gone(faults.markers.all_pids(), timeout=5.0)
    done = journal_next(faults.out)
    assert 3 <= done < GATED_FROM // BATCH + 1

    proc = run_cli(faults, args, env=cli_env(faults, **SLEEP))
    assert proc.returncode == 0, proc.stderr
    result = job_result(faults.out)
    assert result["resumed_from_batch"] == done
    assert (result["items_succeeded"], result["items_failed"]) == (60, 4)
    assert (faults.out / OUTPUT_NAME).read_bytes() == expected


def test_keyed_item_batches_keep_their_key(job: Any) -> None:
    """In-memory items with partition_keys: the parts of a key's mini-batch keep the key
    value; only the bad item fails."""
    items = [{"k": i % 2, "id": i, "bad": i == 5} for i in range(10)]
    ran = job(
        "partition_probe",
        [items],
        partition_keys=["k"],
        isolate_failures=True,
        run_max_try=1,
    )
    s = ran.summary
    assert (s.items_succeeded, s.items_failed, s.items_isolated) == (9, 1, 1)
    assert s.mini_batches_failed == 1
    assert ran.rows() == [f"0|k=0|{i}" for i in (0, 2, 4, 6, 8)] + [
        f"1|k=1|{i}" for i in (1, 3, 7, 9)
    ]
