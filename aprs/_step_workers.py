"""How a job's workers start: Azure's driver arguments, their environment and preload.

    config + output ──► runtime_args: the flags Azure's driver puts first in sys.argv
    config + name   ──► compat_env: run id, experiment, models for aprs/_compat
    table inputs    ──► table_preload: readers the fork server imports once
        ──► worker_spec ──► WorkerSpec (launch_early, then the backend's pool or actors)
    Launched(WorkerSpec): ``with`` / ``async with`` around a run; on the way out it ends
        the fork server launched early unless a pool adopted it

Invariants: the functions are pure functions of the step's settings (the run id is the
one random part); nothing here imports the engine or starts a process. Local workers' native thread pools
are sized here (cores // workers); Ray sizes its actors' pools itself (num_cpus).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.to_thread
import orjson

from ._backends import WorkerSpec, default_env, limit_thread_pools
from ._bridge._protocol import RESULT_COUNT, RESULT_ROWS
from ._config import ParallelRunConfig
from ._datasets import TabularDataset

__all__ = ("Launched", "runtime_args", "table_preload", "worker_spec")

# what every worker of a table job imports to read its slices (pyarrow lazily): the fork
# server imports it once (WorkerSpec.preload); the reader of each input format, then pandas
_TABLE_READERS = {
    "delimited": "pyarrow.csv",
    "parquet": "pyarrow.parquet",
    "json_lines": "pyarrow.json",
}


def worker_spec(
    cfg: ParallelRunConfig,
    *,
    name: str,
    script_path: str,
    source_dir: str | None,
    argv: list[str],
    output: str,
    log_dir: str,
    preload: tuple[str, ...],
) -> WorkerSpec:
    """How this job's workers start: interpreter, environment, script, preload."""
    env = dict(cfg.environment_variables or {})
    env["AZUREML_BI_OUTPUT_PATH"] = output
    env.update(compat_env(cfg, name))
    append_row = cfg.output_action == "append_row"
    worker = WorkerSpec(
        entry_script=script_path,
        source_directory=source_dir,
        argv=argv,
        env=default_env(env),
        process_count=cfg.effective_process_count,
        result_mode=RESULT_ROWS if append_row else RESULT_COUNT,
        run_timeout_s=float(cfg.run_invocation_timeout),
        python=cfg.environment or sys.executable,
        logging_level=cfg.effective_logging_level,
        log_dir=log_dir,
        output_dir=output,
        redirect_stdio=True,
        worker_start=cfg.worker_start,
        preload=preload,
    )
    if cfg.compute_target != "local":
        worker.node_count = cfg.node_count
        worker.ray = cfg.ray_options()
    else:  # Ray sizes its actors' thread pools itself (num_cpus)
        limit_thread_pools(worker.env, worker.process_count)
    return worker


def runtime_args(cfg: ParallelRunConfig, output: str, tabular: bool) -> list[str]:
    """The driver arguments Azure puts in sys.argv before the user's arguments."""
    args = [
        "--mini_batch_size",
        str(cfg.mini_batch_size or ("1MB" if tabular else 10)),
        "--error_threshold",
        str(cfg.error_threshold),
        "--output_action",
        cfg.output_action,
        "--logging_level",
        cfg.effective_logging_level,
        "--run_invocation_timeout",
        f"{cfg.run_invocation_timeout:g}",
        "--run_max_try",
        str(cfg.run_max_try),
        "--output",
        output,
        "--process_count_per_node",
        str(cfg.effective_process_count),
    ]
    if cfg.output_action == "append_row":
        args += ["--append_row_file_name", cfg.effective_append_row_file_name]
    return args


def table_preload(inputs: Sequence[Any]) -> tuple[str, ...]:
    """Modules every worker of this job imports to read its table slices."""
    formats = sorted(
        {i.options.format for i in inputs if isinstance(i, TabularDataset)}
    )
    if not formats:
        return ()
    readers = (_TABLE_READERS[f] for f in formats if f in _TABLE_READERS)
    return ("aprs._tabular._batch", "pyarrow", *readers, "pandas")


def compat_env(cfg: ParallelRunConfig, name: str) -> dict[str, str]:
    """Variables the Azure compatibility layer reads in the workers (aprs/_compat)."""
    import uuid

    from ._compat import EXPERIMENT_ENV, MODELS_ENV, RUN_ID_ENV

    # "OfflineRun_": scripts that test run.id.startswith("OfflineRun") skip workspace calls
    run_id = f"OfflineRun_{name}_{uuid.uuid4().hex[:12]}"
    env = {RUN_ID_ENV: run_id, EXPERIMENT_ENV: name}
    if cfg.models:
        models = {k: os.path.abspath(v) for k, v in cfg.models.items()}
        env[MODELS_ENV] = orjson.dumps(models).decode()
    if cfg.model_dir:
        env["AZUREML_MODEL_DIR"] = os.path.abspath(cfg.model_dir)
    return env


class Launched:
    """A job's workers with their fork server started early (``_launch_workers``).

    ``with`` (run()) or ``async with`` (arun()) yields the WorkerSpec; leaving ends that
    fork server unless a pool adopted it (the job stopped before its pool started) and
    waits for it, in a thread when on the loop.
    """

    __slots__ = ("worker",)

    def __init__(self, worker: WorkerSpec) -> None:
        self.worker = worker

    def __enter__(self) -> WorkerSpec:
        return self.worker

    def __exit__(self, *exc_info: object) -> None:
        unused = self._discard()
        if unused is not None:
            unused.wait()

    async def __aenter__(self) -> WorkerSpec:
        return self.worker

    async def __aexit__(self, *exc_info: object) -> None:
        unused = self._discard()
        if unused is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(unused.wait)

    def _discard(self) -> Any:
        """The fork server's process, killed, when no pool adopted it; else None."""
        launch = self.worker.fork_server
        return launch.discard() if launch is not None else None
