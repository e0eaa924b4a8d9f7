"""Accounting: pure decision tables for thresholds and retries, plus properties. No loop."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aprs._accounting import Accounting, Thresholds


def acc(**thresholds: object) -> Accounting:
    return Accounting(Thresholds(**thresholds))  # type: ignore[arg-type]


def reason(a: Accounting) -> str | None:
    crossed = a.crossed()
    return None if crossed is None else crossed[0]


# -- error_threshold: failed items, strictly above the limit ------------------------------


@pytest.mark.parametrize(
    ("limit", "failed_items", "expected"),
    [
        pytest.param(0, 0, None, id="0-limit-none-failed"),
        pytest.param(0, 1, "error_threshold", id="0-limit-one-failed"),
        pytest.param(5, 5, None, id="at-limit"),
        pytest.param(5, 6, "error_threshold", id="above-limit"),
        pytest.param(-1, 10_000, None, id="disabled"),
    ],
)
def test_error_threshold_counts_items(
    limit: int, failed_items: int, expected: str | None
) -> None:
    """error_threshold stops the job when failed items go above it; -1 never stops."""
    a = acc(error_threshold=limit)
    a.record_done(0, failed_items, 0)  # run() returned nothing: every item failed
    assert a.items_failed == failed_items
    assert reason(a) == expected


def test_error_threshold_counts_items_of_final_failed_tries() -> None:
    """Items of a mini-batch count as failed only after its last try failed."""
    a = acc(error_threshold=2, run_max_try=2)
    assert a.record_failed_try(0, 3, attempt=1) is True
    assert a.items_failed == 0
    assert reason(a) is None
    assert a.record_failed_try(0, 3, attempt=2) is False
    assert a.items_failed == 3
    assert reason(a) == "error_threshold"


def test_error_threshold_message_names_limit_and_count() -> None:
    """The crossed message names the setting, its limit and the count."""
    a = acc(error_threshold=1)
    a.record_done(0, 4, 1)
    crossed = a.crossed()
    assert crossed is not None
    assert "error_threshold=1" in crossed[1]
    assert "3 items failed" in crossed[1]


# -- allowed_failed_count: failed mini-batches, including those awaiting a retry ----------


@pytest.mark.parametrize(
    ("limit", "final_failures", "awaiting_retry", "expected"),
    [
        pytest.param(1, 1, 0, None, id="one-failed-at-limit"),
        pytest.param(1, 2, 0, "allowed_failed_count", id="two-failed-above"),
        pytest.param(1, 0, 2, "allowed_failed_count", id="two-awaiting-retry-above"),
        pytest.param(1, 1, 1, "allowed_failed_count", id="failed-plus-awaiting"),
        pytest.param(2, 1, 1, None, id="failed-plus-awaiting-at-limit"),
        pytest.param(0, 0, 1, "allowed_failed_count", id="0-limit-awaiting"),
        pytest.param(-1, 50, 50, None, id="disabled-minus-1"),
        pytest.param(None, 50, 50, None, id="disabled-none"),
    ],
)
def test_allowed_failed_count(
    limit: int | None, final_failures: int, awaiting_retry: int, expected: str | None
) -> None:
    """allowed_failed_count counts failed batches plus batches failing and awaiting retry."""
    a = acc(allowed_failed_count=limit, run_max_try=2)
    batch = 0
    for _ in range(final_failures):
        a.record_failed_try(batch, 1, attempt=2)
        batch += 1
    for _ in range(awaiting_retry):
        assert a.record_failed_try(batch, 1, attempt=1) is True
        batch += 1
    assert reason(a) == expected


def test_retry_success_stops_counting_as_failed() -> None:
    """A batch that failed once and then succeeds no longer counts toward the limit."""
    a = acc(allowed_failed_count=0, run_max_try=3)
    a.record_failed_try(7, 4, attempt=1)
    assert reason(a) == "allowed_failed_count"
    assert a.record_done(7, 4, 4) == (4, 0)
    assert reason(a) is None
    assert (a.batches_failed, a.batches_succeeded, a.retries) == (0, 1, 1)


def test_short_result_counts_batch_as_failed() -> None:
    """With error_threshold set, a batch whose run() returned fewer elements fails."""
    a = acc(allowed_failed_count=0, error_threshold=10)
    assert a.record_done(0, 5, 3) == (3, 2)
    assert (a.batches_failed, a.items_failed, a.items_succeeded) == (1, 2, 3)
    assert reason(a) == "allowed_failed_count"


def test_short_result_with_error_threshold_off_is_a_succeeded_batch() -> None:
    """error_threshold=-1 (Azure's v2 partitioned samples return []): items fail, the
    mini-batch does not, so mini-batch budgets are not spent (issue 9)."""
    a = acc(allowed_failed_count=0, allowed_failed_percent=0)
    assert a.record_done(0, 5, 0) == (0, 5)
    a.scheduling_finished(1)
    assert (a.batches_failed, a.batches_succeeded, a.items_failed) == (0, 1, 5)
    assert reason(a) is None


# -- allowed_failed_percent: only once every mini-batch is scheduled ---------------------


@pytest.mark.parametrize(
    ("percent", "failed", "total", "finished", "expected"),
    [
        pytest.param(10, 5, 5, False, None, id="all-failed-not-yet-scheduled"),
        pytest.param(10, 1, 10, True, None, id="at-percent"),
        pytest.param(10, 2, 10, True, "allowed_failed_percent", id="above-percent"),
        pytest.param(0, 1, 100, True, "allowed_failed_percent", id="0-percent"),
        pytest.param(0, 0, 100, True, None, id="0-percent-none-failed"),
        pytest.param(100, 10, 10, True, None, id="disabled-100"),
        pytest.param(None, 10, 10, True, None, id="disabled-none"),
    ],
)
def test_allowed_failed_percent(
    percent: float | None, failed: int, total: int, finished: bool, expected: str | None
) -> None:
    """allowed_failed_percent is checked only after scheduling finished; 100 disables it."""
    a = acc(allowed_failed_percent=percent, run_max_try=1)
    for batch in range(total):
        if batch < failed:
            assert a.record_failed_try(batch, 1, attempt=1) is False
        else:
            a.record_done(batch, 1, 1)
    if finished:
        a.scheduling_finished(total)
    assert reason(a) == expected


def test_first_crossed_threshold_wins() -> None:
    """When several limits are crossed, error_threshold is reported first."""
    a = acc(error_threshold=0, allowed_failed_count=0, allowed_failed_percent=0)
    a.record_done(0, 1, 0)
    a.scheduling_finished(1)
    assert reason(a) == "error_threshold"


def test_defaults_never_stop() -> None:
    """The default thresholds (-1, None, None) tolerate every failure."""
    a = acc()
    for batch in range(20):
        a.record_done(batch, 3, 0)
    a.scheduling_finished(20)
    assert reason(a) is None


# -- retries -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_try", "attempt", "retry"),
    [(1, 1, False), (3, 1, True), (3, 2, True), (3, 3, False)],
)
def test_retry_decision(max_try: int, attempt: int, retry: bool) -> None:
    """A failed try is retried while attempt < run_max_try."""
    a = acc(run_max_try=max_try)
    assert a.record_failed_try(0, 2, attempt) is retry
    assert a.retries == (1 if retry else 0)
    assert a.items_failed == (0 if retry else 2)


def test_restore_starts_from_journal_counts() -> None:
    """restore() resumes the counters so thresholds include the earlier run's failures."""
    a = acc(error_threshold=5)
    a.restore(items_ok=10, items_failed=5, batches_ok=2, batches_failed=1)
    assert reason(a) is None
    a.record_done(3, 1, 0)
    assert reason(a) == "error_threshold"
    assert (a.items_succeeded, a.items_failed) == (10, 6)


# -- properties ------------------------------------------------------------------------------

# One batch's life: a list of try results; True = run() returned all items.
lives = st.lists(
    st.tuples(st.integers(1, 5), st.lists(st.booleans(), min_size=1, max_size=4)),
    max_size=30,
)


@given(lives, st.integers(1, 4))
def test_every_item_counted_once(
    batches: list[tuple[int, list[bool]]], max_try: int
) -> None:
    """Each batch ends succeeded or failed once; items add up; retries < run_max_try each."""
    a = acc(run_max_try=max_try)
    expected_ok = expected_failed = 0
    for batch_id, (size, tries) in enumerate(batches):
        for attempt, succeeds in enumerate(tries, 1):
            if succeeds:
                a.record_done(batch_id, size, size)
                expected_ok += size
                break
            if not a.record_failed_try(batch_id, size, attempt):
                expected_failed += size
                break
        else:
            # Still awaiting a retry: let the last try succeed so every batch is final.
            a.record_done(batch_id, size, size)
            expected_ok += size
    assert a.items_succeeded == expected_ok
    assert a.items_failed == expected_failed
    assert a.batches_succeeded + a.batches_failed == len(batches)
    assert a.failing == set()
    assert a.retries <= len(batches) * (max_try - 1)


def test_a_bisected_mini_batch_is_failing_then_counts_once() -> None:
    """isolate_failures: failing while bisected (allowed_failed_count sees it), poison items
    counted as they fail (error_threshold), one failed mini-batch at the end."""
    a = acc(allowed_failed_count=0, error_threshold=2)
    a.isolation_started(7)
    assert (a.crossed() or ("",))[0] == "allowed_failed_count"
    a = acc(allowed_failed_count=1, error_threshold=2)
    a.isolation_started(7)
    a.part_done(ok=4, short=0)
    a.part_retried()
    a.part_failed(1)
    a.part_failed(1)
    assert a.crossed() is None  # 2 items failed: not above error_threshold=2
    a.part_done(ok=2, short=0)
    a.isolation_finished(7, failed=True)
    assert (a.items_succeeded, a.items_failed, a.retries) == (6, 2, 2)
    assert (a.batches_succeeded, a.batches_failed, a.failing) == (0, 1, set())
    a.part_failed(1)
    assert (a.crossed() or ("",))[0] == "error_threshold"


def test_a_bisected_mini_batch_whose_parts_all_succeed_counts_as_succeeded() -> None:
    a = acc()
    a.isolation_started(0)
    a.part_done(ok=3, short=0)
    a.part_done(ok=3, short=0)
    a.isolation_finished(0, failed=False)
    assert (a.batches_succeeded, a.batches_failed, a.items_failed) == (1, 0, 0)
