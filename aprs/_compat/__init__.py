"""The Azure ML compatibility layer: ``azureml.core`` and ``azureml_user`` for entry scripts.

    worker start ──► activate(index, output_dir, log_dir)
                       ├─ EntryScript configured (agent name, output and log folders)
                       ├─ site/ appended to sys.path, AFTER site-packages
                       └─ AZUREML_RUN_ID set only when site/ is what ``azureml.core`` resolves to
    entry script ──► ``from azureml.core import Model, Run``  ──► site/azureml/core ──► _model, _run
                 ──► ``from azureml_user.parallel_run import EntryScript`` ──► _entry_script
                 ──► any other ``azureml.*`` ──► ImportError naming this layer (_guard)

Invariants: a real ``azureml-core`` (or ``azureml_user``) that the worker's interpreter can
import always wins, because ``site/`` comes last on ``sys.path``; nothing here talks to Azure;
what scripts record (``Run.log`` and friends) goes to ``<output>/logs/metrics.jsonl``, one
JSON object per line, appended by every worker with one ``write`` per line.

The parent passes models through the environment: ``APRS_MODELS`` (JSON ``{name: path}``),
``AZUREML_MODEL_DIR`` (``--model-dir``), ``APRS_RUN_ID`` and ``APRS_EXPERIMENT_NAME``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ("MODELS_ENV", "RUN_ID_ENV", "SITE_DIR", "activate", "settings")

SITE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "site")
MODELS_ENV = "APRS_MODELS"
RUN_ID_ENV = "APRS_RUN_ID"
EXPERIMENT_ENV = "APRS_EXPERIMENT_NAME"

_settings: dict[str, Any] = {}


def settings() -> dict[str, Any]:
    """What ``activate`` recorded: agent_name, worker_index, output_dir, log_dir."""
    return _settings


def activate(*, worker_index: int, output_dir: str | None, log_dir: str | None) -> None:
    """Make the layer importable in this worker (called once, before the script loads)."""
    from .._entry_script import EntryScript

    agent = f"process{worker_index:03d}"
    _settings.update(
        agent_name=agent,
        worker_index=worker_index,
        output_dir=output_dir,
        log_dir=log_dir,
    )
    EntryScript._config = {
        "agent_name": agent,
        "output_dir": output_dir,
        "log_dir": log_dir,
    }
    real_core = serves_real_azureml_core(sys.path)
    if SITE_DIR not in sys.path:
        sys.path.append(SITE_DIR)
    if not real_core and os.environ.get(RUN_ID_ENV):
        # Samples test this variable to detect Azure, then call Run.get_context():
        # set it only where our Run answers that call.
        os.environ.setdefault("AZUREML_RUN_ID", os.environ[RUN_ID_ENV])


def serves_real_azureml_core(path: list[str]) -> bool:
    """True when a folder on ``path`` holds an ``azureml/core`` package (a real install)."""
    marker = os.path.join("azureml", "core", "__init__.py")
    return any(
        entry and entry != SITE_DIR and os.path.isfile(os.path.join(entry, marker))
        for entry in path
    )
