"""Azure runtime flags among the script's arguments set the config or warn (issue 9)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import aprs
from aprs._runtime_flags import LOCAL_RUNTIME_FLAGS, split_runtime_flags

from .conftest import SCRIPTS, cli, numbered_files


def _step(
    tmp_path: Path, arguments: list[object], **config: object
) -> aprs.ParallelRunStep:
    cfg = aprs.ParallelRunConfig(entry_script=str(SCRIPTS / "model_paths.py"), **config)
    return aprs.ParallelRunStep(
        name="flags",
        parallel_run_config=cfg,
        inputs=[aprs.FileDataset.from_files(str(numbered_files(tmp_path / "d", 1)))],
        output=str(tmp_path / "out"),
        arguments=arguments,
    )


def test_flags_with_a_local_meaning_set_the_config(tmp_path: Path) -> None:
    step = _step(
        tmp_path,
        [
            "--names", "a", "--error_threshold", "2.5", "--mini_batch_error_threshold=4",
            "--allowed_failed_percent", "30", "--run_invocation_timeout", "90",
            "--run_max_try", "5", "--mini_batch_size", "7", "--logging_level", "DEBUG",
            "--process_count_per_node", "3", "--task_overhead_timeout", "1200",
        ],
    )  # fmt: skip
    cfg = step.config
    assert cfg.error_threshold == 3  # Azure's driver rounds a float up
    assert cfg.allowed_failed_count == 4
    assert cfg.allowed_failed_percent == 30
    assert cfg.run_invocation_timeout == 90 and cfg.run_max_try == 5
    assert cfg.mini_batch_size == 7 and cfg.logging_level == "DEBUG"
    assert cfg.process_count_per_node == 3
    # the others stay for the script, with one warning each
    assert step.arguments == ["--names", "a", "--task_overhead_timeout", "1200"]
    assert len(step.warnings) == 1 and "--task_overhead_timeout" in step.warnings[0]


def test_a_flag_overriding_a_set_value_leaves_a_note(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="aprs.step"):
        step = _step(
            tmp_path, ["--x", "1", "--error_threshold", "9"], error_threshold=5
        )
    assert step.config.error_threshold == 9
    notes = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("--error_threshold 9" in n and "error_threshold=5" in n for n in notes)


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (["--x", "1", "--run_max_try"], "has no value"),
        (["--x", "1", "--run_max_try", "many"], "not a valid run_max_try"),
        (["--x", "1", "--run_max_try", "0"], "--run_max_try 0"),
        (["--x", "1", "--output", "o"], "reserved name --output"),
    ],
)
def test_bad_flag_values_and_output_stay_errors(
    tmp_path: Path, arguments: list[object], fragment: str
) -> None:
    with pytest.raises(aprs.ConfigError, match=fragment):
        _step(tmp_path, arguments)


def test_every_azure_runtime_flag_is_accepted() -> None:
    """None of Azure's flags is an error any more; the dashed spelling works too."""
    from aprs._config import KNOWN_RUNTIME_FLAGS, validate_arguments

    for flag in sorted(KNOWN_RUNTIME_FLAGS | set(LOCAL_RUNTIME_FLAGS)):
        rest, overrides = split_runtime_flags([f"--{flag.replace('_', '-')}", "1"])
        if overrides:
            assert not rest
        else:
            assert validate_arguments(rest)[0] == rest


def test_cli_flags_in_script_arguments_win_over_the_config_file(tmp_path: Path) -> None:
    """A v2-style argument list: the flag sets the threshold, the file's value loses."""
    data = numbered_files(tmp_path / "data", 4)
    (tmp_path / "job.yaml").write_text(
        f"entry_script: {SCRIPTS / 'raises_on_odd.py'}\n"
        "mini_batch_size: 1\nerror_threshold: 0\nrun_max_try: 1\n"
        "process_count_per_node: 1\n"
    )
    done = cli(
        "run", "--config", "job.yaml", "--input", data, "--output", tmp_path / "out",
        "--", "--error_threshold", "-1", "--copy_logs_to_parent", "True", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--error_threshold -1" in done.stderr and "error_threshold=0" in done.stderr
    assert "--copy_logs_to_parent" in done.stderr  # accepted with a warning
    rows = (tmp_path / "out" / "parallel_run_step.txt").read_text().splitlines()
    assert rows == ["f02.txt", "f04.txt"]


def test_a_misspelt_runtime_flag_draws_a_did_you_mean_warning(tmp_path: Path) -> None:
    """azureml-examples' 1g parallel pipeline passed --resource_monitor_interva for years
    (Azure ignored it silently); aprs passes it on too, but says what it looks like.
    The script's own flags, even Azure-sounding ones, draw nothing."""
    step = _step(
        tmp_path,
        [
            "--model", "m", "--resource_monitor_interva", "20", "--error_threshld",
            "5", "--job_output_path", "o", "--batch_size", "4",
        ],
    )  # fmt: skip
    assert step.arguments[2:4] == ["--resource_monitor_interva", "20"]
    typos = [w for w in step.warnings if "a typo?" in w]
    assert len(typos) == 2 and len(step.warnings) == 2
    assert "--resource_monitor_interva in the arguments" in typos[0]
    assert "looks like --resource_monitor_interval" in typos[0]
    assert "looks like --error_threshold" in typos[1]
    assert step.config.error_threshold == -1  # a misspelt flag sets nothing


def test_an_azure_flag_spelt_right_is_no_typo() -> None:
    """The v2 names Azure reads under other keys (--score_run_timeout) are in the list the
    typo check compares against; spelt exactly, they draw no "did you mean" warning."""
    from aprs._config import validate_arguments

    argv, warnings = validate_arguments(
        ["--score_run_timeout", "5", "--mini_batch_error_threshold", "2"]
    )
    assert argv == ["--score_run_timeout", "5", "--mini_batch_error_threshold", "2"]
    assert not [w for w in warnings if "a typo?" in w]
