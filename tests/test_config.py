"""Validation table for aprs._config: every rule, its error fragment, and valid inputs."""

from __future__ import annotations

import math
import pathlib
from typing import Any

import msgspec
import pytest

from aprs._config import (
    DEFAULT_APPEND_ROW_FILE_NAME,
    KNOWN_RUNTIME_FLAGS,
    RESERVED_ARGUMENTS,
    MiniBatchSpec,
    ParallelRunConfig,
    validate_arguments,
    validate_step_name,
)
from aprs._errors import ConfigError, UsageError

WHERE = "jobs/score.yml"


def make(**kwargs: Any) -> ParallelRunConfig:
    """A config with a valid entry script plus ``kwargs``."""
    return ParallelRunConfig(**{"entry_script": "score.py", **kwargs})


def row(kwargs: dict[str, Any], field: str, shown: str, id: str) -> Any:
    """One row of the invalid-input table: kwargs, field named, value fragment shown."""
    return pytest.param(kwargs, field, shown, id=id)


# --- one constructor rule per row ------------------------------------------------------

INVALID = [
    row({"entry_script": ""}, "entry_script", "`''`", "entry_script-empty"),
    row({"entry_script": "src/score.txt"}, "entry_script", "`'src/score.txt'`", "entry_script-not-py"),
    row({"entry_script": "score-v2"}, "entry_script", "`'score-v2'`", "entry_script-bad-module"),
    row({"entry_script": "my score"}, "entry_script", "`'my score'`", "entry_script-space"),
    row({"entry_script": ".py"}, "entry_script", "`'.py'`", "entry_script-only-suffix"),
    row({"entry_script": None}, "entry_script", "`None`", "entry_script-none"),
    row({"entry_script": 5}, "entry_script", "`5`", "entry_script-int"),
    row({"source_directory": ""}, "source_directory", "`''`", "source_directory-empty"),
    row({"source_directory": 3}, "source_directory", "`3`", "source_directory-int"),
    row({"environment": " "}, "environment", "`' '`", "environment-blank"),
    row({"environment": ["py"]}, "environment", "`['py']` (list)", "environment-list"),
    row({"description": 5}, "description", "`5`", "description-int"),
    row({"mini_batch_size": 0}, "mini_batch_size", "`0`", "mini_batch_size-zero"),
    row({"mini_batch_size": -1}, "mini_batch_size", "`-1`", "mini_batch_size-negative"),
    row({"mini_batch_size": "0"}, "mini_batch_size", "`'0'`", "mini_batch_size-zero-str"),
    row({"mini_batch_size": "0KB"}, "mini_batch_size", "`'0KB'`", "mini_batch_size-zero-kb"),
    row({"mini_batch_size": "10 MB"}, "mini_batch_size", "`'10 MB'`", "mini_batch_size-space"),
    row({"mini_batch_size": "10B"}, "mini_batch_size", "`'10B'`", "mini_batch_size-bare-b"),
    row({"mini_batch_size": "1TB"}, "mini_batch_size", "`'1TB'`", "mini_batch_size-tb"),
    row({"mini_batch_size": "1.5MB"}, "mini_batch_size", "`'1.5MB'`", "mini_batch_size-dot"),
    row({"mini_batch_size": "10MBMB"}, "mini_batch_size", "`'10MBMB'`", "mini_batch_size-2-units"),
    row({"mini_batch_size": ""}, "mini_batch_size", "`''`", "mini_batch_size-empty"),
    row({"mini_batch_size": True}, "mini_batch_size", "`True` (bool)", "mini_batch_size-bool"),
    row({"mini_batch_size": 2.0}, "mini_batch_size", "`2.0`", "mini_batch_size-float"),
    row({"error_threshold": -2}, "error_threshold", "`-2`", "error_threshold-below-minus-1"),
    row({"error_threshold": "3"}, "error_threshold", "`'3'`", "error_threshold-str"),
    row({"error_threshold": True}, "error_threshold", "`True` (bool)", "error_threshold-bool"),
    row({"error_threshold": 1.5}, "error_threshold", "`1.5`", "error_threshold-float"),
    row({"error_threshold": None}, "error_threshold", "`None`", "error_threshold-none"),
    row({"allowed_failed_count": -2}, "allowed_failed_count", "`-2`", "allowed_failed_count-low"),
    row({"allowed_failed_count": "1"}, "allowed_failed_count", "`'1'`", "allowed_failed_count-str"),
    row({"allowed_failed_count": False}, "allowed_failed_count", "`False`", "allowed_failed_count-bool"),
    row({"allowed_failed_percent": -0.1}, "allowed_failed_percent", "`-0.1`", "percent-negative"),
    row({"allowed_failed_percent": 100.5}, "allowed_failed_percent", "`100.5`", "percent-above-100"),
    row({"allowed_failed_percent": math.nan}, "allowed_failed_percent", "`nan`", "percent-nan"),
    row({"allowed_failed_percent": "50"}, "allowed_failed_percent", "`'50'`", "percent-str"),
    row({"allowed_failed_percent": True}, "allowed_failed_percent", "`True`", "percent-bool"),
    row({"output_action": "APPEND_ROW"}, "output_action", "`'APPEND_ROW'`", "output_action-case"),
    row({"output_action": "file"}, "output_action", "`'file'`", "output_action-legacy-file"),
    row({"output_action": None}, "output_action", "`None`", "output_action-none"),
    row({"append_row_file_name": ""}, "append_row_file_name", "`''`", "file_name-empty"),
    row({"append_row_file_name": "/abs.txt"}, "append_row_file_name", "`'/abs.txt'`", "file_name-absolute"),
    row({"append_row_file_name": "../x.txt"}, "append_row_file_name", "`'../x.txt'`", "file_name-parent"),
    row({"append_row_file_name": "a/../b"}, "append_row_file_name", "`'a/../b'`", "file_name-inner-parent"),
    row({"append_row_file_name": "a//b"}, "append_row_file_name", "`'a//b'`", "file_name-empty-part"),
    row({"append_row_file_name": "dir/"}, "append_row_file_name", "`'dir/'`", "file_name-trailing-slash"),
    row({"append_row_file_name": "."}, "append_row_file_name", "`'.'`", "file_name-dot"),
    row({"append_row_file_name": "C:\\x.txt"}, "append_row_file_name", "C:", "file_name-drive"),
    row({"append_row_file_name": "\\x.txt"}, "append_row_file_name", "x.txt", "file_name-backslash-abs"),
    row({"append_row_file_name": 3}, "append_row_file_name", "`3`", "file_name-int"),
    row({"process_count_per_node": 0}, "process_count_per_node", "`0`", "process_count-zero"),
    row({"process_count_per_node": "4"}, "process_count_per_node", "`'4'`", "process_count-str"),
    row({"process_count_per_node": True}, "process_count_per_node", "`True`", "process_count-bool"),
    row({"node_count": 0}, "node_count", "`0`", "node_count-zero"),
    row({"node_count": "1"}, "node_count", "`'1'`", "node_count-str"),
    row({"node_count": 2}, "node_count", "`2`", "node_count-multi-on-local"),
    row({"run_invocation_timeout": 0}, "run_invocation_timeout", "`0`", "timeout-zero"),
    row({"run_invocation_timeout": -1.0}, "run_invocation_timeout", "`-1.0`", "timeout-negative"),
    row({"run_invocation_timeout": 259200.5}, "run_invocation_timeout", "`259200.5`", "timeout-above-3-days"),
    row({"run_invocation_timeout": math.inf}, "run_invocation_timeout", "`inf`", "timeout-inf"),
    row({"run_invocation_timeout": math.nan}, "run_invocation_timeout", "`nan`", "timeout-nan"),
    row({"run_invocation_timeout": "60"}, "run_invocation_timeout", "`'60'`", "timeout-str"),
    row({"run_invocation_timeout": True}, "run_invocation_timeout", "`True`", "timeout-bool"),
    row({"run_max_try": 0}, "run_max_try", "`0`", "run_max_try-zero"),
    row({"run_max_try": "3"}, "run_max_try", "`'3'`", "run_max_try-str"),
    row({"run_max_try": True}, "run_max_try", "`True` (bool)", "run_max_try-bool"),
    row({"run_max_try": 1.0}, "run_max_try", "`1.0`", "run_max_try-float"),
    row({"logging_level": "verbose"}, "logging_level", "`'verbose'`", "logging_level-unknown"),
    row({"logging_level": ""}, "logging_level", "`''`", "logging_level-empty"),
    row({"logging_level": 10}, "logging_level", "`10`", "logging_level-int"),
    row({"environment_variables": {"": "x"}}, "environment_variables", "`{'': 'x'}`", "env-empty-name"),
    row({"environment_variables": {"A=B": "1"}}, "environment_variables", "A=B", "env-equals-in-name"),
    row({"environment_variables": {"A": 1}}, "environment_variables", "`{'A': 1}`", "env-int-value"),
    row({"environment_variables": {1: "x"}}, "environment_variables", "`{1: 'x'}`", "env-int-name"),
    row({"environment_variables": ["A=1"]}, "environment_variables", "`['A=1']` (list)", "env-list"),
    row({"partition_keys": []}, "partition_keys", "`[]`", "partition_keys-empty"),
    row({"partition_keys": [""]}, "partition_keys", "`['']`", "partition_keys-empty-key"),
    row({"partition_keys": ["a", "a"]}, "partition_keys", "`['a', 'a']`", "partition_keys-duplicate"),
    row({"partition_keys": "Store"}, "partition_keys", "`'Store'`", "partition_keys-str"),
    row({"partition_keys": [1]}, "partition_keys", "`[1]`", "partition_keys-int-key"),
    row({"compute_target": "cluster"}, "compute_target", "`'cluster'`", "compute_target-unknown"),
    row({"compute_target": "RAY"}, "compute_target", "`'RAY'`", "compute_target-case"),
    row({"compute_target": "ray://"}, "compute_target", "`'ray://'`", "compute_target-no-host"),
    row({"compute_target": "ray://h:0"}, "compute_target", "`'ray://h:0'`", "compute_target-port-0"),
    row({"compute_target": "ray://h:70000"}, "compute_target", "`'ray://h:70000'`", "compute_target-port-big"),
    row({"compute_target": "http://h:1"}, "compute_target", "`'http://h:1'`", "compute_target-http"),
    row({"compute_target": None}, "compute_target", "`None`", "compute_target-none"),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "field", "shown"), INVALID)
