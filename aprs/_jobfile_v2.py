"""An Azure ML v2 parallel job (``type: parallel``), translated into aprs's flat keys.

    job mapping ──► bindings: ``${{inputs.x}}`` / ``${{outputs.y}}`` in ``input_data``,
                    ``program_arguments``, ``append_row_to`` ──► local absolute paths
                    (from the file, relative to it, or ``--set inputs.x.path=...``)
               ──► ``$[[...]]`` segments dropped when an input they use has no value
               ──► outputs without a path ──► ``<output>/<name>`` (a folder), or
                    ``<output>/<name>/<name>`` (a ``uri_file``: a file in its folder)
               ──► (flat dict, notes on ignored keys) | ConfigError listing every problem

Invariant: problems are collected and raised once, in one paragraph; cloud-only keys are
reported as ignored, never rejected.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from ._errors import ConfigError

__all__ = ("REMOTE", "V2Job", "mapping")

_BINDING = re.compile(r"\$\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")
_OPTIONAL = re.compile(r"\$\[\[(.*?)\]\]", re.DOTALL)
REMOTE = ("azureml:", "http://", "https://", "wasbs://", "abfss://", "adl://", "${{")
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


class V2Job:
    """One translation of a v2 parallel job; problems are collected, then raised at once."""

    def __init__(
        self,
        job: dict[str, Any],
        base: str,
        where: str,
        parent: Mapping[str, Any],
        output: str | None,
        default_name: Callable[[str], str],
    ) -> None:
        self.job, self.base, self.where = job, base, where
        self.parent_inputs = mapping(parent.get("inputs"))  # the pipeline's, if any
        self.parent_outputs = mapping(parent.get("outputs"))
        self.problems: list[str] = []
        self.ignored: list[str] = []
        self.redirected: dict[str, str] = {}  # output name -> note (remote paths)
        self.task: dict[str, Any] = mapping(job.get("task"))
        self.inputs = mapping(job.get("inputs"))
        self.outputs = mapping(job.get("outputs"))
        entry = str(self.task.get("entry_script") or "")
        root = output or os.path.join("aprs_output", default_name(entry or "job"))
        self.output_root = os.path.abspath(root)
        self.cli_output = output
        self.label = f"The parallel job file {where}"  # how the error names the job
        self.set_key = ""  # what --set hints put before a key: "jobs.<name>." or ""

    # -- bindings ---------------------------------------------------------------------
    def _local(self, value: Any, label: str, fix: str) -> str | None:
        text = str(value)
        if text.startswith(REMOTE):
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
        fix = f"--set {self.set_key}inputs.{name}.path=PATH"
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
                f"value with --set {self.set_key}inputs.{name}=VALUE (or a path with "
                f"--set {self.set_key}inputs.{name}.path=PATH)."
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
        spec = self.output_spec(name)
        where = spec.get("path")
        is_file = spec.get("type") == "uri_file"
        path: str | None
        if where is not None and str(where).startswith(REMOTE):
            path = self._remote_output(name, str(where), is_file)
        elif where is not None:
            path = self._local(
                where,
                f"outputs.{name}.path",
                f"--set {self.set_key}outputs.{name}.path=PATH",
            )
        elif self._holds_rows(name, spec):
            path = self.output_root  # the folder append_row_to writes into, as in Azure
        elif is_file:
            # Azure mounts a uri_file output without a path as a folder named after the
            # output and hands the script a file of the same name in it, not yet there
            # (.../wd/<name>/<name>: getindata/kedro-azureml#70)
            path = os.path.join(self.output_root, name, name)
        else:
            path = os.path.join(self.output_root, name)
        if path is not None and folder:
            os.makedirs(os.path.dirname(path) if is_file else path, exist_ok=True)
        return path

    def output_spec(self, name: str) -> dict[str, Any]:
        """``outputs.name``, with what the pipeline declares when it is bound to
        ``${{parent.outputs.y}}`` (the type of such an output is written there)."""
        spec = self.outputs.get(name)
        own = mapping(spec)
        bound = own.get("value") if isinstance(spec, dict) else spec
        match = _BINDING.fullmatch(bound.strip()) if isinstance(bound, str) else None
        if match is None or not match[1].startswith("parent.outputs."):
            return own
        declared = self.parent_outputs.get(match[1].removeprefix("parent.outputs."))
        return {**mapping(declared), **{k: v for k, v in own.items() if k != "value"}}

    def _holds_rows(self, name: str, spec: Mapping[str, Any]) -> bool:
        """Is ``name`` the folder output (no path of its own) that append_row_to names?"""
        match = _BINDING.fullmatch(str(self.task.get("append_row_to") or "").strip())
        return (
            match is not None
            and match[1] == f"outputs.{name}"
            and spec.get("type") != "uri_file"
        )

    def _remote_output(self, name: str, remote: str, is_file: bool) -> str:
        """An output that Azure writes to a datastore (``azureml://...``) is written
        under the output folder here: a file keeps its name, a folder is named after
        the output. One note says where; ``--set outputs.<name>.path`` chooses."""
        base = remote.rstrip("/").rpartition("/")[2]
        usable = is_file and base and "${{" not in base and ":" not in base
        path = os.path.join(self.output_root, base if usable else name)
        self.redirected[name] = (
            f"{self.where}: outputs.{name}.path is {remote!r}, an Azure location; "
            f"writing it to {path} instead (choose another place with --set "
            f"{self.set_key}outputs.{name}.path=PATH)"
        )
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
                f"{self.label} cannot run here "
                f"({len(self.problems)} problem{'s' if len(self.problems) > 1 else ''}): "
                f"{listed}",
                problems=self.problems,
            )
        notes = list(self.redirected.values())
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
        for key, value in mapping(job.get("resources")).items():
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
            f"--set {self.set_key}{label}=VALUE."
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
        spec = self.output_spec(name)
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


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
