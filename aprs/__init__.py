"""aprs: run an Azure ML ParallelRunStep entry script over large inputs, locally and fast.

The public API is this module. Names are loaded on first use (PEP 562) so that worker
processes and ``python -m aprs --help`` start without importing the whole engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "AprsError",
    "BackendError",
    "BatchError",
    "BatchTimeoutError",
    "ConfigError",
    "Dataset",
    "EntryScriptError",
    "ErrorThresholdError",
    "FileDataset",
    "InitFailedError",
    "InputError",
    "JobError",
    "JobInterruptedError",
    "JobSummary",
    "OutputError",
    "ParallelRunConfig",
    "ParallelRunStep",
    "RemoteError",
    "Runner",
    "RunnerClosedError",
    "RunnerOverloadedError",
    "RunnerStatistics",
    "TabularDataset",
    "UsageError",
    "WorkerCrashedError",
]

_WHERE = {
    "Dataset": "._datasets",
    "FileDataset": "._datasets",
    "JobSummary": "._summary",
    "ParallelRunConfig": "._config",
    "ParallelRunStep": "._step",
    "Runner": "._runner",
    "RunnerStatistics": "._runner_stats",
    "TabularDataset": "._datasets",
}

if TYPE_CHECKING:
    from ._config import ParallelRunConfig as ParallelRunConfig
    from ._datasets import Dataset as Dataset
    from ._datasets import FileDataset as FileDataset
    from ._datasets import TabularDataset as TabularDataset
    from ._errors import AprsError as AprsError
    from ._errors import BackendError as BackendError
    from ._errors import BatchError as BatchError
    from ._errors import BatchTimeoutError as BatchTimeoutError
    from ._errors import ConfigError as ConfigError
    from ._errors import EntryScriptError as EntryScriptError
    from ._errors import ErrorThresholdError as ErrorThresholdError
    from ._errors import InitFailedError as InitFailedError
    from ._errors import InputError as InputError
    from ._errors import JobError as JobError
    from ._errors import JobInterruptedError as JobInterruptedError
    from ._errors import OutputError as OutputError
    from ._errors import RemoteError as RemoteError
    from ._errors import RunnerClosedError as RunnerClosedError
    from ._errors import RunnerOverloadedError as RunnerOverloadedError
    from ._errors import UsageError as UsageError
    from ._errors import WorkerCrashedError as WorkerCrashedError
    from ._runner import Runner as Runner
    from ._runner_stats import RunnerStatistics as RunnerStatistics
    from ._step import ParallelRunStep as ParallelRunStep
    from ._summary import JobSummary as JobSummary


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'aprs' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(_WHERE.get(name, "._errors"), __name__)
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