def test_invalid_value_names_field_value_and_fix(kwargs, field, shown):
    """One bad value gives one ConfigError naming the field, the value and a fix."""
    with pytest.raises(ConfigError) as info:
        make(**kwargs)
    message = str(info.value)
    assert info.value.problems == [message]
    assert message.startswith(f"`{field}`")
    assert shown in message
    assert "got " in message and ". " in message.split("got ", 1)[1]  # a fix follows


CROSS_FIELD = [
    pytest.param(
        {"partition_keys": ["Store"], "mini_batch_size": "1MB"},
        ["`partition_keys`", "`mini_batch_size`", "`['Store']`", "`'1MB'`"],
        id="partition_keys-and-mini_batch_size",
    ),
    pytest.param(
        {"output_action": "summary_only", "append_row_file_name": "out.txt"},
        ["`append_row_file_name`", "`'out.txt'`", 'output_action="summary_only"'],
        id="append_row_file_name-with-summary_only",
    ),
    pytest.param(
        {"node_count": 4},
        ["`node_count`", "`4`", '"local"', 'compute_target="ray"', "ray://"],
        id="node_count-needs-ray",
    ),
]


@pytest.mark.parametrize(("kwargs", "fragments"), CROSS_FIELD)
def test_cross_field_rule(kwargs, fragments):
    """Rules that involve two fields name both and say which one to change."""
    with pytest.raises(ConfigError) as info:
        make(**kwargs)
    for fragment in fragments:
        assert fragment in str(info.value)


