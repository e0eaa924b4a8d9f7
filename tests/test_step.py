"""ParallelRunStep end to end: real worker processes, real files, the public API only."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from conftest import Ran, make_files, read_failures, read_job_result

import aprs

Job = Callable[..., Ran]
MakeJob = Callable[..., aprs.ParallelRunStep]

pytestmark = pytest.mark.timeout(120)


def batch_rows(sizes: list[int], names: list[str]) -> list[str]:
    """The rows batch_index.py writes for ``names`` cut into batches of ``sizes``."""
    rows, pos = [], 0
    for index, size in enumerate(sizes):
        rows += [f"{index}:{name}" for name in names[pos : pos + size]]
        pos += size
    assert pos == len(names)
    return rows


# -- file inputs -------------------------------------------------------------------------


def ten_files(folder: Path) -> list[str]:
    """Ten files created out of order (one in a sub-folder); returns the sorted base names."""
    names = {f"f{i:02d}.txt": f"content {i}" for i in (7, 2, 9, 0, 5, 1, 8, 3, 6)}
    names["sub/f04.txt"] = "content 4"
    make_files(folder, names)
    # Sorted by full path: the "sub" folder sorts after the files named f...
    return [f"f{i:02d}.txt" for i in (0, 1, 2, 3, 5, 6, 7, 8, 9)] + ["f04.txt"]


@pytest.mark.parametrize(
    ("size", "sizes"),
    [
        pytest.param(1, [1] * 10, id="1"),
        pytest.param(3, [3, 3, 3, 1], id="3-remainder-1"),
        pytest.param(4, [4, 4, 2], id="4-remainder-2"),
        pytest.param(10, [10], id="10-exact"),
        pytest.param("5", [5, 5], id="5-as-string"),
        pytest.param(25, [10], id="25-more-than-files"),
    ],
)
def test_file_inputs_in_sorted_order(
    tmp_path: Path, job: Job, size: Any, sizes: list[int]
) -> None:
    """Files reach run() in sorted path order, cut into mini-batches with a remainder."""
    names = ten_files(tmp_path / "data")
    ran = job(
        "batch_index",
        [aprs.FileDataset.from_files(tmp_path / "data")],
        mini_batch_size=size,
    )
    assert ran.rows() == batch_rows(sizes, names)
    s = ran.summary
    assert (s.mini_batches_total, s.mini_batches_succeeded, s.mini_batches_failed) == (
        len(sizes),
        len(sizes),
        0,
    )
    assert (s.items_total, s.items_succeeded, s.items_failed) == (10, 10, 0)


def test_file_contents_reach_run(tmp_path: Path, job: Job) -> None:
    """run() receives absolute paths it can open; echo_files returns name:content rows."""
    names = ten_files(tmp_path / "data")
    ran = job(
        "echo_files",
        [aprs.FileDataset.from_files(tmp_path / "data")],
        mini_batch_size=3,
    )
    assert ran.rows() == [f"{n}:content {int(n[1:3])}" for n in names]


def test_byte_sized_mini_batches(tmp_path: Path, job: Job) -> None:
    """ "64KB" groups files up to 64 KiB per mini-batch; a larger file is a batch alone."""
    data = tmp_path / "data"
    data.mkdir()
    sizes_kb = {"a": 40, "b": 40, "c": 100, "d": 10, "e": 10, "f": 64, "g": 1}
    for name, kb in sizes_kb.items():
        (data / name).write_bytes(b"x" * (kb * 1024))
    ran = job(
        "batch_index", [aprs.FileDataset.from_files(data)], mini_batch_size="64KB"
    )
    # a+b = 80 KiB > 64; c alone (too large); d+e = 20, +f = 84 > 64; f+g = 65 > 64.
    assert ran.rows() == ["0:a", "1:b", "2:c", "3:d", "3:e", "4:f", "5:g"]
    assert ran.summary.mini_batches_total == 6
    assert ran.summary.items_succeeded == 7


def test_several_file_inputs_are_split_separately(tmp_path: Path, job: Job) -> None:
    """Each input is cut on its own: no mini-batch mixes files of two inputs."""
    make_files(tmp_path / "one", {f"a{i}": "x" for i in range(5)})
    make_files(tmp_path / "two", {f"b{i}": "y" for i in range(4)})
    ran = job(
        "batch_index",
        [
            aprs.FileDataset.from_files(tmp_path / "one"),
            aprs.FileDataset.from_files(tmp_path / "two"),
        ],
        mini_batch_size=3,
    )
    assert ran.rows() == batch_rows(
        [3, 2, 3, 1], [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(4)]
    )
    assert ran.summary.mini_batches_total == 4


def test_several_iterable_inputs_are_split_separately(job: Job) -> None:
    """In-memory inputs are also cut one by one, with ids contiguous across them."""
    ran = job("batch_index", [["a", "b", "c"], ["d", "e"]], mini_batch_size=2)
    assert ran.rows() == ["0:a", "0:b", "1:c", "2:d", "2:e"]


# -- ordering ------------------------------------------------------------------------------


def test_output_in_input_order_when_workers_finish_out_of_order(
    tmp_path: Path, job: Job
) -> None:
    """Rows follow mini-batch order even though early mini-batches finish last."""
    log = tmp_path / "completions.log"
    items = [f"item{i}" for i in range(24)]
    ran = job(
        "sleepy_early",
        [items],
        mini_batch_size=2,
        environment_variables={"SLEEPY_LOG": str(log)},
    )
    assert ran.rows() == [f"{i // 2}:{item}" for i, item in enumerate(items)]
    completed = [int(line) for line in log.read_text().split()]
    assert sorted(completed) == list(range(12))
    assert completed != sorted(completed), "the test needs out-of-order completions"
    assert ran.summary.peak_reorder_window >= 1


@pytest.mark.slow
def test_many_more_items_than_the_queue_holds(job: Job) -> None:
    """100k one-item mini-batches (far beyond queue and window) complete in order, counted."""
    n = 100_000
    ran = job("echo", [range(n)], mini_batch_size=1)
    data = ran.output_bytes()
    assert data == "".join(f"{i}\n" for i in range(n)).encode()
    s = ran.summary
    assert (s.mini_batches_total, s.mini_batches_succeeded, s.mini_batches_failed) == (
        n,
        n,
        0,
    )
    assert (s.items_total, s.items_succeeded, s.items_failed) == (n, n, 0)


# -- output actions -------------------------------------------------------------------------


def test_summary_only_writes_no_rows_but_counts(job: Job) -> None:
    """summary_only writes no output file, yet counts every item and mini-batch."""
    ran = job(
        "echo", [list(range(25))], mini_batch_size=4, output_action="summary_only"
    )
    s = ran.summary
    assert s.output_file is None
    assert (s.mini_batches_total, s.items_total, s.items_succeeded) == (7, 25, 25)
    assert sorted(p.name for p in ran.out.iterdir()) == ["logs"]


def test_append_row_file_name(job: Job) -> None:
    """append_row_file_name names the output file inside the output directory."""
    ran = job("echo", [["x", "y"]], append_row_file_name="results.txt")
    assert ran.summary.output_file == str(ran.out / "results.txt")
    assert ran.rows() == ["x", "y"]
    assert not (ran.out / "parallel_run_step.txt").exists()
    assert not (ran.out / "results.txt.partial").exists()


# -- failures ------------------------------------------------------------------------------


def test_failing_run_is_recorded_and_job_completes(job: Job) -> None:
    """run() raising fails its mini-batch; the record holds type and traceback; job completes."""
    items = ["ok0", "ok1", "bad2", "ok3", "ok4", "ok5", "bad6", "ok7"]
    ran = job("raises", [items], mini_batch_size=2, error_threshold=-1, run_max_try=1)
    assert ran.rows() == ["ok0", "ok1", "ok4", "ok5"]
    s = ran.summary
    assert s.status == "completed"
    assert (s.mini_batches_succeeded, s.mini_batches_failed) == (2, 2)
    assert (s.items_succeeded, s.items_failed) == (4, 4)
    records = sorted(ran.failures(), key=lambda r: r["mini_batch_index"])
    assert [r["mini_batch_index"] for r in records] == [1, 3]
    first = records[0]
    assert first["error_type"] == "ValueError"
    assert first["kind"] == "failed"
    assert "cannot process 'bad2'" in first["message"]
    assert "Traceback (most recent call last)" in first["traceback"]
    assert "raises.py" in first["traceback"]
    assert "ValueError: cannot process 'bad2'" in first["traceback"]
    assert first["items"] == ["bad2", "ok3"]
    assert (first["try"], first["max_try"], first["items_count"]) == (1, 1, 2)
    assert first["worker_pid"] > 0


def test_failing_run_is_retried_run_max_try_times(job: Job) -> None:
    """Each try of a failing mini-batch is recorded; retries are counted in the summary."""
    ran = job("raises", [["ok", "bad", "ok2"]], mini_batch_size=1, run_max_try=3)
    s = ran.summary
    assert s.retries == 2
    assert (s.items_succeeded, s.items_failed, s.mini_batches_failed) == (2, 1, 1)
    records = ran.failures()
    assert [(r["mini_batch_index"], r["try"]) for r in records] == [
        (1, 1),
        (1, 2),
        (1, 3),
    ]
    assert ran.rows() == ["ok", "ok2"]


def test_error_threshold_stops_the_job(make_job: MakeJob) -> None:
    """Crossing error_threshold raises ErrorThresholdError with the summary attached."""
    items = ["bad"] * 3 + ["ok"] * 5
    step = make_job(
        "raises", [items], mini_batch_size=1, error_threshold=1, run_max_try=1
    )
    with pytest.raises(aprs.ErrorThresholdError) as info:
        step.run()
    summary = info.value.summary
    assert summary is not None
    assert (summary.status, summary.stop_reason) == ("failed", "error_threshold")
    assert summary.items_failed >= 2
    assert "error_threshold=1" in str(info.value)


def test_threshold_stops_an_endless_generator_early(make_job: MakeJob) -> None:
    """A crossed threshold stops the job; an endless generator is read only a bounded way."""
    taken = 0

    def endless() -> Iterator[str]:
        nonlocal taken
        while True:
            taken += 1
            yield f"bad{taken}"

    step = make_job(
        "raises", [endless()], mini_batch_size=1, error_threshold=3, run_max_try=1
    )
    with pytest.raises(aprs.ErrorThresholdError) as info:
        step.run()
    summary = info.value.summary
    assert summary is not None
    assert summary.stop_reason == "error_threshold"
    assert 4 <= summary.items_failed < 1_000
    assert taken < 1_000  # bounded by the pending queue, not by the input


def test_allowed_failed_count_stops_the_job(make_job: MakeJob) -> None:
    """More failed mini-batches than allowed_failed_count stops the job with that reason."""
    items = ["bad"] * 4 + ["ok"] * 4
    step = make_job(
        "raises", [items], mini_batch_size=1, allowed_failed_count=1, run_max_try=1
    )
    with pytest.raises(aprs.ErrorThresholdError) as info:
        step.run()
    assert info.value.summary is not None
    assert info.value.summary.stop_reason == "allowed_failed_count"
    assert info.value.summary.mini_batches_failed >= 2


@pytest.mark.parametrize(
    ("percent", "fails"),
    [
        pytest.param(20, True, id="30%-failed-over-20"),
        pytest.param(30, False, id="30%-failed-at-30"),
    ],
)
def test_allowed_failed_percent(make_job: MakeJob, percent: float, fails: bool) -> None:
    """allowed_failed_percent compares failed mini-batches with all of them, at the end."""
    items = ["bad"] * 3 + ["ok"] * 7
    step = make_job(
        "raises",
        [items],
        mini_batch_size=1,
        allowed_failed_percent=percent,
        run_max_try=1,
    )
    if fails:
        with pytest.raises(aprs.ErrorThresholdError) as info:
            step.run()
        assert info.value.summary is not None
        assert info.value.summary.stop_reason == "allowed_failed_percent"
    else:
        summary = step.run()
        assert summary.status == "completed"
        assert (summary.mini_batches_failed, summary.items_succeeded) == (3, 7)


def test_wrong_return_type_fails_the_batch(job: Job) -> None:
    """run() returning a dict fails the mini-batch with a message naming the type."""
    ran = job(
        "wrong_type",
        [list(range(6))],
        mini_batch_size=3,
        run_max_try=1,
        output_action="summary_only",
    )
    s = ran.summary
    assert s.status == "completed"
    assert (s.mini_batches_failed, s.items_failed, s.items_succeeded) == (2, 6, 0)
    records = ran.failures()
    assert len(records) == 2
    for record in records:
        assert record["error_type"] == "TypeError"
        assert "dict" in record["message"]
        assert "must return a list" in record["message"]


def test_short_results_count_missing_items_as_failed(job: Job) -> None:
    """run() returning fewer elements than items counts the difference as failed items;
    the mini-batches fail only while error_threshold is set (issue 9)."""
    ran = job("short", [[f"i{n}" for n in range(10)]], mini_batch_size=3)
    s = ran.summary
    assert s.status == "completed"
    assert (s.items_total, s.items_succeeded, s.items_failed) == (10, 6, 4)
    assert (s.mini_batches_succeeded, s.mini_batches_failed) == (4, 0)
    assert ran.rows() == ["i0", "i1", "i3", "i4", "i6", "i7"]
    records = sorted(ran.failures(), key=lambda r: r["mini_batch_index"])
    assert [r["kind"] for r in records] == ["short_result"] * 4
    assert "returned 2 elements for 3 items" in records[0]["message"]
    strict = job(
        "short", [["a", "b", "c"]], mini_batch_size=3, error_threshold=5
    ).summary
    assert (strict.mini_batches_succeeded, strict.mini_batches_failed) == (0, 1)


def test_every_item_failing_raises_job_error(make_job: MakeJob) -> None:
    """An append_row job whose every item fails ends with JobError, status "failed"."""
    step = make_job(
        "raises", [["bad1", "bad2", "bad3"]], mini_batch_size=1, run_max_try=1
    )
    with pytest.raises(aprs.JobError) as info:
        step.run()
    summary = info.value.summary
    assert summary is not None
    assert summary.status == "failed"
    assert summary.stop_reason == "no_successful_items"
    assert (summary.items_failed, summary.items_succeeded) == (3, 0)
    out = Path(step.output)
    assert read_job_result(out)["status"] == "failed"
    assert len(read_failures(out)) == 3
    assert not (out / "parallel_run_step.txt").exists()


# -- what the script sees -------------------------------------------------------------------


def test_arguments_and_environment_reach_the_script(job: Job) -> None:
    """arguments reach init()'s argparse; environment_variables reach the workers."""
    ran = job(
        "args_env",
        [["a", "b", "c"]],
        mini_batch_size=2,
        arguments=["--greeting", "hello"],
        environment_variables={"APRS_TEST_VALUE": "v1"},
    )
    assert ran.rows() == ["hello:v1:a", "hello:v1:b", "hello:v1:c"]


