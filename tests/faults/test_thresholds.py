"""Failure thresholds stop the job promptly: counted in run() calls, never in seconds.

200 one-item mini-batches; ``NNN-fail`` items make run() raise. The script leaves one marker
file per run() call, so "did not process the rest of the input" is a count.
"""

from __future__ import annotations

import pytest

import aprs

from .conftest import (
    OUTPUT_NAME,
    Faults,
    assert_once_in_order,
    cli_args,
    cli_env,
    failures,
    item_names,
    job_result,
    journal_next,
    partial_rows,
    run_cli,
    state,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

N = 200
FROM_3 = dict.fromkeys(range(3, N), "fail")  # every run() from mini-batch 3 on raises
SPREAD = dict.fromkeys(range(8, N, 9), "fail")  # 22 of 200 fail (11%), evenly spread
PROMPT = N // 4  # "far fewer than 200" run() calls
# run() takes >= 20 ms (a sleep never returns early), so the pool keeps each worker's
# pipeline shallow (depth <= 2); with sub-millisecond batches it queues up to 32 per
# worker, and a stop then also runs what those pipelines hold (still bounded, ~80 calls).
SLOW = {"APRS_FAULTS_SLEEP": "0.02"}


def _check_stopped_job(faults: Faults, names: list[str]) -> None:
    """The .partial output holds every completed row before the stop, once, in order."""
    assert not (faults.out / OUTPUT_NAME).exists(), "a failed job has no final output"
    done = journal_next(faults.out)
    assert_once_in_order(
        partial_rows(faults.out), [n for n in names[:done] if not n.endswith("-fail")]
    )
    result = job_result(faults.out)
    assert result["status"] == "failed"
    assert result["output_file"].endswith(f"{OUTPUT_NAME}.partial")
    assert state(faults.out)["status"] == "failed"


@pytest.mark.parametrize(
    ("config", "reason", "fragment"),
    [
        pytest.param(
            {"error_threshold": 2},
            "error_threshold",
            "error_threshold=2 was crossed: 3 items failed",
            id="error_threshold-2",
        ),
        pytest.param(
            {"allowed_failed_count": 1},
            "allowed_failed_count",
            "allowed_failed_count=1 was crossed: 2 mini-batches failed",
            id="allowed_failed_count-1",
        ),
    ],
)
def test_threshold_stops_the_job_promptly(
    faults: Faults, config: dict, reason: str, fragment: str
) -> None:
    """Crossing a threshold stops the job after far fewer than 200 run() calls."""
    names = item_names(N, FROM_3)
    faults.items(names)
    with pytest.raises(aprs.ErrorThresholdError) as info:
        faults.step(run_max_try=3, environment_variables=SLOW, **config).run()

    assert fragment in str(info.value)
    summary = info.value.summary
    assert summary is not None and summary.stop_reason == reason
    calls = len(faults.markers.calls())
    assert calls < PROMPT, f"{calls} run() calls after the threshold was crossed"
    _check_stopped_job(faults, names)
    assert len(partial_rows(faults.out)) <= summary.items_succeeded <= 3
    assert job_result(faults.out)["stop_reason"] == reason


def test_allowed_failed_percent_is_judged_on_the_whole_input(faults: Faults) -> None:
    """allowed_failed_percent=10 with 11% spread failures is crossed only near the end."""
    names = item_names(N, SPREAD)
    faults.items(names)
    with pytest.raises(aprs.ErrorThresholdError) as info:
        faults.step(run_max_try=3, allowed_failed_percent=10).run()

    assert (
        "allowed_failed_percent=10 was crossed: 21 of 200 mini-batches (10.5%) failed"
        in (str(info.value))
    )
    assert info.value.summary is not None
    assert info.value.summary.stop_reason == "allowed_failed_percent"
    records = failures(faults.out)
    final = {r["mini_batch_index"] for r in records if r["try"] == 3}
    assert len(final) == 21 and final <= set(SPREAD), (
        "21 of the failing batches, then stop"
    )
    _check_stopped_job(faults, names)


def test_allowed_failed_percent_not_crossed_completes(faults: Faults) -> None:
    """With allowed_failed_percent=12 the same 11% of failures is tolerated: exit as done."""
    names = item_names(N, SPREAD)
    faults.items(names)
    summary = faults.step(run_max_try=1, allowed_failed_percent=12).run()

    assert summary.status == "completed"
    assert (summary.mini_batches_failed, summary.items_failed) == (22, 22)
    rows = (faults.out / OUTPUT_NAME).read_text().splitlines()
    assert_once_in_order(rows, [n for n in names if not n.endswith("-fail")])


def test_threshold_exits_1_from_the_cli(faults: Faults) -> None:
    """`python -m aprs run --error-threshold 2` exits 1 and names the threshold."""
    names = item_names(N, FROM_3)
    faults.items(names)
    proc = run_cli(
        faults, cli_args(faults, "--error-threshold", "2"), env=cli_env(faults, **SLOW)
    )

    assert proc.returncode == 1, proc.stderr
    assert "error_threshold=2 was crossed: 3 items failed" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(faults.markers.calls()) < PROMPT
    _check_stopped_job(faults, names)


def test_fast_failing_job_stops_after_few_calls(faults: Faults) -> None:
    """Sub-millisecond failing batches: the pipeline drops to one batch at a time, so the
    stop comes after a few dozen run() calls (3 tries x 3 batches + what was in flight)."""
    names = item_names(N, FROM_3)
    faults.items(names)
    with pytest.raises(aprs.ErrorThresholdError):
        faults.step(run_max_try=3, error_threshold=2).run()

    calls = len(faults.markers.calls())
    assert calls < 30, f"{calls} run() calls for a job failing from its 4th batch"
    _check_stopped_job(faults, names)
