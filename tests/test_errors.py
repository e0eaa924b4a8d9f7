"""Exceptions: messages built from their context, and pickling that keeps them unchanged."""

from __future__ import annotations

import pickle

import pytest

import aprs
from aprs._summary import JobSummary, job_error


def roundtrip(exc: BaseException) -> BaseException:
    return pickle.loads(pickle.dumps(exc))  # type: ignore[no-any-return]


def test_remote_error_round_trips_unchanged() -> None:
    """Regression: unpickling a RemoteError repeated its type ('ValueError: ValueError: boom')."""
    exc = aprs.RemoteError("ValueError", "boom", "Traceback ...")
    got = roundtrip(exc)
    assert isinstance(got, aprs.RemoteError)
    assert str(got) == str(exc) == "ValueError: boom"
    assert (got.type_name, got.message, got.traceback_text) == (
        "ValueError",
        "boom",
        "Traceback ...",
    )
    assert str(roundtrip(got)) == "ValueError: boom"


def test_worker_crashed_error_names_its_context_and_round_trips() -> None:
    """WorkerCrashedError builds its message from batch, try, worker, pid and exit."""
    exc = aprs.WorkerCrashedError(
        batch_index=12,
        attempt=2,
        pid=4242,
        worker_index=1,
        exit_code=-9,
        signal=9,
        description="killed by SIGKILL (exit code -9)",
    )
    assert str(exc) == (
        "worker 1 (pid 4242) died while running mini-batch 12 (try 2): killed by SIGKILL "
        "(exit code -9)"
    )
    got = roundtrip(exc)
    assert type(got) is aprs.WorkerCrashedError and str(got) == str(exc)
    assert vars(got) == vars(exc)
    assert (got.batch_index, got.attempt, got.signal, got.exit_code) == (12, 2, 9, -9)


def test_batch_timeout_error_names_its_bound_and_round_trips() -> None:
    """BatchTimeoutError says which batch, which try and which bound; it is a TimeoutError."""
    exc = aprs.BatchTimeoutError(
        batch_index=3, attempt=1, timeout_s=2.5, pid=7, worker_index=0
    )
    assert "mini-batch 3 (try 1)" in str(exc)
    assert "run_invocation_timeout=2.5 s" in str(exc)
    got = roundtrip(exc)
    assert isinstance(got, TimeoutError) and str(got) == str(exc)
    assert vars(got) == vars(exc)


def test_hung_init_error_names_the_bound_derived_from_run_invocation_timeout() -> None:
    """Without an init timeout of its own the fix states Azure's bound, in seconds and as
    its formula (the real bound, set for a worker, is tests/faults/test_timeouts.py's)."""
    exc = aprs.InitFailedError.in_every_slot(
        attempts=2,
        slots=2,
        last_failure="init() did not finish within 33 s",
        hung=True,
        init_timeout_s=33.0,
    )
    assert (
        "Make init() return within the bound (33 s), or raise run_invocation_timeout "
        "(the bound is 3 * run_invocation_timeout + 30 s)."
    ) in str(exc)


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        ("completed", "completed", None),
        ("failed", "error_threshold", aprs.ErrorThresholdError),
        ("failed", "allowed_failed_percent", aprs.ErrorThresholdError),
        ("failed", "init_failed", aprs.InitFailedError),
        ("failed", "no_successful_items", aprs.JobError),
        ("interrupted", "interrupted", aprs.JobInterruptedError),
        ("interrupted", "terminated", aprs.JobInterruptedError),
    ],
)
def test_job_error_maps_each_stop_reason(
    status: str, reason: str, expected: type[BaseException] | None
) -> None:
    """One function maps a stop reason to its exception, with the summary attached."""
    summary = JobSummary(status=status, stop_reason=reason, message="why")  # type: ignore[arg-type]
    error = job_error(summary, None)
    if expected is None:
        assert error is None
        return
    assert type(error) is expected
    assert isinstance(error, aprs.JobError) and error.summary is summary
    assert str(error) == f"The job {status}: why"
    if reason == "terminated":
        assert isinstance(error, aprs.JobInterruptedError) and error.signum == 15


def test_job_error_keeps_the_cause() -> None:
    """A usage error that stopped the job is raised as is; a JobError cause gets the summary."""
    summary = JobSummary(status="failed", stop_reason="init_failed")
    usage = aprs.EntryScriptError("cannot import")
    assert job_error(summary, usage) is usage
    init = aprs.InitFailedError("init() failed")
    assert job_error(summary, init) is init and init.summary is summary