def test_output_path_environment_variable(job: Job) -> None:
    """Workers see AZUREML_BI_OUTPUT_PATH = the step's output directory."""
    ran = job(
        "env_probe",
        [["AZUREML_BI_OUTPUT_PATH", "APRS_TEST_VALUE"]],
        environment_variables={"APRS_TEST_VALUE": "x=y"},
    )
    assert ran.rows() == [f"AZUREML_BI_OUTPUT_PATH={ran.out}", "APRS_TEST_VALUE=x=y"]


def test_native_thread_pools_get_each_workers_share_of_the_cores(
    job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BLAS / OpenMP pools are sized to cores // workers unless the job's
    environment_variables or the parent's environment set them (joblib's rule)."""
    monkeypatch.setenv("MKL_NUM_THREADS", "5")
    names = ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"]
    ran = job(
        "env_probe",
        [names],
        process_count_per_node=2,
        environment_variables={"OMP_NUM_THREADS": "3"},
    )
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    assert ran.rows() == [
        f"OPENBLAS_NUM_THREADS={share}",
        "OMP_NUM_THREADS=3",
        "MKL_NUM_THREADS=5",
    ]


def test_init_once_per_worker_and_shutdown_runs(tmp_path: Path, job: Job) -> None:
    """init() runs once per worker process (not per mini-batch); shutdown() runs in each."""
    marks = tmp_path / "marks"
    marks.mkdir()
    ran = job(
        "counting",
        [list(range(40))],
        mini_batch_size=2,
        environment_variables={"COUNTING_DIR": str(marks)},
    )
    assert ran.summary.items_succeeded == 40

    def pids(name: str) -> Counter[int]:
        return Counter(int(p) for p in (marks / name).read_text().split())

    inits, runs, shutdowns = pids("init.log"), pids("run.log"), pids("shutdown.log")
    assert sum(runs.values()) == 20
    assert 1 <= len(inits) <= 2  # a worker still starting when the job ends is stopped
    assert set(inits.values()) == {1}, "init() ran more than once in a process"
    assert set(runs) <= set(inits), "run() in a process where init() did not run"
    assert set(shutdowns.values()) == {1}, "shutdown() ran more than once in a process"
    assert set(runs) <= set(shutdowns), "a worker that ran batches skipped shutdown()"


def test_user_output_goes_to_log_files(tmp_path: Path, job: Job) -> None:
    """What the script prints goes to per-worker files under <output>/logs/user/."""
    marks = tmp_path / "marks"
    marks.mkdir()
    ran = job(
        "counting",
        [list(range(9))],
        mini_batch_size=2,
        environment_variables={"COUNTING_DIR": str(marks)},
    )
    user = ran.out / "logs" / "user"
    stdout_files = sorted((user / "stdout").iterdir())
    stderr_files = sorted((user / "stderr").iterdir())
    assert {p.name for p in stdout_files} <= {
        "worker000.stdout.txt",
        "worker001.stdout.txt",
    }
    assert {p.name for p in stderr_files} <= {
        "worker000.stderr.txt",
        "worker001.stderr.txt",
    }
    printed = "".join(p.read_text() for p in stdout_files).splitlines()
    assert sorted(printed) == ["run of 1 items"] + ["run of 2 items"] * 4
    inits = (marks / "init.log").read_text().split()
    logged = "".join(p.read_text() for p in stderr_files)
    assert all(f"init in {pid}" in logged for pid in inits)


# -- in-memory inputs ------------------------------------------------------------------------


def test_list_input(job: Job) -> None:
    """A list input: items reach run() in order."""
    ran = job("echo", [["a", "b", "c", "d", "e"]], mini_batch_size=2)
    assert ran.rows() == ["a", "b", "c", "d", "e"]


def test_generator_input(job: Job) -> None:
    """A generator input is consumed and every item is written once, in order."""

    def gen() -> Iterator[str]:
        for i in range(13):
            yield f"g{i}"

    ran = job("echo", [gen()], mini_batch_size=5)
    assert ran.rows() == [f"g{i}" for i in range(13)]
    assert ran.summary.mini_batches_total == 3


async def agen(n: int) -> AsyncIterator[str]:
    for i in range(n):
        yield f"a{i}"


def test_async_generator_input(job: Job) -> None:
    """An async generator input works through the blocking run()."""
    ran = job("echo", [agen(7)], mini_batch_size=3)
    assert ran.rows() == [f"a{i}" for i in range(7)]
    assert ran.summary.mini_batches_total == 3


async def test_arun_in_async_test(make_job: MakeJob) -> None:
    """await step.arun() runs the job inside a running event loop, async input included."""
    step = make_job("echo", [agen(9)], mini_batch_size=2)
    summary = await step.arun()
    assert summary.status == "completed"
    assert summary.items_succeeded == 9
    assert summary.output_file is not None
    text = await anyio.Path(summary.output_file).read_text()
    assert text.split() == [f"a{i}" for i in range(9)]


async def test_arun_with_file_input(tmp_path: Path, make_job: MakeJob) -> None:
    """arun() with file inputs gives the same rows as run() would."""
    names = ten_files(tmp_path / "data")
    step = make_job(
        "batch_index",
        [aprs.FileDataset.from_files(tmp_path / "data")],
        mini_batch_size=4,
    )
    summary = await step.arun()
    assert summary.output_file is not None
    text = await anyio.Path(summary.output_file).read_text()
    assert text.splitlines() == batch_rows([4, 4, 2], names)


def test_empty_iterable_is_an_input_error(make_job: MakeJob) -> None:
    """An iterable that yields nothing is a usage error, not a silent empty success."""
    with pytest.raises(aprs.InputError):
        make_job("echo", [iter([])]).run()


# -- summary and job_result.json --------------------------------------------------------------


def test_job_summary_fields(job: Job) -> None:
    """Every JobSummary field of a clean job has the value the job implies."""
    ran = job("echo", [list(range(7))], mini_batch_size=3)
    s = ran.summary
    assert isinstance(s, aprs.JobSummary)
    expected = {
        "status": "completed",
        "stop_reason": "completed",
        "message": "",
        "mini_batches_total": 3,
        "mini_batches_succeeded": 3,
        "mini_batches_failed": 0,
        "items_total": 7,
        "items_succeeded": 7,
        "items_failed": 0,
        "retries": 0,
        "output_dir": str(ran.out),
        "output_file": str(ran.out / "parallel_run_step.txt"),
        "reused": False,
        "resumed_from_batch": 0,
        "workers": 2,
        "worker_crashes": 0,
        "worker_timeouts": 0,
        "items_isolated": 0,
    }
    got = msgspec.structs.asdict(s)
    assert {k: got[k] for k in expected} == expected
    assert set(got) == {*expected, "elapsed_s", "peak_reorder_window"}
    assert s.elapsed_s >= 0
    assert 0 <= s.peak_reorder_window < 3
    assert "status: completed" in s.render()


def test_job_result_json(job: Job) -> None:
    """<output>/logs/job_result.json holds the returned summary, field for field."""
    ran = job("raises", [["a", "bad", "c"]], mini_batch_size=1, run_max_try=1)
    result = ran.job_result()
    assert result == msgspec.to_builtins(ran.summary)
    assert result["status"] == "completed"
    assert (result["items_succeeded"], result["items_failed"]) == (2, 1)
    assert result["output_file"] == str(ran.out / "parallel_run_step.txt")


# -- construction rules ------------------------------------------------------------------------


def config() -> aprs.ParallelRunConfig:
    return aprs.ParallelRunConfig(entry_script="score.py")


def construct(**kwargs: Any) -> aprs.ParallelRunStep:
    values: dict[str, Any] = {
        "name": "good-name",
        "parallel_run_config": config(),
        "inputs": [["a"]],
    }
    values.update(kwargs)
    return aprs.ParallelRunStep(**values)


@pytest.mark.parametrize(
    "name",
    [
        "ab",
        "Upper",
        "has_underscore",
        "-leading-dash",
        "trailing-dash-",
        "1starts-digit",
        "a" * 33,
        "",
        "with space",
        None,
        123,
    ],
)
def test_invalid_step_names(name: Any) -> None:
    """Step names break Azure's rule -> ConfigError at construction."""
    with pytest.raises(aprs.ConfigError, match="step `name`"):
        construct(name=name)


