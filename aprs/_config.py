"""ParallelRunConfig and the step-level rules, with Azure ML's names and limits.

    dict from a file ──► from_mapping ──► ParallelRunConfig(...) ──► __post_init__
    (v2 aliases, "60"    (unknown keys,    (constructor or            (types, ranges,
     for numbers)         suggestions)      msgspec decode)            cross-field rules)

Every check adds one sentence (field, offending value, valid range, fix) to a list, and
one ConfigError carries them all, so a config file is fixed in one pass. The rules and
sentences live in ``_config_rules``. Invariant: a ParallelRunConfig that exists is valid;
later code does not re-check it. Types are checked here too: msgspec checks them only when decoding.
"""

from __future__ import annotations

__all__ = (
    "DEFAULT_APPEND_ROW_FILE_NAME",
    "KNOWN_RUNTIME_FLAGS",
    "RESERVED_ARGUMENTS",
    "MiniBatchSpec",
    "ParallelRunConfig",
    "validate_arguments",
    "validate_step_name",
)

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

import msgspec

from ._backends._options import RayOptions
from ._config_rules import (
    SIZE_RE,
    SIZE_UNITS,
    STEP_NAME_RE,
    collect_problems,
    fail,
    say,
    shown,
    translate,
)

DEFAULT_APPEND_ROW_FILE_NAME = "parallel_run_step.txt"  # Azure's default
# fmt: off
RESERVED_ARGUMENTS = frozenset((
    "mini_batch_size", "error_threshold", "allowed_failed_count", "allowed_failed_percent",
    "output", "output_action", "logging_level", "process_count_per_node",
    "run_invocation_timeout", "run_max_try", "append_row_file_name", "partition_keys",
))
KNOWN_RUNTIME_FLAGS = frozenset((
    "task_overhead_timeout", "progress_update_timeout", "first_task_creation_timeout",
    "resource_monitor_interval", "copy_logs_to_parent", "metrics_name_prefix",
    "push_metrics_to_parent", "profiling_module", "nice", "cleanup_leaked_queues",
    "append_row_safe_output", "amlbi_async_mode", "resume_from", "rank_mini_batch_count",
    "append_row_dataframe_header", "client_sdk_version", "create_snapshot_at_runtime",
    "run_id", "run_context_type",
))
# fmt: on
_IMPLEMENTED_FLAGS = frozenset(
    ("append_row_dataframe_header",)
)  # read by the workers (#8)
_ALL_AZURE_FLAGS = sorted(  # for "did you mean": the names Azure's driver reads, but
    name  # not the short ones, which a script's own flags resemble (--nicer, --run_ids)
    for name in KNOWN_RUNTIME_FLAGS
    | RESERVED_ARGUMENTS
    | {"mini_batch_error_threshold", "score_run_timeout"}
    if len(name) >= 10
)


class MiniBatchSpec(msgspec.Struct, frozen=True):
    """How inputs are cut into mini-batches: ``value`` items, or ``value`` bytes."""

    unit: Literal["count", "bytes"]
    value: int


