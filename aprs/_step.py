"""ParallelRunStep: validate a job, decide fresh / resume / reuse, run it, record the result.

    ParallelRunStep(...) ──► validate (name, arguments, inputs) at construction
    run() / arun() ──► prepare (thread: script, output dir, inputs, fingerprint)
                   ──► reuse (completed + same fingerprint) | resume (interrupted) | fresh
                   ──► run_job ──► rename partial output into place ──► job_result.json

Output directory layout:
    <output>/<append_row_file_name>            final rows, only once the job completed
    <output>/<append_row_file_name>.partial    rows while running (resume truncates it)
    <output>/logs/job_result.json              the JobSummary of the last run
    <output>/logs/failures.jsonl               one record per failed try
    <output>/logs/state.json, journal.jsonl    fingerprint, status, resume journal
    <output>/logs/user/{stdout,stderr}/        what the entry script printed, per worker
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import msgspec
import orjson

from ._accounting import Thresholds
from ._backends import WorkerSpec, default_env, limit_thread_pools
from ._bridge._protocol import RESULT_COUNT, RESULT_ROWS
from ._bridge._runtime import locate_script
from ._config import ParallelRunConfig, validate_arguments, validate_step_name
from ._datasets import FileDataset, IterableInput, TabularDataset, as_input
from ._errors import (
    ConfigError,
    EntryScriptError,
    InputError,
    OutputError,
)
from ._job_state import code_files, job_fingerprint, read_json, write_state
from ._journal import Journal
from ._plan import expected_totals
from ._runtime_flags import apply_runtime_flags
from ._summary import JobSummary
from ._tabular._output import TableOutput

if TYPE_CHECKING:
    from ._scheduler import JobPlan

__all__ = ("ParallelRunStep", "run_coroutine")

# what every worker of a table job imports to read its slices (pyarrow lazily): the fork
# server imports it once (WorkerSpec.preload); the reader of each input format, then pandas
_TABLE_READERS = {
    "delimited": "pyarrow.csv",
    "parquet": "pyarrow.parquet",
    "json_lines": "pyarrow.json",
}
log = logging.getLogger("aprs.step")

_STATE_FILE = "state.json"
_JOURNAL_FILE = "journal.jsonl"
_RESULT_FILE = "job_result.json"
_TABULAR_DEFAULT_BYTES = 1 << 20  # Azure's default mini_batch_size for tables: "1MB"


class ParallelRunStep:
    """Run an entry script's ``init()`` / ``run(mini_batch)`` over inputs, as in Azure ML.

    Example:
        >>> config = ParallelRunConfig(entry_script="score.py", mini_batch_size=10)
        >>> step = ParallelRunStep(
        ...     name="score-digits",
        ...     parallel_run_config=config,
        ...     inputs=[FileDataset.from_files("data/images")],
        ...     output="out/",
        ...     arguments=["--model", "svc"],
        ... )
        >>> summary = step.run()          # or: summary = await step.arun()

    Raises:
        ConfigError: the name, arguments or inputs break Azure's rules (at construction).
        InputError, EntryScriptError, OutputError: when the job starts (usage errors).
        JobError: the job ran and failed (ErrorThresholdError, InitFailedError,
            JobInterruptedError); ``exc.summary`` holds the counts.
    """

    # over 50 lines on purpose: one flat check per Azure rule, in the order Azure applies
    # them, each raising its own one-paragraph ConfigError (the tabular and Ray issues edit
    # single checks here; a split would scatter the list)
    def __init__(
        self,
        name: str,
        parallel_run_config: ParallelRunConfig,
        inputs: Sequence[Any],
        output: str | os.PathLike[str] | None = None,
        side_inputs: Sequence[Any] | None = None,
        arguments: Sequence[Any] | None = None,
        allow_reuse: bool = True,
    ) -> None:
        self.name = validate_step_name(name)
        if not isinstance(parallel_run_config, ParallelRunConfig):
            raise ConfigError(
                "parallel_run_config must be a ParallelRunConfig; got "
                f"{type(parallel_run_config).__name__}. Build one with "
                "ParallelRunConfig(entry_script=..., ...)."
            )
        # Azure runtime flags among the arguments (--error_threshold 5 ...) set the config
        self.config, arguments = apply_runtime_flags(parallel_run_config, arguments)
        self.arguments, self.warnings = validate_arguments(arguments)
        for warning in self.warnings:
            log.warning("%s", warning)
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
            raise ConfigError(
                f"inputs must be a list of inputs; got {type(inputs).__name__}. Wrap it in a "
                "list: inputs=[FileDataset.from_files(...)]."
            )
        if not inputs:
            raise ConfigError("inputs is empty. Pass at least one input to split.")
        self.inputs = [as_input(obj, i) for i, obj in enumerate(inputs)]
        kinds = {type(i) for i in self.inputs}
        if len(kinds) > 1:
            names = " and ".join(sorted(k.__name__ for k in kinds))
            raise ConfigError(
                "All inputs of a ParallelRunStep must be of one type (as in Azure ML: file "
                f"and tabular inputs cannot be mixed); got {names}. Run them as separate "
                "steps."
            )
        self.tabular = isinstance(self.inputs[0], TabularDataset)
        self.side_inputs = [os.fspath(_side_path(s)) for s in (side_inputs or [])]
        self.output = os.path.abspath(
            os.fspath(output)
            if output is not None
            else os.path.join("aprs_output", name)
        )
        self.allow_reuse = bool(allow_reuse)
        # how the CLI started this job (argv, cwd), kept in state.json for `aprs status`
        self.command: dict[str, Any] | None = None
        spec = self.config.mini_batch_spec()
        if self.config.mini_batch_rows is not None and not self.tabular:
            raise ConfigError(
                f"mini_batch_rows={self.config.mini_batch_rows} counts table rows, which "
                "only applies to tabular inputs (TabularDataset, --input-type tabular). Set "
                "mini_batch_size instead."
            )
        if spec.unit == "bytes" and isinstance(self.inputs[0], IterableInput):
            raise ConfigError(
                f"mini_batch_size={self.config.mini_batch_size!r} is a size in bytes, which "
                "only applies to file inputs. For in-memory items give a number of items."
            )
        if self.config.ship_inputs and self.tabular:
            raise ConfigError(
                "ship_inputs=True sends file inputs to the Ray workers as bytes, but these "
                "inputs are tables (TabularDataset), whose slices the workers read "
                "themselves from the table files' paths. Put the tables on storage every "
                "node mounts at the same path and remove ship_inputs (--ship-inputs), or "
                "pass the files as a FileDataset (--input-type file) to ship them whole."
            )
        _check_models(self.config)

    def __repr__(self) -> str:
        return f"ParallelRunStep(name={self.name!r}, output={self.output!r})"

    # -- running ------------------------------------------------------------------------

    def run(self) -> JobSummary:
        """Run the job to the end, blocking; returns the summary (raises on failure)."""
        return self._run_blocking()

    async def arun(
        self, *, handle_signals: bool = True, on_progress: Any = None
    ) -> JobSummary:
        """Awaitable twin of :meth:`run`, for use inside a running event loop."""
        prep = await anyio.to_thread.run_sync(self._prepare)
        if prep.reused is not None:
            return prep.reused
        worker = self._launch_workers(prep)
        try:
            return await self._run_prepared(prep, worker, handle_signals, on_progress)
        finally:
            unused = _discard(worker)
            if unused is not None:  # the job stopped before its pool started
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(unused.wait)

    def _run_blocking(self, on_progress: Any = None) -> JobSummary:
        """run(), and the CLI's: prepared, and the fork server started, before the event
        loop and the engine are even imported (the preload overlaps both)."""
        prep = self._prepare()
        if prep.reused is not None:
            return prep.reused
        worker = self._launch_workers(prep)
        try:
            summary: JobSummary = run_coroutine(
                self._run_prepared, prep, worker, True, on_progress
            )
        finally:
            unused = _discard(worker)
            if unused is not None:
                unused.wait()
        return summary

    def _launch_workers(self, prep: _Prepared) -> WorkerSpec:
        """The workers' spec, with the fork server already started (local jobs): its
        preload (the script's imports, seconds) runs while this process sets the job up,
        and the pool adopts it (perf/RESULTS.md, "start-up")."""
        from ._bridge._launch import launch_early

        worker = self._worker_spec(prep)
        worker.fork_server = launch_early(worker)
        return worker

    async def _run_prepared(
        self,
        prep: _Prepared,
        worker: WorkerSpec,
        handle_signals: bool,
        on_progress: Any,
    ) -> JobSummary:
        from ._scheduler import run_job

        await anyio.to_thread.run_sync(self._write_state, prep.fingerprint, "running")
        plan = self._plan(prep, worker, handle_signals, on_progress)
        summary, error = await run_job(plan)
        await anyio.to_thread.run_sync(self._finish, plan, summary, prep.fingerprint)
        if error is not None:
            # job_result.json and the partial output are already in place
            raise error
        return summary

    # -- preparation (blocking; runs in a thread) ---------------------------------------

    def _prepare(self) -> _Prepared:
        script_path, source_dir = _check_script(self.config)
        self._check_output()
        self._check_inputs()
        fingerprint = self._fingerprint(script_path, source_dir)
        prep = _Prepared(script_path, source_dir, fingerprint)
        output = self._table_output(source_dir)
        prep.framed = output.framed
        prep.parquet = output.kind == "parquet"
        state = read_json(os.path.join(self._log_dir, _STATE_FILE))
        if (
            state is None
            or fingerprint is None
            or state.get("fingerprint") != fingerprint
        ):
            return prep
        self._reuse_or_resume(prep, state.get("status"))
        return prep

    def _check_inputs(self) -> None:
        for i, inp in enumerate(self.inputs):
            if isinstance(inp, (FileDataset, TabularDataset)) and not inp.resolve():
                raise InputError(
                    f"inputs[{i}] ({inp!r}) contains no files. Check the path, or remove "
                    "the empty input."
                )
        for path in self.side_inputs:
            if not os.path.exists(path):
                raise InputError(
                    f"The side input {path!r} does not exist. Pass an existing file or "
                    "folder."
                )

    def _reuse_or_resume(self, prep: _Prepared, status: Any) -> None:
        """Same fingerprint as the last run: reuse its output, or resume from its journal."""
        if status == "completed" and self.allow_reuse:
            previous = read_json(os.path.join(self._log_dir, _RESULT_FILE))
            out = self._final_path
            if previous is not None and (out is None or os.path.exists(out)):
                summary = msgspec.convert(previous, JobSummary)
                summary.reused = True
                summary.elapsed_s = 0.0
                prep.reused = summary
            return
        # a Parquet file cannot be appended after its footer: such a job restarts afresh
        if (
            status in ("running", "interrupted")
            and self.allow_reuse
            and not prep.parquet
        ):
            journal = Journal.load(os.path.join(self._log_dir, _JOURNAL_FILE))
            partial = self._partial_path
            if (
                journal is not None
                and journal.next > 0
                and (
                    partial is None
                    or (
                        os.path.exists(partial)
                        and os.path.getsize(partial) >= journal.offset
                    )
                )
            ):
                prep.resume = journal

    def _table_output(self, source_dir: str | None) -> TableOutput:
        """How workers format DataFrames (checks parallel_run_step.settings.json)."""
        argv = [*self._runtime_args(), *self.arguments]
        try:
            return TableOutput.from_run_args(argv, source_dir)
        except ValueError as exc:
            raise ConfigError(f"{exc} Fix the file or remove it.") from None

    @property
    def _log_dir(self) -> str:
        return os.path.join(self.output, "logs")

    @property
    def _final_path(self) -> str | None:
        if self.config.output_action != "append_row":
            return None
        return os.path.join(self.output, self.config.effective_append_row_file_name)

    @property
    def _partial_path(self) -> str | None:
        final = self._final_path
        return None if final is None else final + ".partial"

    def _check_output(self) -> None:
        try:
            os.makedirs(os.path.join(self._log_dir, "user"), exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"The output directory {self.output} cannot be created: {exc.strerror}. "
                "Choose a directory you can write to with --output."
            ) from exc
        probe = os.path.join(self.output, f".aprs-write-test-{os.getpid()}")
        try:
            with open(probe, "wb"):
                pass
            os.unlink(probe)
        except OSError as exc:
            raise OutputError(
                f"The output directory {self.output} is not writable ({exc.strerror}). "
                "Fix its permissions or choose another directory with --output."
            ) from exc
        final = self._final_path
        if final is not None:
            real_out = os.path.realpath(self.output)
            if os.path.commonpath([real_out, os.path.realpath(final)]) != real_out:
                raise OutputError(
                    f"append_row_file_name={self.config.append_row_file_name!r} would write "
                    f"outside the output directory {self.output}. Use a plain file name."
                )
            os.makedirs(os.path.dirname(final), exist_ok=True)

    def _table_preload(self) -> tuple[str, ...]:
        """Modules every worker of this job imports to read its table slices."""
        formats = sorted(
            {i.options.format for i in self.inputs if isinstance(i, TabularDataset)}
        )
        if not formats:
            return ()
        readers = (_TABLE_READERS[f] for f in formats if f in _TABLE_READERS)
        return ("aprs._tabular._batch", "pyarrow", *readers, "pandas")

    def _fingerprint(self, script_path: str, source_dir: str | None) -> str | None:
        """Hash of everything that determines the output; None when inputs are in memory."""
        if any(isinstance(i, IterableInput) for i in self.inputs):
            return None
        files = [i for i in self.inputs if isinstance(i, (FileDataset, TabularDataset))]
        side = [FileDataset([p]) for p in self.side_inputs]
        return job_fingerprint(
            self.config.to_dict(),
            [self.arguments, self.side_inputs, self.output],
            code_files(script_path, source_dir, self.output),
            files,
            side,
        )

    def _worker_spec(self, prep: _Prepared) -> WorkerSpec:
        """How this job's workers start: interpreter, environment, script, preload."""
        cfg = self.config
        env = dict(cfg.environment_variables or {})
        env["AZUREML_BI_OUTPUT_PATH"] = self.output
        env.update(_compat_env(cfg, self.name))
        append_row = cfg.output_action == "append_row"
        worker = WorkerSpec(
            entry_script=prep.script_path,
            source_directory=prep.source_dir,
            argv=[*self._runtime_args(), *self.arguments],
            env=default_env(env),
            process_count=cfg.effective_process_count,
            result_mode=RESULT_ROWS if append_row else RESULT_COUNT,
            run_timeout_s=float(cfg.run_invocation_timeout),
            python=cfg.environment or sys.executable,
            logging_level=cfg.effective_logging_level,
            log_dir=self._log_dir,
            output_dir=self.output,
            redirect_stdio=True,
            worker_start=cfg.worker_start,
            preload=self._table_preload(),
        )
        if cfg.compute_target != "local":
            worker.node_count = cfg.node_count
            worker.ray = cfg.ray_options()
        else:  # Ray sizes its actors' thread pools itself (num_cpus)
            limit_thread_pools(worker.env, worker.process_count)
        return worker

    def _plan(
        self,
        prep: _Prepared,
        worker: WorkerSpec,
        handle_signals: bool,
        on_progress: Any,
    ) -> JobPlan:
        from ._scheduler import JobPlan

        cfg = self.config
        unit, batch_value = self._batching()
        append_row = cfg.output_action == "append_row"
        items_expected, batches_expected = expected_totals(
            self.inputs, unit, batch_value, keyed=bool(cfg.partition_keys)
        )
        return JobPlan(
            spec=worker,
            sources=self.inputs,
            unit=unit,
            batch_value=batch_value,
            thresholds=Thresholds(
                cfg.error_threshold,
                cfg.allowed_failed_count,
                cfg.allowed_failed_percent,
                cfg.run_max_try,
            ),
            append_row=append_row,
            output_dir=self.output,
            output_file=self._final_path,
            partial_file=self._partial_path,
            log_dir=self._log_dir,
            journal_path=os.path.join(self._log_dir, _JOURNAL_FILE),
            resume=prep.resume,
            partition_keys=list(cfg.partition_keys) if cfg.partition_keys else None,
            framed_output=prep.framed and append_row,
            parquet_output=prep.parquet and append_row,
            handle_signals=handle_signals,
            on_progress=on_progress,
            items_expected=items_expected,
            batches_expected=batches_expected,
            compute_target="local" if cfg.compute_target == "local" else "ray",
            isolate_failures=cfg.isolate_failures,
        )

    def _batching(self) -> tuple[str, int]:
        """(unit, value): "count" items, "bytes" (files, tables) or "rows" (tables)."""
        cfg = self.config
        if not self.tabular:
            spec = cfg.mini_batch_spec()
            return spec.unit, spec.value
        if cfg.mini_batch_rows is not None:
            return "rows", cfg.mini_batch_rows
        if cfg.mini_batch_size is None:
            return "bytes", _TABULAR_DEFAULT_BYTES
        return "bytes", cfg.mini_batch_spec().value  # a plain number is bytes here

    def _runtime_args(self) -> list[str]:
        """The driver arguments Azure puts in sys.argv before the user's arguments."""
        cfg = self.config
        args = [
            "--mini_batch_size",
            str(cfg.mini_batch_size or ("1MB" if self.tabular else 10)),
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
            self.output,
            "--process_count_per_node",
            str(cfg.effective_process_count),
        ]
        if cfg.output_action == "append_row":
            args += ["--append_row_file_name", cfg.effective_append_row_file_name]
        return args

    # -- finishing ----------------------------------------------------------------------

    def _finish(
        self, plan: JobPlan, summary: JobSummary, fingerprint: str | None
    ) -> None:
        if summary.mini_batches_total == 0 and summary.status == "completed":
            self._write_state(fingerprint, "failed")
            raise InputError(
                "The inputs produced no items, so there was nothing to run. Check that the "
                "iterable passed in inputs is not empty (or already consumed)."
            )
        if summary.status == "completed" and plan.partial_file and plan.output_file:
            os.replace(plan.partial_file, plan.output_file)
        elif summary.status != "completed" and plan.partial_file:
            summary.output_file = plan.partial_file
        with open(os.path.join(self._log_dir, _RESULT_FILE), "wb") as f:
            f.write(
                orjson.dumps(msgspec.to_builtins(summary), option=orjson.OPT_INDENT_2)
            )
        from ._joblog import write_result_files

        write_result_files(self._log_dir, summary)
        status = (
            "completed"
            if summary.status == "completed"
            else ("interrupted" if summary.status == "interrupted" else "failed")
        )
        self._write_state(fingerprint, status)

    def _write_state(self, fingerprint: str | None, status: str) -> None:
        write_state(
            os.path.join(self._log_dir, _STATE_FILE),
            fingerprint=fingerprint,
            status=status,
            name=self.name,
            command=self.command,
        )


class _Prepared:
    __slots__ = (
        "fingerprint",
        "framed",
        "parquet",
        "resume",
        "reused",
        "script_path",
        "source_dir",
    )

    def __init__(
        self, script_path: str, source_dir: str | None, fingerprint: str | None
    ) -> None:
        self.script_path = script_path
        self.source_dir = source_dir
        self.fingerprint = fingerprint
        self.resume: Any = None
        self.reused: JobSummary | None = None
        self.framed = False
        self.parquet = False


def _check_script(cfg: ParallelRunConfig) -> tuple[str, str | None]:
    """Return (script as workers get it, absolute source directory); check it compiles."""
    source_dir = os.path.abspath(cfg.source_directory) if cfg.source_directory else None
    if source_dir is not None and not os.path.isdir(source_dir):
        raise EntryScriptError(
            f"source_directory {cfg.source_directory!r} does not exist or is not a folder. "
            "Point it at the folder that holds the entry script."
        )
    where = locate_script(cfg.entry_script, source_dir)
    path = where.path
    if path is None:  # a module name, imported from source_directory or here
        return where.spec, source_dir or os.getcwd()
    if not os.path.isfile(path):
        inside = f" in source_directory {source_dir}" if source_dir else ""
        raise EntryScriptError(
            f"The entry script {cfg.entry_script!r} was not found{inside} (looked for "
            f"{path}). Check entry_script / --entry-script and source_directory."
        )
    try:
        with open(path, "rb") as f:
            source = f.read()
        compile(source, path, "exec")
    except SyntaxError as exc:
        raise EntryScriptError(
            f"The entry script {path} has a syntax error at line {exc.lineno}: {exc.msg}. "
            "Fix the script and run the job again."
        ) from exc
    except OSError as exc:
        raise EntryScriptError(
            f"The entry script {path} cannot be read: {exc.strerror}."
        ) from exc
    return where.spec, source_dir


def _discard(worker: WorkerSpec) -> Any:
    """End the fork server started for ``worker`` unless a pool adopted it: the process
    to wait for, or None."""
    launch = worker.fork_server
    return launch.discard() if launch is not None else None


def _side_path(obj: Any) -> str | os.PathLike[str]:
    if isinstance(obj, FileDataset):
        patterns = obj.patterns
        return patterns[0] if len(patterns) == 1 else os.path.commonpath(patterns)
    if isinstance(obj, (str, os.PathLike)):
        return obj
    raise ConfigError(
        f"side_inputs entries must be paths or FileDatasets; got {type(obj).__name__}."
    )


def _use_uvloop() -> bool:
    if os.environ.get("APRS_LOOP", "").lower() == "asyncio":
        return False
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def run_coroutine(fn: Any, *args: Any) -> Any:
    """Run ``fn(*args)`` on a fresh event loop (uvloop when installed)."""
    return anyio.run(
        fn, *args, backend="asyncio", backend_options={"use_uvloop": _use_uvloop()}
    )


def _check_models(cfg: ParallelRunConfig) -> None:
    """Every model path must exist before any worker starts (a usage error otherwise)."""
    missing = [
        f"{name}={path}"
        for name, path in (cfg.models or {}).items()
        if not os.path.exists(path)
    ]
    if cfg.model_dir is not None and not os.path.isdir(cfg.model_dir):
        missing.append(f"--model-dir {cfg.model_dir}")
    if missing:
        raise ConfigError(
            f"Model path not found: {', '.join(missing)} (relative paths are taken from "
            f"{os.getcwd()}, or from the job file's folder). Check the path given with "
            "--model NAME=PATH / --model-dir (or models: / model_dir: in the job file)."
        )


def _compat_env(cfg: ParallelRunConfig, name: str) -> dict[str, str]:
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
