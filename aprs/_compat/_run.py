"""``azureml.core.Run`` offline: what an entry script records goes to the job's logs.

    Run.get_context() ──► _OfflineRun (one per worker process; same id in every worker)
      .log / .log_row / .log_list / .log_table / .tag / .upload_file / .register_model ...
          ──► one JSON object per call ──► <output>/logs/metrics.jsonl (append, one write)
      .parent ──► the step's parent run (records with "run": "parent")
      .experiment ──► name only; .workspace raises (there is no workspace offline)

A record: ``{"time", "run_id", "run", "worker", "pid", "kind", "name", "value"}``; values that
JSON cannot hold are written with ``str()``. Files given to ``upload_file`` are copied to
``<output>/logs/user/run_files/<name>`` so they are kept with the job; ``register_model``
stores the model in a local registry (``_registry``) that later jobs can read.
"""

from __future__ import annotations

import datetime
import os
import shutil
import uuid
from typing import Any, ClassVar

import orjson

from . import EXPERIMENT_ENV, RUN_ID_ENV, settings
from ._guard import unsupported
from ._registry import store_model

__all__ = ("METRICS_FILE", "Run")

METRICS_FILE = "metrics.jsonl"


_fds: dict[str, int] = {}  # metrics file -> its fd, opened once per process


def _write(record: dict[str, Any]) -> None:
    log_dir = settings().get("log_dir")
    if not log_dir:
        return
    line = orjson.dumps(
        record,
        default=str,
        option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE,
    )
    path = os.path.join(log_dir, METRICS_FILE)
    fd = _fds.get(path)
    if fd is None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        fd = _fds[path] = os.open(path, flags, 0o644)
    os.write(fd, line)  # one write per record: lines of several workers never mix


class _Experiment:
    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def workspace(self) -> Any:
        raise unsupported("Run.experiment.workspace (there is no workspace offline)")

    def __repr__(self) -> str:
        return f"Experiment(name={self.name!r})"