class ParallelRunConfig(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """The settings of one parallel run, named and bounded as in Azure ML v1.

    Two aprs additions stand in for Azure's model registry: ``models`` (``{name: path}``,
    answered by ``Model.get_model_path(name)`` in the workers) and ``model_dir`` (exported
    as ``AZUREML_MODEL_DIR``). ``isolate_failures`` (default False, Azure's behaviour) bisects
    a mini-batch whose try fails, so that its good items are written and only the poison
    items count as failed (docs/architecture.md section 9). ``worker_start`` says how local
    workers start: "fork-server" (the default on Linux: forked from one process that imported
    the entry script's libraries once) or "spawn" (a fresh interpreter each; use it when a
    library initialises a GPU or starts threads at import); None reads $APRS_WORKER_START.

    Example:
        >>> ParallelRunConfig(entry_script="score.py", mini_batch_size="1MB").mini_batch_spec()
        MiniBatchSpec(unit='bytes', value=1048576)

    Raises:
        ConfigError: listing every invalid field, its value, the valid range and the fix.
    """

    entry_script: str  # a pathlib.Path is accepted and stored as str
    source_directory: str | None = None
    mini_batch_size: int | str | None = None
    mini_batch_rows: int | None = None  # aprs: rows per mini-batch for tabular inputs
    error_threshold: int = -1
    allowed_failed_count: int | None = None
    allowed_failed_percent: float | None = None
    output_action: str = "append_row"
    append_row_file_name: str | None = None
    process_count_per_node: int | None = None
    node_count: int = 1
    run_invocation_timeout: float = 60
    run_max_try: int = 3
    logging_level: str = "INFO"
    environment_variables: dict[str, str] | None = None
    partition_keys: list[str] | None = None
    description: str | None = None
    environment: str | None = None
    compute_target: str = "local"
    models: dict[str, str] | None = None
    model_dir: str | None = None
    ray_address: str | None = None
    worker_resources: dict[str, float] | None = None
    ray_node_wait: float = 60
    ship_inputs: bool = False  # aprs: file inputs travel as bytes to the Ray workers
    isolate_failures: bool = False  # aprs: bisect a failing mini-batch (jobs)
    worker_start: str | None = None  # aprs: "fork-server" | "spawn"; None: the default

    def __post_init__(self) -> None:
        for name in ("entry_script", "source_directory", "environment", "model_dir"):
            value = getattr(self, name)
            if isinstance(value, os.PathLike):  # pathlib.Path is as good as a str here
                msgspec.structs.force_setattr(self, name, os.fspath(value))
        problems = collect_problems(msgspec.structs.asdict(self))
        if problems:
            fail("ParallelRunConfig", problems)

    @property
    def effective_process_count(self) -> int:
        """Workers per node: ``process_count_per_node``, else the number of CPUs."""
        return self.process_count_per_node or os.cpu_count() or 1

    def ray_options(self) -> RayOptions:
        """The Ray backend's settings: address, one worker's resources, node wait."""
        target = self.compute_target
        address = self.ray_address or (target if target.startswith("ray://") else None)
        return RayOptions.build(
            address, self.worker_resources, self.ray_node_wait, self.ship_inputs
        )

    @property
    def effective_append_row_file_name(self) -> str:
        """The append_row output file name (Azure's default: parallel_run_step.txt)."""
        return self.append_row_file_name or DEFAULT_APPEND_ROW_FILE_NAME

    @property
    def effective_logging_level(self) -> str:
        """``logging_level`` in upper case, as the logging module expects."""
        return self.logging_level.upper()

    def mini_batch_spec(self, default_count: int = 10) -> MiniBatchSpec:
        """The batch size: a count (int or digits) or bytes ("64KB", "10MB", "1GB")."""
        size = self.mini_batch_size
        if size is None:
            return MiniBatchSpec("count", default_count)
        if isinstance(size, int):
            return MiniBatchSpec("count", size)
        match = SIZE_RE.fullmatch(size)
        assert match is not None  # guaranteed by __post_init__
        if match[2] is None:
            return MiniBatchSpec("count", int(match[1]))
        return MiniBatchSpec("bytes", int(match[1]) * SIZE_UNITS[match[2].upper()])

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, where: str = ""
    ) -> ParallelRunConfig:
        """Build a config from a dict loaded from a file; ``where`` names the file.

        Accepts the Azure v2 names ``max_concurrency_per_instance``, ``instance_count``,
        ``mini_batch_error_threshold``, ``code`` and ``retry_settings: {max_retries,
        timeout}``, and numbers written as strings ("60").

        Raises:
            ConfigError: unknown keys (with the closest valid key) and invalid values.
        """
        if not isinstance(cast(object, data), Mapping):
            problem = say("not_mapping", what="The configuration", got=shown(data))
            fail("ParallelRunConfig", [problem], where)
        values, given_as, problems = translate(data, where)
        fields = msgspec.structs.fields(cls)
        defaults = {f.name: None if f.required else f.default for f in fields}
        for problem in collect_problems(defaults | values):
            field = problem[1 : problem.find("`", 1)]
            if field in given_as:  # also name the key the file used
                head = f"`{field}`"
                problem = f"{head} (given as `{given_as[field]}`){problem[len(head) :]}"
            problems.append(problem)
        if problems:
            fail("ParallelRunConfig", problems, where)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """All fields as a new dict (containers copied), for fingerprints and saving."""
        items = msgspec.structs.asdict(self).items()
        return {k: v.copy() if isinstance(v, dict | list) else v for k, v in items}

    def save_to_yaml(self, path: str | os.PathLike[str]) -> None:
        """Write the config as Azure's ``ParallelRunConfig.save_to_yaml`` does.

        The file holds one ``parallel_run_config:`` mapping with Azure's keys
        (``compute_target_name`` for ``compute_target``), so Azure and aprs read it alike.
        """
        from ._jobfile import save_v1_yaml

        save_v1_yaml(self, os.fspath(path))

    @staticmethod
    def load_yaml(
        workspace: Any = None, path: str | os.PathLike[str] | None = None
    ) -> ParallelRunConfig:
        """Read a ``save_to_yaml`` file, as Azure's ``load_yaml(workspace, path)``.

        ``workspace`` is accepted and ignored (there is none offline); ``load_yaml(path)``
        works too. Cloud-only keys (``compute_target_name`` other than a local target,
        an Azure ``environment``, ``environment_dir_path`` ...) are logged as ignored.

        Raises:
            ConfigError: the file cannot be read, is not YAML, or holds invalid values.
        """
        from ._jobfile import load_v1_yaml

        if path is None:
            workspace, path = None, workspace
        return load_v1_yaml(os.fspath(path))


