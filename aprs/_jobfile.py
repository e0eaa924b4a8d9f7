"""Azure ML job files as users have them, translated into aprs's config keys.

    YAML dict ──► apply_sets (--set a.b=value)
              ──► kind?  v2 ``type: parallel`` (or a pipeline holding one) ──► translate_v2
                         v1 ``parallel_run_config:`` (save_to_yaml output)  ──► strip_cloud_keys
                         anything else: aprs's own keys, unchanged
              ──► (flat dict of config + step keys, notes on what was ignored)

v2: ``${{inputs.x}}`` / ``${{outputs.y}}`` in ``input_data``, ``program_arguments`` and
``append_row_to`` become local paths (from the file, relative to it, or from ``--set
inputs.x.path=...``); ``$[[...]]`` segments are dropped when an input they use has no value;
outputs without a path get ``<output>/<name>``. Keys that only mean something in the cloud
(``environment``, ``compute``, ``image``, ``resources.instance_type`` ...) are reported once
as ignored, never rejected. Invariant: every path in the result is absolute.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._errors import ConfigError

if TYPE_CHECKING:
    from ._config import ParallelRunConfig

__all__ = (
    "apply_sets",
    "load_v1_yaml",
    "save_v1_yaml",
    "strip_cloud_keys",
    "translate_job_file",
)

_BINDING = re.compile(r"\$\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")
_OPTIONAL = re.compile(r"\$\[\[(.*?)\]\]", re.DOTALL)
_REMOTE = ("azureml:", "http://", "https://", "wasbs://", "abfss://", "adl://", "${{")
_LOCAL_TARGET = re.compile(r"local|ray|ray://.+")
_V1_CLOUD = ("compute_target_name", "environment_dir_path", "environment_name")
_V2_IGNORED = {
    "environment", "compute", "image", "identity", "display_name", "tags",
    "properties", "experiment_name", "$schema", "version", "settings", "name",
    "component", "services",
}  # fmt: skip
_V2_USED = {
    "type", "inputs", "outputs", "input_data", "mini_batch_size", "partition_keys",
    "mini_batch_error_threshold", "error_threshold", "logging_level",
    "max_concurrency_per_instance", "resources", "retry_settings",
    "environment_variables", "task", "description", "is_deterministic",
    "models", "model_dir", "isolate_failures",
}  # fmt: skip
_TASK_USED = {
    "type",
    "code",
    "entry_script",
    "program_arguments",
    "args",
    "append_row_to",
}
_TASK_TYPES = ("run_function", "function", "model")


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
            and not value.startswith(_REMOTE)
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
    job_inputs = _mapping(job.get("inputs"))
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
    parent = data.get("inputs") if job is not data else None
    return _V2(job, base, where, parent or {}, output, default_name).translate()


def _count_parallel(data: Mapping[str, Any]) -> int:
    jobs = data.get("jobs")
    values = jobs.values() if isinstance(jobs, dict) else []
    return sum(1 for j in values if isinstance(j, dict) and j.get("type") == "parallel")


class _V2:
    """One translation of a v2 parallel job; problems are collected, then raised at once."""

    def __init__(
        self,
        job: dict[str, Any],
        base: str,
        where: str,
        parent_inputs: Mapping[str, Any],
        output: str | None,
        default_name: Callable[[str], str],
    ) -> None:
        self.job, self.base, self.where = job, base, where
        self.parent_inputs = parent_inputs
        self.problems: list[str] = []
        self.ignored: list[str] = []
        self.task: dict[str, Any] = _mapping(job.get("task"))
        self.inputs = _mapping(job.get("inputs"))
        self.outputs = _mapping(job.get("outputs"))
        entry = str(self.task.get("entry_script") or "")
        root = output or os.path.join("aprs_output", default_name(entry or "job"))
        self.output_root = os.path.abspath(root)
        self.cli_output = output

    # -- bindings ---------------------------------------------------------------------
    def _local(self, value: Any, label: str, fix: str) -> str | None:
        text = str(value)
        if text.startswith(_REMOTE):
            self.problems.append(
                f"{label} is {text!r}, which is not on this machine. Give a local copy "
                f"with {fix}."
            )
            return None
        return os.path.abspath(os.path.join(self.base, os.path.expanduser(text)))

    def input_value(self, name: str) -> str | None:
        """The local path (data inputs) or the text (literal inputs) of ``inputs.name``."""
        if name not in self.inputs:
            self.problems.append(
                f"${{{{inputs.{name}}}}} is used but inputs: has no {name!r} (it has "
                f"{', '.join(self.inputs) or 'none'}). Add it or fix the name."
            )
            return None
        spec = self.inputs[name]
        fix = f"--set inputs.{name}.path=PATH"
        if not isinstance(spec, dict):
            spec = self._parent(spec)  # ${{parent.inputs.x}}: the pipeline's input x
            fix = f"{fix} (or the pipeline's input)"
        if not isinstance(spec, dict):
            return self._literal(spec, name)
        if spec.get("path") is not None:
            path = self._parent(spec["path"])  # path: ${{parent.inputs.x}}
            if isinstance(path, dict):
                path = path.get("path", spec["path"])
            return self._local(path, f"inputs.{name}.path", fix)
        for key in ("value", "default"):
            if spec.get(key) is not None:
                return self._literal(spec[key], name)
        if spec.get("optional"):
            return None
        self.problems.append(
            f"inputs.{name} has no path or value. Give one with {fix}."
        )
        return None

    def _literal(self, value: Any, name: str) -> str | None:
        if isinstance(value, str) and value.startswith("${{"):
            self.problems.append(
                f"inputs.{name} is bound to {value}, which only exists in Azure. Give a "
                f"value with --set inputs.{name}=VALUE (or a path with --set "
                f"inputs.{name}.path=PATH)."
            )
            return None
        return str(value).lower() if isinstance(value, bool) else str(value)

    def _parent(self, value: Any) -> Any:
        """``${{parent.inputs.x}}`` -> the pipeline's input x (its path or value)."""
        match = (
            _BINDING.fullmatch(str(value).strip()) if isinstance(value, str) else None
        )
        if match and match[1].startswith("parent.inputs."):
            spec = self.parent_inputs.get(match[1].removeprefix("parent.inputs."))
            return value if spec is None else spec
        return value

    def output_path(self, name: str, folder: bool = True) -> str | None:
        if name not in self.outputs:
            self.problems.append(
                f"${{{{outputs.{name}}}}} is used but outputs: has no {name!r} (it has "
                f"{', '.join(self.outputs) or 'none'}). Add it or fix the name."
            )
            return None
        spec = _mapping(self.outputs[name])
        if spec.get("path") is not None:
            path = self._local(
                spec["path"], f"outputs.{name}.path", f"--set outputs.{name}.path=PATH"
            )
        else:
            path = os.path.join(self.output_root, name)
        if path is not None and folder:
            is_file = spec.get("type") == "uri_file"
            os.makedirs(os.path.dirname(path) if is_file else path, exist_ok=True)
        return path

    def substitute(self, text: str) -> str:
        def optional(match: re.Match[str]) -> str:
            names = [b for b in _BINDING.findall(match[1]) if b.startswith("inputs.")]
            present = all(self._has_value(b.removeprefix("inputs.")) for b in names)
            return match[1] if present else ""

        def one(match: re.Match[str]) -> str:
            kind, _, name = match[1].partition(".")
            if kind == "inputs":
                value = self.input_value(name)
            elif kind == "outputs":
                value = self.output_path(name)
            else:
                self.problems.append(
                    f"{match[0]} cannot be resolved outside Azure. Replace it with a value."
                )
                value = None
            return shlex.quote(value) if value is not None else ""

        return _BINDING.sub(one, _OPTIONAL.sub(optional, text))

    def _has_value(self, name: str) -> bool:
        spec = self.inputs.get(name)
        if isinstance(spec, dict):
            return any(spec.get(k) is not None for k in ("path", "value", "default"))
        return spec is not None

    # -- the translation ---------------------------------------------------------------
    def translate(self) -> tuple[dict[str, Any], list[str]]:
        out: dict[str, Any] = {}
        self._task(out)
        self._data(out)
        self._settings(out)
        self._arguments(out)
        self._append_row(out)
        self._report_ignored()
        if self.problems:
            listed = " ".join(f"({i}) {p}" for i, p in enumerate(self.problems, 1))
            raise ConfigError(
                f"The parallel job file {self.where} cannot run here "
                f"({len(self.problems)} problem{'s' if len(self.problems) > 1 else ''}): "
                f"{listed}",
                problems=self.problems,
            )
        notes = []
        if self.ignored:
            notes.append(
                f"{self.where}: ignored {', '.join(self.ignored)} (cloud-only: the job "
                "runs on this machine, with this interpreter)"
            )
        return out, notes

    def _task(self, out: dict[str, Any]) -> None:
        kind = self.task.get("type", "run_function")
        if kind not in _TASK_TYPES:
            self.problems.append(
                f"task.type is {kind!r}; aprs runs {', '.join(_TASK_TYPES)}. Use "
                "type: run_function."
            )
        entry = self.task.get("entry_script")
        if not entry:
            self.problems.append(
                "task.entry_script is missing. Name the script with init() and run()."
            )
            return
        out["entry_script"] = str(entry)
        if self.task.get("code"):
            out["source_directory"] = self._local(
                self.task["code"], "task.code", "a local folder"
            )
        elif str(entry).endswith(".py"):
            out["entry_script"] = os.path.join(self.base, str(entry))

    def _data(self, out: dict[str, Any]) -> None:
        data = self.job.get("input_data")
        if data is None:
            self.problems.append(
                "input_data is missing. Set input_data: ${{inputs.<name>}} to the input "
                "to split into mini-batches."
            )
            return
        text = str(data).strip()
        match = _BINDING.fullmatch(text)
        if match and match[1].startswith("inputs."):
            path = self.input_value(match[1].removeprefix("inputs."))
        else:
            path = self._local(text, "input_data", "a local path")
        if path is not None:
            out["inputs"] = [path]

    def _settings(self, out: dict[str, Any]) -> None:
        job = self.job
        for key in ("mini_batch_size", "error_threshold", "logging_level", "description",
                    "mini_batch_error_threshold", "max_concurrency_per_instance",
                    "partition_keys", "isolate_failures"):  # fmt: skip
            if job.get(key) is not None:
                out[key] = self._scalar(job[key], key)
        retry = job.get("retry_settings")
        if isinstance(retry, dict):
            out["retry_settings"] = {
                k: self._scalar(v, f"retry_settings.{k}") for k, v in retry.items()
            }
        elif retry is not None:
            out["retry_settings"] = retry  # the config check reports it
        if "partition_keys" in out and out.pop("mini_batch_size", None) is not None:
            self.ignored.append("mini_batch_size (partition_keys win, as in v2)")
        size = out.get("mini_batch_size")
        if isinstance(size, str) and size.isdigit():
            out["mini_batch_size"] = int(size)
        env = job.get("environment_variables")
        if isinstance(env, dict):
            out["environment_variables"] = {
                str(k): _text(self._scalar(v, f"environment_variables.{k}"))
                for k, v in env.items()
            }
        elif env is not None:
            out["environment_variables"] = env  # the config check reports it
        for key, value in _mapping(job.get("resources")).items():
            if key != "instance_count" or value not in (None, 1):
                self.ignored.append(f"resources.{key}={value}")
        if job.get("is_deterministic") is False:
            out["allow_reuse"] = False
        self._models(out)

    def _scalar(self, value: Any, label: str) -> Any:
        """A setting bound to ``${{parent.inputs.x}}`` or ``${{inputs.x}}``: its value."""
        match = _BINDING.fullmatch(value.strip()) if isinstance(value, str) else None
        if match is None:
            return value
        if match[1].startswith("parent.inputs."):
            spec = self._parent(value)
            if isinstance(spec, dict):
                spec = spec.get("value", spec.get("default"))
            if spec is not None and not (isinstance(spec, str) and "${{" in spec):
                return spec
        elif match[1].startswith("inputs."):
            text = self.input_value(match[1].removeprefix("inputs."))
            return value if text is None else text
        self.problems.append(
            f"{label} is bound to {value}, which only exists in Azure. Give a value with "
            f"--set {label}=VALUE."
        )
        return value

    def _models(self, out: dict[str, Any]) -> None:
        """aprs's own ``models:`` / ``model_dir:`` keys, for Model.get_model_path."""
        models = self.job.get("models")
        if isinstance(models, dict):
            out["models"] = {
                k: self._local(v, f"models.{k}", "a local path")
                for k, v in models.items()
            }
        elif models is not None:
            out["models"] = models  # the config check reports it
        if self.job.get("model_dir") is not None:
            out["model_dir"] = self._local(
                self.job["model_dir"], "model_dir", "a local folder"
            )

    def _arguments(self, out: dict[str, Any]) -> None:
        raw = self.task.get("program_arguments", self.task.get("args"))
        if raw is None:
            return
        text = shlex.join(map(str, raw)) if isinstance(raw, list) else str(raw)
        try:
            out["arguments"] = shlex.split(self.substitute(text))
        except ValueError as exc:
            self.problems.append(
                f"task.program_arguments cannot be split into words: {exc}."
            )

    def _append_row(self, out: dict[str, Any]) -> None:
        target = self.task.get("append_row_to")
        if not target:
            out["output_action"] = "summary_only"
            out["output"] = self.output_root
            return
        match = _BINDING.fullmatch(str(target).strip())
        if not match or not match[1].startswith("outputs."):
            self.problems.append(
                f"task.append_row_to is {target!r}; it must be ${{{{outputs.<name>}}}}."
            )
            return
        name = match[1].removeprefix("outputs.")
        path = self.output_path(name, folder=False)
        if path is None:
            return
        spec = _mapping(self.outputs.get(name))
        has_path = spec.get("path") is not None
        if spec.get("type") == "uri_file" and has_path:
            out["output"], out["append_row_file_name"] = os.path.split(path)
        else:
            out["output"] = path if has_path else self.output_root
        if self.cli_output:
            out["output"] = os.path.abspath(self.cli_output)

    def _report_ignored(self) -> None:
        for key in self.job:
            if key in _V2_IGNORED:
                self.ignored.append(key)
            elif key not in _V2_USED:
                self.ignored.append(f"{key} (not a parallel job key)")
        for key in self.task:
            if key not in _TASK_USED:
                self.ignored.append(f"task.{key}")


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
