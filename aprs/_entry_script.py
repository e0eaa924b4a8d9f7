"""Azure's ``EntryScript`` helper, for entry scripts that use it unchanged.

Azure scripts often do ``from azureml_user.parallel_run import EntryScript`` and log through
``EntryScript().logger``. Inside an aprs worker that import resolves to this shim (installed in
``sys.modules`` only when no real ``azureml_user`` package is importable), so such scripts run
as they are. Paths follow the aprs output layout.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import types
from typing import Any, ClassVar

__all__ = ("EntryScript", "install_shim")


class EntryScript:
    """Singleton with ``logger``, ``log_dir``, ``output_dir``, ``working_dir``, ``agent_name``."""

    _instance: ClassVar[EntryScript | None] = None
    _config: ClassVar[dict[str, Any]] = {}

    def __new__(cls) -> EntryScript:  # noqa: PYI034 - a singleton, not a subclassable factory
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    @property
    def agent_name(self) -> str:
        return str(self._config.get("agent_name", f"process{os.getpid()}"))

    @property
    def output_dir(self) -> str:
        return str(self._config.get("output_dir") or os.getcwd())

    @property
    def working_dir(self) -> str:
        return os.getcwd()

    @property
    def log_dir(self) -> str:
        base = self._config.get("log_dir") or os.path.join(self.output_dir, "logs")
        path = os.path.join(str(base), "user", "entry_script_log")
        os.makedirs(path, exist_ok=True)
        return path

    @property
    def logger(self) -> logging.Logger:
        logger = logging.getLogger(f"entry_script.{self.agent_name}")
        if not getattr(logger, "_aprs_configured", False):
            handler = logging.FileHandler(
                os.path.join(self.log_dir, f"{self.agent_name}.log.txt"),
                encoding="utf-8",
            )
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            )
            logger.addHandler(handler)
            logger._aprs_configured = True  # type: ignore[attr-defined]
        return logger


def install_shim(
    *, agent_name: str, output_dir: str | None, log_dir: str | None
) -> None:
    """Make ``azureml_user.parallel_run.EntryScript`` importable in this worker."""
    EntryScript._config = {
        "agent_name": agent_name,
        "output_dir": output_dir,
        "log_dir": log_dir,
    }
    if "azureml_user" in sys.modules or importlib.util.find_spec("azureml_user"):
        return
    package = types.ModuleType("azureml_user")
    package.__path__ = []
    module = types.ModuleType("azureml_user.parallel_run")
    module.EntryScript = EntryScript  # type: ignore[attr-defined]
    package.parallel_run = module  # type: ignore[attr-defined]
    sys.modules["azureml_user"] = package
    sys.modules["azureml_user.parallel_run"] = module