def validate_step_name(name: object) -> str:
    """Return ``name`` if it follows Azure's step-name rule.

    Raises:
        ConfigError: naming the rule and a valid name derived from ``name``.
    """
    if isinstance(name, str) and STEP_NAME_RE.fullmatch(name):
        return name
    example = (_suggest_step_name(name) if isinstance(name, str) else None) or "score"
    fail("step name", [say("step_name", got=shown(name), example=example)])


def validate_arguments(
    arguments: Sequence[object] | None,
) -> tuple[list[str], list[str]]:
    """Check the user's ``arguments`` for the entry script as Azure v1 does.

    Returns:
        (argv, warnings): the arguments as strings, and one warning naming the Azure
        runtime flags that aprs accepts but does not implement (if any).

    Raises:
        ConfigError: listing every element that is not str/int/float/path, every reserved
            name, and a first argument that is not a keyword (``--name``).
    """
    if arguments is None:
        return [], []
    if isinstance(arguments, str | bytes) or not isinstance(arguments, Sequence):
        fail("arguments", [say("not_list", got=shown(arguments))])
    argv: list[str] = []
    warnings: list[str] = []
    problems: list[str] = []
    flags: list[str] = []
    for i, arg in enumerate(arguments):
        text = _arg_text(arg)
        if text is None:
            problems.append(say("arg_type", i=i, got=shown(arg)))
            continue
        if i == 0 and not text.startswith("-"):
            problems.append(say("arg_first", got=shown(text), text=text))
        flag = text[2:].split("=", 1)[0].replace("-", "_") if text[:2] == "--" else ""
        if flag in RESERVED_ARGUMENTS:
            fix = f"ParallelRunConfig({flag}=...)"
            fix = "the step's output directory" if flag == "output" else fix
            problems.append(
                say("arg_reserved", i=i, got=shown(text), flag=flag, fix=fix)
            )
        elif flag in KNOWN_RUNTIME_FLAGS and flag not in _IMPLEMENTED_FLAGS:
            flags.append(flag)
        elif flag and flag not in KNOWN_RUNTIME_FLAGS and (near := _near_flag(flag)):
            warnings.append(say("arg_typo", flag=flag, near=near))
        argv.append(text)
    if problems:
        fail("arguments", problems)
    if len(flags) == 1:
        warnings.append(say("arg_flag", flag=flags[0]))
    elif flags:  # one warning for all of them (v2 jobs often pass five or six)
        listed = ", ".join(f"--{f}" for f in flags)
        warnings.append(say("arg_flags", flags=listed))
    return argv, warnings


# --- private helpers ---------------------------------------------------------------


def _near_flag(flag: str) -> str | None:
    """The Azure runtime flag that ``flag`` is probably a misspelling of, if any (None
    for an Azure flag itself)."""
    import difflib

    if flag in _ALL_AZURE_FLAGS:
        return None
    close = difflib.get_close_matches(flag, _ALL_AZURE_FLAGS, n=1, cutoff=0.85)
    return close[0] if close else None


def _arg_text(arg: object) -> str | None:
    """``str(arg)`` for str, int, float and paths; None for anything else."""
    if isinstance(arg, str | int | float):
        return str(arg)
    if isinstance(arg, os.PathLike):
        path = os.fspath(arg)
        return path if isinstance(path, str) else None
    return None


def _suggest_step_name(name: str) -> str | None:
    """A valid step name derived from ``name`` ("My_Step" -> "my-step"), or None."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.strip().lower())
    slug = re.sub(r"^[^a-z]+", "", slug)[:32].rstrip("-")
    if 0 < len(slug) < 3:
        slug += "-step"
    return slug if STEP_NAME_RE.fullmatch(slug) else None
