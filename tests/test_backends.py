"""The backend seam: selection by compute_target, and the worker runtime's import boundary."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

import aprs
from aprs._backends import BACKENDS, WorkerSpec, create_backend
from aprs._bridge._runtime import locate_script


class _Listener:
    def on_outcome(self, attempt: object, outcome: object) -> None: ...
    def on_requeue(self, attempts: object) -> None: ...
    def on_capacity(self) -> None: ...
    def on_fatal(self, exc: BaseException) -> None: ...


def _spec() -> WorkerSpec:
    return WorkerSpec("score.py", None, [], {}, 1, 0, 1.0)


def test_unknown_compute_target_is_a_config_error() -> None:
    """A name no backend has fails with ConfigError listing the known ones."""
    with pytest.raises(aprs.ConfigError, match=r"'gpu-cluster'.*local, ray"):
        create_backend("gpu-cluster", _spec(), _Listener())


RAY_READY = all(
    importlib.util.find_spec(m) is not None for m in ("ray", "aprs._backends._ray")
)


@pytest.mark.skipif(RAY_READY, reason="the ray backend and ray are installed")
def test_missing_ray_backend_names_the_extra() -> None:
    """compute_target='ray' without the ray extra (or its module) says how to install it."""
    with pytest.raises(aprs.UsageError, match=r"pip install 'aprs\[ray\]'"):
        create_backend("ray", _spec(), _Listener())


def test_local_is_the_first_backend() -> None:
    """'local' maps to the process pool module, imported lazily."""
    assert BACKENDS["local"] == ("aprs._backends._local", "LocalBackend")


def _loaded(imports: str, bad: str) -> str:
    """The modules ``m`` for which ``bad`` holds once a fresh interpreter ran ``imports``."""
    code = f"import sys, {imports}; print(','.join(m for m in sys.modules if {bad}))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_worker_runtime_does_not_import_the_parent_side() -> None:
    """The pipe worker and its runtime import neither asyncio, subprocess nor the backends."""
    bad = (
        "m in ('asyncio', 'subprocess', 'aprs._backends') "
        "or m.startswith('aprs._bridge._pool')"
    )
    assert _loaded("aprs._bridge._worker, aprs._bridge._runtime", bad) == ""


def test_local_pool_does_not_import_ray() -> None:
    """The local backend shares code with the Ray backend (_backends/_slots) without
    importing Ray or any of the Ray backend's modules."""
    bad = "m == 'ray' or m.startswith(('ray.', 'aprs._backends._ray'))"
    assert _loaded("aprs._backends._local, aprs._bridge._pool", bad) == ""


def test_locate_script_resolves_every_form_once(tmp_path, monkeypatch) -> None:
    """One resolver for job, Runner and worker: module names, paths in and outside a source dir."""
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)

    inside = locate_script("pkg/score.py", str(src))
    assert (inside.spec, inside.module_name) == (
        os.path.join("pkg", "score.py"),
        "pkg.score",
    )
    assert (inside.path, inside.import_root) == (
        str(src / "pkg" / "score.py"),
        str(src),
    )
    # what a worker gets back resolves to the same place
    assert locate_script(inside.spec, inside.source_directory) == inside

    alone = locate_script("score.py", None)
    assert (alone.spec, alone.module_name) == (str(tmp_path / "score.py"), "score")
    assert alone.import_root == str(tmp_path)

    outside = locate_script(str(tmp_path / "other.py"), str(src))
    assert (outside.module_name, outside.import_root) == ("other", str(tmp_path))

    module = locate_script("pkg.score", str(src))
    assert (module.path, module.module_name, module.import_root) == (
        None,
        "pkg.score",
        str(src),
    )
