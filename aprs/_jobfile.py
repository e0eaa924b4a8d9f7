"""Azure ML job files as users have them, translated into aprs's config keys.

    YAML dict ──► apply_sets (--set a.b=value)
              ──► kind?  v2 ``type: parallel`` (or a pipeline holding one) ──► V2Job (_jobfile_v2)
                         v1 ``parallel_run_config:`` (save_to_yaml output)  ──► strip_cloud_keys
                         anything else: aprs's own keys, unchanged
              ──► (flat dict of config + step keys, notes on what was ignored)

v2: ``${{inputs.x}}`` / ``${{outputs.y}}`` in ``input_data``, ``program_arguments`` and
``append_row_to`` become local paths (from the file, relative to it, or from ``--set
inputs.x.path=...``); ``$[[...]]`` segments are dropped when an input they use has no value;
outputs without a path get ``<output>/<name>`` (a ``uri_file`` the file
``<output>/<name>/<name>``). Keys that only mean something in the cloud
(``environment``, ``compute``, ``image``, ``resources.instance_type`` ...) are reported once
as ignored, never rejected. Invariant: every path in the result is absolute.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._errors import ConfigError
from ._jobfile_v2 import REMOTE, V2Job, mapping

if TYPE_CHECKING:
    from ._config import ParallelRunConfig

__all__ = (
    "apply_sets",
    "load_v1_yaml",
    "save_v1_yaml",
    "strip_cloud_keys",
    "translate_job_file",
)

_LOCAL_TARGET = re.compile(r"local|ray|ray://.+")
_V1_CLOUD = ("compute_target_name", "environment_dir_path", "environment_name")


def apply_sets(data: dict[str, Any], sets: Sequence[str], cwd: str) -> dict[str, Any]:
    """Apply ``--set a.b.c=value`` to the loaded file (values are YAML scalars).

    A key ending in ``.path`` is a path relative to ``cwd``; setting ``inputs.x.path`` on
    an input written as a plain value turns it into ``{path: ...}``.

    Raises:
        ConfigError: a ``--set`` without ``=`` or with an empty key.
    """
    import yaml

    for item in sets:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(
                f"--set {item!r} must look like KEY=VALUE with a dotted KEY, as in --set "
                "inputs.images.path=data/images or --set mini_batch_size=5."
            )
        value: Any = yaml.safe_load(text) if text else ""
        if (
            parts[-1] == "path"
            and isinstance(value, str)
            and not value.startswith(REMOTE)
        ):
            value = os.path.abspath(os.path.join(cwd, value))
        node = _set_root(data, parts)
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {} if child is None or part != parts[-2] else {"value": child}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return data


def _set_root(data: dict[str, Any], parts: list[str]) -> dict[str, Any]:
    """Where ``--set`` applies: the parallel job, or the pipeline for its own inputs."""
    job = _job_node(data)
    pipeline_inputs = data.get("inputs") if job is not data else None
    job_inputs = mapping(job.get("inputs"))
    if (
        parts[0] == "inputs"
        and len(parts) > 1
        and isinstance(pipeline_inputs, dict)
        and parts[1] in pipeline_inputs
        and parts[1] not in job_inputs
    ):
        return data
    return job


def _job_node(data: dict[str, Any]) -> dict[str, Any]:
    """The parallel job inside a pipeline file, else the file itself."""
    jobs = data.get("jobs")
    if data.get("type") == "pipeline" and isinstance(jobs, dict):
        parallel = [
            j
            for j in jobs.values()
            if isinstance(j, dict) and j.get("type") == "parallel"
        ]
        if len(parallel) == 1:
            return parallel[0]
    return data


def strip_cloud_keys(
    nested: dict[str, Any], where: str
) -> tuple[dict[str, Any], list[str]]:
    """A v1 ``parallel_run_config`` without the keys that name cloud resources."""
    kept = dict(nested)
    target = kept.get("compute_target_name")
    if isinstance(target, str) and _LOCAL_TARGET.fullmatch(target):
        kept["compute_target"] = kept.pop("compute_target_name")  # aprs's own targets
    ignored = [k for k in _V1_CLOUD if k in kept]
    for key in ignored:
        del kept[key]
    env = kept.get("environment")
    if env is not None and not (isinstance(env, str) and os.access(env, os.X_OK)):
        ignored.append("environment")  # an Azure environment, not an interpreter path
        del kept["environment"]
    if kept.get("node_count") not in (None, 1) and kept.get("compute_target") in (
        None,
        "local",
    ):
        ignored.append(f"node_count={kept.pop('node_count')}")
    if not ignored:
        return kept, []
    listed = ", ".join(ignored)
    return kept, [
        f"{where}: ignored {listed} (cloud-only: the job runs here, with this interpreter)"
    ]


_V1_ORDER = (  # the keys and order of Azure's save_to_yaml, then aprs's optional ones
    "mini_batch_size", "error_threshold", "output_action", "logging_level",
    "compute_target_name", "node_count", "process_count_per_node", "entry_script",
    "source_directory", "description", "run_invocation_timeout", "run_max_try",
    "append_row_file_name", "environment", "allowed_failed_count",
    "allowed_failed_percent", "partition_keys", "environment_variables", "models",
    "model_dir", "isolate_failures",
)  # fmt: skip


def save_v1_yaml(config: ParallelRunConfig, path: str) -> None:
    """``ParallelRunConfig.save_to_yaml``: one ``parallel_run_config:`` mapping."""
    import yaml

    values = config.to_dict()
    values["compute_target_name"] = values.pop("compute_target")
    optional = {"allowed_failed_count", "allowed_failed_percent", "partition_keys",
                "environment_variables", "models", "model_dir"}  # fmt: skip
    if not values["isolate_failures"]:  # an aprs key: written only when set
        optional.add("isolate_failures")
        values["isolate_failures"] = None
    mapping = {
        key: values[key]
        for key in _V1_ORDER
        if key not in optional or values[key] is not None
    }
    text = yaml.safe_dump({"parallel_run_config": mapping}, sort_keys=False)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def load_v1_yaml(path: str) -> ParallelRunConfig:
    """``ParallelRunConfig.load_yaml``: read, drop the cloud keys (logged), validate."""
    import logging

    import yaml

    from ._config import ParallelRunConfig

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(
            f"{path} cannot be read: {exc.strerror}. Check the path."
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}. Fix the syntax.") from exc
    nested = data.get("parallel_run_config", data) if isinstance(data, dict) else data
    if not isinstance(nested, dict):
        raise ConfigError(
            f"{path} must hold a parallel_run_config: mapping (as save_to_yaml writes); "
            f"got a {type(nested).__name__}."
        )
    kept, notes = strip_cloud_keys(nested, path)
    for note in notes:
        logging.getLogger("aprs").warning("%s", note)
    return ParallelRunConfig.from_mapping(kept, where=path)


def translate_job_file(
    data: dict[str, Any],
    base: str,
    where: str,
    *,
    output: str | None,
    default_name: Callable[[str], str],
) -> tuple[dict[str, Any], list[str]]:
    """Translate a v1 or v2 Azure job file; other files are returned unchanged.

    Returns:
        (flat dict of aprs config and step keys, notes naming what was ignored).

    Raises:
        ConfigError: one paragraph listing every problem of a v2 file.
    """
    if isinstance(data.get("parallel_run_config"), dict):
        nested, notes = strip_cloud_keys(data["parallel_run_config"], where)
        return {**data, "parallel_run_config": nested}, notes
    job = _job_node(data)
    if job.get("type") != "parallel":
        if data.get("type") == "pipeline":
            raise ConfigError(
                f"{where} is a pipeline job file, but aprs runs one parallel job and found "
                f"{_count_parallel(data)} jobs of type parallel in jobs:. Keep exactly one "
                "(or put the parallel job in a file of its own)."
            )
        return data, []
    parent = data if job is not data else {}
    return V2Job(job, base, where, parent, output, default_name).translate()


def _count_parallel(data: Mapping[str, Any]) -> int:
    jobs = data.get("jobs")
    values = jobs.values() if isinstance(jobs, dict) else []
    return sum(1 for j in values if isinstance(j, dict) and j.get("type") == "parallel")
