"""Azure's ``EntryScript`` helper, for entry scripts that use it unchanged.

Azure scripts often do ``from azureml_user.parallel_run import EntryScript`` and log through
``EntryScript().logger``. Inside an aprs worker that import resolves to this class through the
compatibility layer (``aprs/_compat``, last on ``sys.path``, so a real ``azureml_user`` wins),
so such scripts run as they are. Paths follow the aprs output layout; ``agent_name`` is
Azure's ``processNNN``.
"""

from __future__ import annotations

import logging
import os
from typing import Any, ClassVar

__all__ = ("EntryScript",)


class EntryScript:
    """Singleton with ``logger``, ``log_dir``, ``output_dir``, ``working_dir``, ``agent_name``."""

    _instance: ClassVar[EntryScript | None] = None
    _config: ClassVar[dict[str, Any]] = {}

    def __new__(cls, logging_level: str | None = None) -> EntryScript:  # noqa: PYI034
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __init__(self, logging_level: str | None = None) -> None:
        if logging_level is not None:
            self.logger.setLevel(logging_level.upper())

    @property
    def AZUREML_BI_OUTPUT_PATH(self) -> str:
        """The step's output directory, as the environment variable of that name."""
        return os.environ.get("AZUREML_BI_OUTPUT_PATH", self.output_dir)

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