class Run:
    """``azureml.core.Run``: only ``Run.get_context()`` (an offline run) is available."""

    _context: ClassVar[Run | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise unsupported("azureml.core.Run(experiment, run_id) (a workspace run)")

    @classmethod
    def get_context(cls, allow_offline: bool = True, **kwargs: Any) -> Run:
        """The run of this job, recording into ``<output>/logs/metrics.jsonl``."""
        if Run._context is None:
            run_id = os.environ.get(RUN_ID_ENV) or f"OfflineRun_{uuid.uuid4()}"
            Run._context = _OfflineRun(run_id, "step")
        return Run._context


class _OfflineRun(Run):
    """The run an entry script gets from ``Run.get_context()``."""

    def __init__(
        self, run_id: str, role: str, parent: _OfflineRun | None = None
    ) -> None:
        self.id = run_id
        self.name = self.display_name = run_id
        self._role = role
        self._parent = parent
        self._tags: dict[str, Any] = {}
        self._properties: dict[str, Any] = {}
        self._metrics: dict[str, Any] = {}
        self._uploads: dict[str, str] = {}  # uploaded name -> the kept copy
        self.experiment = _Experiment(os.environ.get(EXPERIMENT_ENV) or "aprs")

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, offline=True)"

    @property
    def parent(self) -> _OfflineRun | None:
        if self._role == "step" and self._parent is None:
            self._parent = _OfflineRun(f"{self.id}_parent", "parent")
        return self._parent

    def _record(self, kind: str, name: str | None, value: Any, **extra: Any) -> None:
        now = datetime.datetime.now(datetime.UTC).isoformat()
        record = {
            "time": now,
            "run_id": self.id,
            "run": self._role,
            "worker": settings().get("agent_name"),
            "pid": os.getpid(),
            "kind": kind,
            "name": name,
            "value": value,
            **extra,
        }
        _write(record)

    def _keep(self, name: str, value: Any, append: bool = False) -> None:
        if append:
            self._metrics.setdefault(name, []).append(value)
        else:
            self._metrics[name] = value

    # -- metrics ----------------------------------------------------------------------
    def log(
        self, name: str, value: Any, description: str = "", step: Any = None
    ) -> None:
        self._keep(name, value)
        self._record("log", name, value)

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        self._keep(name, kwargs, append=True)
        self._record("log_row", name, kwargs)

    def log_list(self, name: str, value: Any, description: str = "") -> None:
        self._keep(name, list(value))
        self._record("log_list", name, list(value))

    def log_table(self, name: str, value: Any, description: str = "") -> None:
        self._keep(name, value)
        self._record("log_table", name, value)

    def log_image(
        self, name: str, path: str | None = None, plot: Any = None, **kw: Any
    ) -> None:
        self._record("log_image", name, path if path is not None else repr(plot))

    def get_metrics(self, name: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """What this process logged (offline there is no other source)."""
        if name is not None:
            return {name: self._metrics[name]} if name in self._metrics else {}
        return dict(self._metrics)

    # -- tags and properties -------------------------------------------------------------
    def tag(self, key: str, value: Any = None) -> None:
        self._tags[key] = value
        self._record("tag", key, value)

    def set_tags(self, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            self.tag(key, value)

    def get_tags(self) -> dict[str, Any]:
        return dict(self._tags)

    def add_properties(self, properties: dict[str, Any]) -> None:
        self._properties.update(properties)
        self._record("properties", None, properties)

    def get_properties(self) -> dict[str, Any]:
        return dict(self._properties)

    # -- files and models ------------------------------------------------------------
    def upload_file(self, name: str, path_or_stream: Any, **kwargs: Any) -> None:
        """Copy the file to ``<output>/logs/user/run_files/<name>`` and record it."""
        target = self._keep_file(name, path_or_stream)
        if target is not None:
            self._uploads[name] = target
        self._record("upload_file", name, str(path_or_stream), stored=target)

    def upload_files(self, names: list[str], paths: list[str], **kwargs: Any) -> None:
        for name, path in zip(names, paths, strict=True):
            self.upload_file(name, path)

    def upload_folder(self, name: str, path: str, **kwargs: Any) -> None:
        for root, _dirs, files in os.walk(path):
            for file in sorted(files):
                full = os.path.join(root, file)
                self.upload_file(os.path.join(name, os.path.relpath(full, path)), full)

    def register_model(
        self, model_name: str, model_path: str | None = None, **kw: Any
    ) -> Any:
        """Store the model in ``<output>/azureml-models/<name>/<version>/`` and record it.

        ``model_path`` names an uploaded file (as in Azure) or a local path. A later job
        finds the model with ``--model-dir <output>/azureml-models``.
        """
        source = self._uploads.get(model_path or "") or model_path
        output_dir = settings().get("output_dir")
        version, stored = 0, None
        if output_dir and source and os.path.exists(source):
            version, stored = store_model(output_dir, model_name, source)
        info = {"name": model_name, "path": model_path, "version": version, **kw}
        self._record("register_model", model_name, info, stored=stored)
        return _RegisteredModel(
            model_name, stored or model_path, kw.get("tags"), version
        )

    def _keep_file(self, name: str, source: Any) -> str | None:
        log_dir = settings().get("log_dir")
        if (
            not log_dir
            or os.path.isabs(name)
            or ".." in name.replace("\\", "/").split("/")
        ):
            return None
        target = os.path.join(log_dir, "user", "run_files", name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if isinstance(source, str | os.PathLike):
            shutil.copyfile(source, target)
        else:
            with open(target, "wb") as f:
                shutil.copyfileobj(source, f)
        return target

    # -- status -------------------------------------------------------------------------
    def get_status(self) -> str:
        return "Running"

    def complete(self, **kwargs: Any) -> None:
        self._record("status", None, "Completed")

    def fail(self, error_details: Any = None, **kwargs: Any) -> None:
        self._record("status", None, "Failed", error=str(error_details))

    def cancel(self) -> None:
        self._record("status", None, "Canceled")

    def flush(self, timeout_seconds: int = 300) -> None:
        """Records are written at once; nothing to flush."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise unsupported(f"Run.{name}")


class _RegisteredModel:
    def __init__(
        self, name: str, path: str | None, tags: dict[str, Any] | None, version: int
    ) -> None:
        self.name, self.path, self.tags, self.version = name, path, tags or {}, version

    def __repr__(self) -> str:
        return f"Model(name={self.name!r}, version={self.version}, offline=True)"
