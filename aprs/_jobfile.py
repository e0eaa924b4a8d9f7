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
from ._pipeline import check_job_key, parallel_jobs, pick_job

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


def apply_sets(
    data: dict[str, Any],
    sets: Sequence[str],
    cwd: str,
    job: str | None = None,
    where: str = "the --config file",
) -> dict[str, Any]:
    """Apply ``--set a.b.c=value`` to the loaded file (values are YAML scalars).

    A key ending in ``.path`` is a path relative to ``cwd``; setting ``inputs.x.path`` on
    an input written as a plain value turns it into ``{path: ...}``. In a pipeline file
    the key is the parallel job's (``job``, the ``--job`` one, or the only one), except
    ``jobs.<name>...`` and the pipeline's own inputs, which start at the file's top.

    Raises:
        ConfigError: a ``--set`` without ``=``, with an empty key or a value that is
            not YAML, or a ``jobs.<name>...`` key that names no parallel job.
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
        if parts[0] == "jobs" and data.get("type") == "pipeline":
            check_job_key(data, item, where)
        try:
            value: Any = yaml.safe_load(text) if text else ""
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "a YAML syntax error"
            raise ConfigError(
                f"--set {item!r} has a value that is not valid YAML ({problem}). Quote "
                f"the value (--set '{key}=\"...\"') or fix it."
            ) from None
        if (
            parts[-1] == "path"
            and isinstance(value, str)
            and not value.startswith(REMOTE)
        ):
            value = os.path.abspath(os.path.join(cwd, value))
        node = _set_root(data, parts, job, where)
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {} if child is None or part != parts[-2] else {"value": child}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return data


def _set_root(
    data: dict[str, Any], parts: list[str], name: str | None, where: str
) -> dict[str, Any]:
    """Where ``--set`` applies: the parallel job, or the pipeline for its own inputs
    and for ``jobs.<name>...`` keys."""
    job = _job_node(data, name, where)
    pipeline_inputs = data.get("inputs") if job is not data else None
    job_inputs = mapping(job.get("inputs"))
    if parts[0] == "jobs" and data.get("type") == "pipeline":
        return data
    if (
        parts[0] == "inputs"
        and len(parts) > 1
        and isinstance(pipeline_inputs, dict)
        and parts[1] in pipeline_inputs
        and parts[1] not in job_inputs
    ):
        return data
    return job


def _job_node(data: dict[str, Any], name: str | None, where: str) -> dict[str, Any]:
    """The parallel job ``name`` (``--job``) or the only one of a pipeline file, else the
    file itself."""
    if name is not None:
        return pick_job(data, name, where)
    found = parallel_jobs(data)
    return next(iter(found.values())) if len(found) == 1 else data


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
    job: str | None = None,
    every_job: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """Translate a v1 or v2 Azure job file; other files are returned unchanged.

    ``job`` picks a parallel job of a pipeline file by its key; ``every_job`` says that
    all of the file's parallel jobs run in turn (``--set`` hints then name the job). In a
    file with several parallel jobs, a job's default output folder and name come from
    its key, so two jobs never share one.

    Returns:
        (flat dict of aprs config and step keys, notes naming what was ignored).

    Raises:
        ConfigError: one paragraph listing every problem of a v2 file.
    """
    node = _job_node(data, job, where)
    if isinstance(data.get("parallel_run_config"), dict):
        nested, notes = strip_cloud_keys(data["parallel_run_config"], where)
        return {**data, "parallel_run_config": nested}, notes
    if node.get("type") != "parallel":
        if data.get("type") == "pipeline":
            raise ConfigError(_no_single_job(data, where))
        return data, []
    if job is None or len(parallel_jobs(data)) == 1:
        parent = data if node is not data else {}
        return V2Job(node, base, where, parent, output, default_name).translate()
    key = job  # one of several: its key names its output folder and its step
    v2 = V2Job(node, base, f"{where} job {key}", data, output, lambda _entry: key)
    v2.label = f"The parallel job {key} of {where}"
    if every_job:
        v2.set_key = f"jobs.{key}."
    flat, notes = v2.translate()
    flat.setdefault("name", step_name(key))
    return flat, notes


def _no_single_job(data: Mapping[str, Any], where: str) -> str:
    found = parallel_jobs(data)
    if not found:
        return (
            f"{where} is a pipeline job file, but aprs runs parallel jobs and found 0 "
            "jobs of type parallel in jobs:. Add one (or give a parallel job file)."
        )
    return (  # several, and they could not all run (the CLI runs them in turn)
        f"{where} has {len(found)} parallel jobs ({', '.join(found)}); aprs runs one at "
        "a time. Pass --job NAME to pick one."
    )


def step_name(stem: str, prefix: str = "aprs") -> str:
    """A step name (3-32 lowercase letters, digits, dashes): ``prefix-stem``, the stem (a
    job's key, a script's file name) lowered, other characters turned into dashes."""
    stem = re.sub(r"[^a-z0-9-]+", "-", stem.lower()).strip("-")
    return (f"{prefix}-{stem}" if stem else f"{prefix}-job")[:32].rstrip("-")