@pytest.mark.parametrize("name", ["abc", "score-digits", "a1-b2", "a" * 32])
def test_valid_step_names(name: str) -> None:
    """Names of 3-32 lowercase letters, digits and dashes are accepted."""
    assert construct(name=name).name == name


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        pytest.param(
            ["positional", "--x"],
            "first argument must be a keyword",
            id="first-not-keyword",
        ),
        pytest.param(
            ["--output", "/tmp/x"], "reserved name --output", id="reserved-output"
        ),
        pytest.param(
            ["--x", {"a": 1}], "`arguments[1]` must be a str", id="dict-value"
        ),
        pytest.param("--x 1", "must be a list", id="string-not-list"),
    ],
)
def test_argument_rules(arguments: Any, fragment: str) -> None:
    """arguments must be keyword-style and avoid reserved names -> ConfigError."""
    with pytest.raises(aprs.ConfigError, match=re.escape(fragment)):
        construct(arguments=arguments)


def test_arguments_are_stringified_and_runtime_flags_warned() -> None:
    """Numbers and paths become strings; a known Azure runtime flag gives a warning."""
    step = construct(arguments=["--n", 3, "--p", Path("/x/y"), "--nice", "5"])
    assert step.arguments == ["--n", "3", "--p", "/x/y", "--nice", "5"]
    assert len(step.warnings) == 1
    assert "--nice" in step.warnings[0]


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        pytest.param({"inputs": []}, aprs.ConfigError, "inputs is empty", id="empty"),
        pytest.param(
            {"inputs": "data/"}, aprs.ConfigError, "must be a list", id="string"
        ),
        pytest.param(
            {"inputs": ["data/"]},
            aprs.InputError,
            "FileDataset.from_files",
            id="bare-path",
        ),
        pytest.param(
            {"inputs": [aprs.FileDataset.from_files("x"), ["a"]]},
            aprs.ConfigError,
            "one type",
            id="mixed",
        ),
        pytest.param(
            {"parallel_run_config": {"entry_script": "score.py"}},
            aprs.ConfigError,
            "must be a ParallelRunConfig",
            id="config-dict",
        ),
        pytest.param(
            {
                "parallel_run_config": aprs.ParallelRunConfig(
                    entry_script="score.py", mini_batch_size="1MB"
                )
            },
            aprs.ConfigError,
            "only applies to file inputs",
            id="bytes-for-items",
        ),
    ],
)
def test_construction_rules(
    kwargs: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    """Invalid inputs or config are rejected when the step is built, naming the problem."""
    with pytest.raises(error, match=re.escape(fragment)):
        construct(**kwargs)


def test_missing_entry_script_is_an_entry_script_error(
    make_job: MakeJob, tmp_path: Path
) -> None:
    """A missing entry script fails at run() with EntryScriptError, before any worker."""
    step = make_job(str(tmp_path / "nope.py"), [["a"]])
    with pytest.raises(aprs.EntryScriptError, match="not found"):
        step.run()


def test_missing_file_input_is_an_input_error(
    make_job: MakeJob, tmp_path: Path
) -> None:
    """A FileDataset path that does not exist fails at run() with InputError."""
    step = make_job("echo", [aprs.FileDataset.from_files(tmp_path / "missing")])
    with pytest.raises(aprs.InputError, match="does not exist"):
        step.run()


def test_usage_errors_share_a_base() -> None:
    """Usage errors are AprsError subclasses; ConfigError is also a ValueError."""
    assert issubclass(aprs.ConfigError, aprs.UsageError)
    assert issubclass(aprs.ConfigError, ValueError)
    assert issubclass(aprs.InputError, aprs.UsageError)
    assert issubclass(aprs.JobError, aprs.AprsError)


# -- partition_keys ----------------------------------------------------------------------


def _sales() -> list[dict[str, Any]]:
    stores = ["s2", "s1", "s2", "s1", "s3", "s2"]
    brands = ["b", "a", "b", "b", "a", "a"]
    return [
        {"id": i, "store": s, "brand": b}
        for i, (s, b) in enumerate(zip(stores, brands, strict=True))
    ]


def test_partition_keys_make_one_mini_batch_per_key_combination(
    tmp_path: Path, script: Callable[[str], str]
) -> None:
    """partition_keys group mapping items by their values; run() sees partition_key_value."""
    cfg = aprs.ParallelRunConfig(
        entry_script=script("partition_probe"),
        partition_keys=["store", "brand"],
        process_count_per_node=2,
    )
    out = tmp_path / "out"
    summary = aprs.ParallelRunStep(
        name="keys", parallel_run_config=cfg, inputs=[iter(_sales())], output=str(out)
    ).run()
    assert (summary.mini_batches_total, summary.items_succeeded) == (5, 6)
    assert (out / "parallel_run_step.txt").read_text().splitlines() == [
        "0|store=s2,brand=b|0",
        "0|store=s2,brand=b|2",
        "1|store=s1,brand=a|1",
        "2|store=s1,brand=b|3",
        "3|store=s3,brand=a|4",
        "4|store=s2,brand=a|5",
    ]


def test_partition_keys_reject_items_without_the_key(
    tmp_path: Path, script: Callable[[str], str]
) -> None:
    """An item that lacks a partition key is an InputError naming the item and the key."""
    cfg = aprs.ParallelRunConfig(
        entry_script=script("partition_probe"),
        partition_keys=["store"],
        process_count_per_node=1,
    )
    items = [{"id": 0, "store": "a"}, {"id": 1}]
    step = aprs.ParallelRunStep(
        name="keys", parallel_run_config=cfg, inputs=[items], output=str(tmp_path / "o")
    )
    with pytest.raises(aprs.InputError, match="Item 1 has no key 'store'"):
        step.run()


def test_partition_keys_not_in_file_paths_is_a_config_error(
    tmp_path: Path, script: Callable[[str], str]
) -> None:
    """partition_keys with files whose paths hold no such key: a message and the fix."""
    (tmp_path / "f.txt").write_text("x")
    cfg = aprs.ParallelRunConfig(
        entry_script=script("partition_probe"), partition_keys=["store"]
    )
    step = aprs.ParallelRunStep(
        name="keys",
        parallel_run_config=cfg,
        inputs=[aprs.FileDataset.from_files(str(tmp_path))],
        output=tmp_path / "out",
    )
    with pytest.raises(aprs.ConfigError, match="has no such parts in its path"):
        step.run()


def test_input_generator_that_raises_stops_with_input_error(
    tmp_path: Path, script: Callable[[str], str]
) -> None:
    """A generator input that raises mid-way ends the job with InputError (exit 2), and the
    rows of the mini-batches that finished before are kept in the partial output."""

    def items() -> Iterator[int]:
        yield from range(5)
        raise OSError("the source went away")

    cfg = aprs.ParallelRunConfig(
        entry_script=script("echo"), mini_batch_size=1, process_count_per_node=1
    )
    out = tmp_path / "out"
    step = aprs.ParallelRunStep(
        name="gen", parallel_run_config=cfg, inputs=[items()], output=str(out)
    )
    with pytest.raises(aprs.InputError, match="OSError: the source went away"):
        step.run()
    result = read_job_result(out)
    assert result["status"] == "failed" and result["stop_reason"] == "input_error"
    rows = (out / "parallel_run_step.txt.partial").read_text().splitlines()
    assert rows == [str(i) for i in range(len(rows))]