VALID = [
    pytest.param({"entry_script": "pkg.score"}, id="entry_script-module"),
    pytest.param({"entry_script": "score"}, id="entry_script-bare-module"),
    pytest.param({"entry_script": "src/score.py"}, id="entry_script-path"),
    pytest.param({"mini_batch_size": 1}, id="mini_batch_size-1"),
    pytest.param({"mini_batch_size": "1024"}, id="mini_batch_size-digits"),
    pytest.param({"mini_batch_size": "64KB"}, id="mini_batch_size-kb"),
    pytest.param({"mini_batch_size": "10mb"}, id="mini_batch_size-lower"),
    pytest.param({"mini_batch_size": "1Gb"}, id="mini_batch_size-mixed-case"),
    pytest.param({"error_threshold": 0}, id="error_threshold-0"),
    pytest.param({"allowed_failed_count": -1}, id="allowed_failed_count-disabled"),
    pytest.param({"allowed_failed_percent": 0}, id="percent-0-int"),
    pytest.param({"allowed_failed_percent": 100}, id="percent-100"),
    pytest.param({"allowed_failed_percent": 12.5}, id="percent-float"),
    pytest.param({"output_action": "summary_only"}, id="summary_only"),
    pytest.param({"append_row_file_name": "sub/out.csv"}, id="file_name-subdir"),
    pytest.param({"process_count_per_node": 1}, id="process_count-1"),
    pytest.param({"node_count": 3, "compute_target": "ray"}, id="multi-node-ray"),
    pytest.param({"compute_target": "ray://10.0.0.1:10001"}, id="ray-address"),
    pytest.param({"compute_target": "ray://head"}, id="ray-address-default-port"),
    pytest.param({"compute_target": "ray://[::1]:10001"}, id="ray-address-ipv6"),
    pytest.param({"run_invocation_timeout": 0.5}, id="timeout-half-second"),
    pytest.param({"run_invocation_timeout": 259200}, id="timeout-max"),
    pytest.param({"run_max_try": 1}, id="run_max_try-1"),
    pytest.param({"logging_level": "debug"}, id="logging_level-lower"),
    pytest.param({"environment_variables": {"A": "1", "B_2": ""}}, id="env"),
    pytest.param({"partition_keys": ["Store", "Brand"]}, id="partition_keys"),
    pytest.param(
        {"environment": "/usr/bin/python3", "source_directory": "src"}, id="paths"
    ),
]


@pytest.mark.parametrize("kwargs", VALID)
def test_valid_values_are_accepted_unchanged(kwargs):
    """Valid values construct a config that stores them as given."""
    config = make(**kwargs)
    for name, value in kwargs.items():
        assert getattr(config, name) == value


def test_defaults_match_azure():
    """Only entry_script is required; the other defaults are Azure v1's."""
    config = ParallelRunConfig(entry_script="score.py")
    assert (
        config.to_dict()
        == {
            "entry_script": "score.py",
            "source_directory": None,
            "mini_batch_size": None,
            "mini_batch_rows": None,
            "error_threshold": -1,
            "allowed_failed_count": None,
            "allowed_failed_percent": None,
            "output_action": "append_row",
            "append_row_file_name": None,
            "process_count_per_node": None,
            "node_count": 1,
            "run_invocation_timeout": 60,
            "run_max_try": 3,
            "logging_level": "INFO",
            "environment_variables": None,
            "partition_keys": None,
            "description": None,
            "environment": None,
            "compute_target": "local",
            "models": None,  # aprs additions (issue 9): local models for Model.get_model_path
            "model_dir": None,
            "ray_address": None,  # issue 11: the Ray backend
            "worker_resources": None,
            "ray_node_wait": 60,
            "ship_inputs": False,
            "isolate_failures": False,  # issue 12: off keeps Azure's whole-batch failures
            "worker_start": None,  # issue 8: fork server by default ($APRS_WORKER_START)
        }
    )


def test_ray_settings() -> None:
    """Ray keys: resources parsed from CLI text, checked, and refused for local runs."""
    config = ParallelRunConfig.from_mapping(
        {
            "entry_script": "score.py",
            "compute_target": "ray",
            "node_count": 2,
            "worker_resources": "num_cpus=2,num_gpus=0.5,memory=1e9,accel=1",
        }
    )
    options = config.ray_options()
    assert (options.num_cpus, options.num_gpus, options.memory) == (2, 0.5, 10**9)
    assert options.resources == {"accel": 1} and options.address is None
    assert options.bundle(3) == {"CPU": 6, "GPU": 1.5, "memory": 3e9, "accel": 3}
    target = make(compute_target="ray://head:10001").ray_options()
    assert target.address == "ray://head:10001"
    with pytest.raises(ConfigError, match="`worker_resources` must map"):
        make(compute_target="ray", worker_resources={"num_cpus": -1})
    with pytest.raises(
        ConfigError, match='`ray_address` only applies to compute_target="ray"'
    ):
        make(ray_address="auto")
    shipped = ParallelRunConfig.from_mapping(
        {"entry_script": "s.py", "compute_target": "ray", "ship_inputs": "true"}
    )
    assert shipped.ray_options().ship_inputs is True
    with pytest.raises(ConfigError, match="`ship_inputs` must be true or false"):
        make(compute_target="ray", ship_inputs="yes")


def test_entry_script_is_required():
    """The constructor refuses a config without entry_script."""
    with pytest.raises(TypeError, match="entry_script"):
        ParallelRunConfig()  # type: ignore[call-arg]


def test_all_problems_are_reported_at_once():
    """Several bad fields give one ConfigError listing every problem, in field order."""
    with pytest.raises(ConfigError) as info:
        make(entry_script="", mini_batch_size=0, run_max_try="3", logging_level="x")
    error = info.value
    assert isinstance(error, ValueError) and isinstance(error, UsageError)
    assert len(error.problems) == 4
    message = str(error)
    assert "(4 problems)" in message
    fields = ["entry_script", "mini_batch_size", "run_max_try", "logging_level"]
    positions = [message.index(f"`{field}`") for field in fields]
    assert positions == sorted(positions)


def test_config_is_frozen():
    """A config cannot be changed after validation."""
    config = make()
    with pytest.raises(AttributeError):
        config.run_max_try = 0  # type: ignore[misc]


# --- derived values --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "default_count", "expected"),
    [
        pytest.param(None, 10, MiniBatchSpec("count", 10), id="none-default"),
        pytest.param(None, 1, MiniBatchSpec("count", 1), id="none-custom-default"),
        pytest.param(5, 10, MiniBatchSpec("count", 5), id="int"),
        pytest.param("10", 10, MiniBatchSpec("count", 10), id="digits"),
        pytest.param("64KB", 10, MiniBatchSpec("bytes", 65536), id="kb"),
        pytest.param("10MB", 10, MiniBatchSpec("bytes", 10 * 1024**2), id="mb"),
        pytest.param("1gb", 10, MiniBatchSpec("bytes", 1024**3), id="gb-lower"),
    ],
)
def test_mini_batch_spec(size, default_count, expected):
    """Ints and digit strings are item counts; KB/MB/GB strings are bytes (1024-based)."""
    assert make(mini_batch_size=size).mini_batch_spec(default_count) == expected


@pytest.mark.parametrize(
    ("configured", "cpus", "expected"),
    [(3, 8, 3), (None, 8, 8), (None, None, 1)],
    ids=["configured", "cpu-count", "cpu-count-unknown"],
)
def test_effective_process_count(monkeypatch, configured, cpus, expected):
    """process_count_per_node wins; otherwise os.cpu_count(), or 1 when it is unknown."""
    monkeypatch.setattr("os.cpu_count", lambda: cpus)
    assert make(process_count_per_node=configured).effective_process_count == expected


def test_effective_file_name_and_logging_level():
    """The append_row file name defaults to Azure's; the logging level is upper-cased."""
    assert make().effective_append_row_file_name == DEFAULT_APPEND_ROW_FILE_NAME
    assert DEFAULT_APPEND_ROW_FILE_NAME == "parallel_run_step.txt"
    assert make(append_row_file_name="o.txt").effective_append_row_file_name == "o.txt"
    assert make(logging_level="warning").effective_logging_level == "WARNING"


def test_to_dict_round_trips_and_copies():
    """to_dict() rebuilds an equal config and does not share mutable fields."""
    config = make(environment_variables={"A": "1"}, partition_keys=["k"])
    data = config.to_dict()
    assert ParallelRunConfig.from_mapping(data) == config
    data["environment_variables"]["A"] = "2"
    data["partition_keys"].append("x")
    assert config.environment_variables == {"A": "1"}
    assert config.partition_keys == ["k"]


def test_msgspec_decoding_validates():
    """Decoding JSON runs the same validation and rejects unknown fields."""
    config = msgspec.json.decode(
        b'{"entry_script": "s.py", "run_invocation_timeout": 0.5}',
        type=ParallelRunConfig,
    )
    assert config.run_invocation_timeout == 0.5
    assert (
        msgspec.json.decode(msgspec.json.encode(config), type=ParallelRunConfig)
        == config
    )
    with pytest.raises(msgspec.ValidationError, match="run_max_try"):
        msgspec.json.decode(
            b'{"entry_script": "s.py", "run_max_try": 0}', type=ParallelRunConfig
        )
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.json.decode(
            b'{"entry_script": "s.py", "nodes": 1}', type=ParallelRunConfig
        )


# --- from_mapping ----------------------------------------------------------------------


def test_from_mapping_coerces_numbers_written_as_strings():
    """Config files may quote numbers: "60" becomes 60 for int and float fields."""
    config = ParallelRunConfig.from_mapping(
        {
            "entry_script": "s.py",
            "run_max_try": "5",
            "error_threshold": " -1 ",
            "run_invocation_timeout": "0.5",
            "allowed_failed_percent": "10",
            "mini_batch_size": "10",
        }
    )
    assert config.run_max_try == 5
    assert config.error_threshold == -1
    assert config.run_invocation_timeout == 0.5
    assert config.allowed_failed_percent == 10.0
    assert config.mini_batch_size == "10"


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        pytest.param("mini_batch_sise", "mini_batch_size", id="typo"),
        pytest.param("run_max_tries", "run_max_try", id="plural"),
        pytest.param(
            "max_concurency_per_instance", "max_concurrency_per_instance", id="v2-typo"
        ),
        pytest.param(
            "retry_settings.max_retry", "retry_settings.max_retries", id="nested"
        ),
        pytest.param("zzz", None, id="no-close-match"),
    ],
)
def test_from_mapping_unknown_key_suggests_closest(key, suggestion):
    """An unknown key is named with the file, the valid keys and the closest one."""
    data: dict[str, Any] = {"entry_script": "s.py"}
    if key.startswith("retry_settings."):
        data["retry_settings"] = {key.split(".", 1)[1]: 3}
    else:
        data[key] = 3
    with pytest.raises(ConfigError) as info:
        ParallelRunConfig.from_mapping(data, where=WHERE)
    message = str(info.value)
    assert f"Unknown key `{key}` in {WHERE}" in message
    assert "Valid keys: " in message
    if suggestion is None:
        assert "Did you mean" not in message
    else:
        assert f"Did you mean `{suggestion}`?" in message


@pytest.mark.parametrize(
    ("data", "field", "expected"),
    [
        pytest.param({"max_concurrency_per_instance": 2}, "process_count_per_node", 2, id="max_concurrency_per_instance"),
        pytest.param({"mini_batch_error_threshold": 5}, "allowed_failed_count", 5, id="mini_batch_error_threshold"),
        pytest.param({"instance_count": 2, "compute_target": "ray"}, "node_count", 2, id="instance_count"),
        pytest.param({"code": "src"}, "source_directory", "src", id="code"),
        pytest.param({"retry_settings": {"max_retries": 4}}, "run_max_try", 4, id="retry_settings.max_retries"),
        pytest.param({"retry_settings": {"timeout": 30}}, "run_invocation_timeout", 30, id="retry_settings.timeout"),
        pytest.param({"retry_settings": {"max_retries": "2", "timeout": "0.5"}}, "run_invocation_timeout", 0.5, id="retry_settings-strings"),
    ],
)  # fmt: skip
def test_from_mapping_accepts_azure_v2_names(data, field, expected):
    """Azure v2 names map to the v1 fields (max_retries maps to run_max_try as-is)."""
    config = ParallelRunConfig.from_mapping({"entry_script": "s.py", **data})
    assert getattr(config, field) == expected


def test_from_mapping_names_the_alias_in_value_errors():
    """A bad value given under a v2 name names both the field and the key used."""
    with pytest.raises(ConfigError) as info:
        ParallelRunConfig.from_mapping(
            {"entry_script": "s.py", "retry_settings": {"max_retries": 0}}, where=WHERE
        )
    message = str(info.value)
    assert message.startswith(f"Invalid ParallelRunConfig in {WHERE}: ")
    assert "`run_max_try` (given as `retry_settings.max_retries`)" in message
    assert "`0`" in message


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        pytest.param({"instance_count": 1, "node_count": 1}, ["given twice", "`instance_count`", "`node_count`"], id="alias-and-field"),
        pytest.param({"retry_settings": 3}, ["`retry_settings` must be a mapping", "`3`"], id="retry_settings-not-mapping"),
        pytest.param({"run_max_try": "three"}, ["`run_max_try`", "`'three'`"], id="non-numeric-string"),
        pytest.param({"entry_script": None}, ["`entry_script` is required", "`None`"], id="entry_script-null"),
        pytest.param({1: "x"}, ["Unknown key `1` (int)"], id="non-string-key"),
    ],
)  # fmt: skip
def test_from_mapping_rejects(data, fragments):
    """Conflicting, malformed and unconvertible entries are reported with their key."""
    with pytest.raises(ConfigError) as info:
        ParallelRunConfig.from_mapping({"entry_script": "s.py", **data}, where=WHERE)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_from_mapping_requires_entry_script():
    """A file without entry_script says the key is required."""
    with pytest.raises(ConfigError, match="`entry_script` is required"):
        ParallelRunConfig.from_mapping({"run_max_try": 3}, where=WHERE)


def test_from_mapping_reports_keys_and_values_together():
    """Unknown keys and invalid values of one file come in one error."""
    with pytest.raises(ConfigError) as info:
        ParallelRunConfig.from_mapping(
            {"entry_script": "s.py", "nodes": 2, "run_max_try": 0, "logging_level": 1},
            where=WHERE,
        )
    assert len(info.value.problems) == 3
    assert f"Invalid ParallelRunConfig in {WHERE} (3 problems)" in str(info.value)


@pytest.mark.parametrize(
    "data", [["entry_script"], "entry_script: s.py", None], ids=["list", "str", "none"]
)
def test_from_mapping_needs_a_mapping(data):
    """A file whose top level is not a mapping is rejected with its type."""
    with pytest.raises(ConfigError, match="must be a mapping"):
        ParallelRunConfig.from_mapping(data, where=WHERE)


def test_from_mapping_accepts_every_field_name():
    """Every field of ParallelRunConfig is a valid key (the key list is complete)."""
    data = make(mini_batch_size=3, description="d", environment="python3").to_dict()
    assert set(data) == set(ParallelRunConfig.__struct_fields__)
    assert ParallelRunConfig.from_mapping(data).to_dict() == data


# --- step names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["abc", "score-step", "a1-b2", "a" * 32],
    ids=["short", "dashed", "digits", "max-length"],
)
def test_valid_step_names(name):
    """Names of 3-32 lowercase letters, digits and dashes starting with a letter pass."""
    assert validate_step_name(name) == name


@pytest.mark.parametrize(
    ("name", "example"),
    [
        pytest.param("My_Step", "my-step", id="upper-and-underscore"),
        pytest.param("ab", "ab-step", id="too-short"),
        pytest.param("a" * 33, "a" * 32, id="too-long"),
        pytest.param("1step", "step", id="starts-with-digit"),
        pytest.param("step-", "step", id="ends-with-dash"),
        pytest.param("has space", "has-space", id="space"),
        pytest.param("", "score", id="empty"),
        pytest.param(None, "score", id="none"),
        pytest.param(7, "score", id="int"),
    ],
)
def test_invalid_step_name_gives_rule_and_example(name, example):
    """A bad name is rejected with the rule and a valid name derived from it."""
    with pytest.raises(ConfigError) as info:
        validate_step_name(name)
    message = str(info.value)
    assert "3-32 lowercase letters, digits and dashes" in message
    assert f"`{name!r}`" in message
    assert f'for example to "{example}"' in message
    validate_step_name(example)  # the example itself is valid


# --- entry-script arguments ------------------------------------------------------------


def test_arguments_none_or_empty():
    """No arguments give an empty argv and no warnings."""
    assert validate_arguments(None) == ([], [])
    assert validate_arguments([]) == ([], [])


def test_arguments_are_converted_to_strings():
    """str, int, float, bool and paths become argv strings; order is kept."""
    argv, warnings = validate_arguments(
        ["-v", "--n", 3, "--f", 0.5, "--p", pathlib.PurePosixPath("/d/x"), "--b", True]
    )
    assert argv == ["-v", "--n", "3", "--f", "0.5", "--p", "/d/x", "--b", "True"]
    assert warnings == []


@pytest.mark.parametrize(
    "bad",
    [None, {}, ["x"], b"x", object()],
    ids=["none", "dict", "list", "bytes", "object"],
)
def test_arguments_reject_unconvertible_elements_with_index(bad):
    """Elements that are not str/int/float/path are rejected with their index."""
    with pytest.raises(
        ConfigError, match=r"`arguments\[1\]` must be a str, int, float or path"
    ):
        validate_arguments(["--x", bad])


@pytest.mark.parametrize("first", ["input.csv", 3], ids=["str", "int"])
def test_first_argument_must_be_a_keyword(first):
    """The first argument must start with "-", as Azure passes keyword arguments only."""
    with pytest.raises(
        ConfigError, match='The first argument must be a keyword starting with "-"'
    ):
        validate_arguments([first, "--x"])


@pytest.mark.parametrize("arguments", ["--a b", 5], ids=["str", "int"])
def test_arguments_must_be_a_list(arguments):
    """A single string (or any non-sequence) is rejected: one element per word."""
    with pytest.raises(ConfigError, match="must be a list"):
        validate_arguments(arguments)


@pytest.mark.parametrize(
    "spelling", ["--{}", "--{}=3", "--{dashed}"], ids=["flag", "equals", "dashes"]
)
@pytest.mark.parametrize("name", sorted(RESERVED_ARGUMENTS))
def test_reserved_arguments_are_rejected(name, spelling):
    """Reserved names, in any spelling, point to the ParallelRunConfig parameter."""
    arg = spelling.format(name, dashed=name.replace("_", "-"))
    with pytest.raises(ConfigError) as info:
        validate_arguments(["--x", "1", arg, "2"])
    message = str(info.value)
    assert f"`arguments[2]` `{arg!r}` uses the reserved name --{name}" in message
    fix = (
        "the step's output directory"
        if name == "output"
        else f"ParallelRunConfig({name}=...)"
    )
    assert f"Set {fix} instead" in message


@pytest.mark.parametrize(
    "spelling", ["--{}", "--{}=1", "--{dashed}"], ids=["flag", "equals", "dashes"]
)
@pytest.mark.parametrize(
    "flag", sorted(KNOWN_RUNTIME_FLAGS - {"append_row_dataframe_header"})
)
def test_runtime_flags_warn_and_pass_through(flag, spelling):
    """Azure runtime flags aprs does not implement warn and reach the script unchanged."""
    arg = spelling.format(flag, dashed=flag.replace("_", "-"))
    argv, warnings = validate_arguments([arg, "1"])
    assert argv == [arg, "1"]
    expected = (
        f"aprs accepts but does not implement the Azure runtime flag --{flag}; "
        "it is passed to the entry script unchanged."
    )
    assert warnings == [expected]


def test_unknown_flags_pass_silently():
    """User flags that Azure does not know pass without warnings."""
    assert validate_arguments(["--model", "m.pkl", "--nicer", "1"]) == (
        ["--model", "m.pkl", "--nicer", "1"],
        [],
    )


def test_argument_problems_are_reported_at_once():
    """Every bad argument is listed in one error."""
    with pytest.raises(ConfigError) as info:
        validate_arguments(["pos", None, "--run_max_try", "3", "--output=o"])
    assert len(info.value.problems) == 4
    assert "(4 problems)" in str(info.value)


def test_reserved_and_runtime_flag_sets_match_azure():
    """The reserved names and runtime flags are exactly Azure's lists (azure-prs.md 2.5, 4.6)."""
    assert RESERVED_ARGUMENTS == {
        "mini_batch_size", "error_threshold", "allowed_failed_count",
        "allowed_failed_percent", "output", "output_action", "logging_level",
        "process_count_per_node", "run_invocation_timeout", "run_max_try",
        "append_row_file_name", "partition_keys",
    }  # fmt: skip
    assert len(KNOWN_RUNTIME_FLAGS) == 19
    assert "task_overhead_timeout" in KNOWN_RUNTIME_FLAGS
    assert not KNOWN_RUNTIME_FLAGS & RESERVED_ARGUMENTS


def test_implemented_runtime_flag_passes_through_without_warning():
    """--append_row_dataframe_header is implemented (issue 8): no warning."""
    argv, warnings = validate_arguments(["--append_row_dataframe_header", "True"])
    assert argv == ["--append_row_dataframe_header", "True"]
    assert warnings == []


def test_isolate_failures_is_a_bool_and_files_may_quote_it():
    """isolate_failures: True/False; a file's "true"/"false" is read as a bool."""
    assert ParallelRunConfig(
        entry_script="s.py", isolate_failures=True
    ).isolate_failures
    data = {"entry_script": "s.py", "isolate_failures": "true"}
    assert ParallelRunConfig.from_mapping(data).isolate_failures is True
    data["isolate_failures"] = "false"
    assert ParallelRunConfig.from_mapping(data).isolate_failures is False
    with pytest.raises(ConfigError, match="`isolate_failures` must be true or false"):
        ParallelRunConfig(entry_script="s.py", isolate_failures="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="got `'sometimes'`"):
        ParallelRunConfig.from_mapping({**data, "isolate_failures": "sometimes"})
