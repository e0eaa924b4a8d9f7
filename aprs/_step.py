"""ParallelRunStep: validate a job, decide fresh / resume / reuse, run it, record the result.

    ParallelRunStep(...) ──► validate (name, arguments, inputs) at construction
    run() / arun() ──► prepare (thread: script, output dir, inputs, fingerprint)
                   ──► reuse (completed + same fingerprint) | resume (interrupted) | fresh
                   ──► _launch_workers: the fork server starts (``with`` / ``async with``
                       Launched: ended on the way out unless the pool adopted it)
                   ──► run_job ──► rename partial output into place ──► job_result.json

Output directory layout:
    <output>/<append_row_file_name>            final rows, only once the job completed
    <output>/<append_row_file_name>.partial    rows while running (resume truncates it)
    <output>/logs/job_result.json              the JobSummary of the last run
    <output>/logs/failures.jsonl               one record per failed try
    <output>/logs/state.json, journal.jsonl    fingerprint, status, resume journal
    <output>/logs/user/{stdout,stderr}/        what the entry script printed, per worker

The usage checks (script, models, output folder, inputs, the DataFrame output's settings)
are ``_step_checks``; how the workers start (driver arguments, environment, preload: the
WorkerSpec, and ``Launched``, the early fork server's lifetime) is ``_step_workers``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import msgspec
import orjson

from ._accounting import Thresholds
from ._config import ParallelRunConfig, validate_arguments, validate_step_name
from ._datasets import FileDataset, IterableInput, TabularDataset, as_input
from ._errors import ConfigError, InputError
from ._job_state import code_files, job_fingerprint, read_json, write_state
from ._journal import Journal
from ._plan import expected_totals
from ._runtime_flags import apply_runtime_flags
from ._step_checks import (
    check_inputs,
    check_models,
    check_output,
    check_script,
    check_table_output,
    side_path,
)
from ._step_workers import Launched, runtime_args, table_preload, worker_spec
from ._summary import JobSummary

if TYPE_CHECKING:
    from ._backends import WorkerSpec
    from ._job_plan import JobPlan

__all__ = ("ParallelRunStep", "run_coroutine")

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
        self.side_inputs = [os.fspath(side_path(s)) for s in (side_inputs or [])]
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
        check_models(self.config)

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
        async with self._launch_workers(prep) as worker:
            return await self._run_prepared(prep, worker, handle_signals, on_progress)

    def _run_blocking(self, on_progress: Any = None) -> JobSummary:
        """run(), and the CLI's: prepared, and the fork server started, before the event
        loop and the engine are even imported (the preload overlaps both)."""
        prep = self._prepare()
        if prep.reused is not None:
            return prep.reused
        with self._launch_workers(prep) as worker:
            summary: JobSummary = run_coroutine(
                self._run_prepared, prep, worker, True, on_progress
            )
        return summary

    def _launch_workers(self, prep: _Prepared) -> Launched:
        """The workers' spec, with the fork server already started (local jobs): its
        preload (the script's imports, seconds) runs while this process sets the job up,
        and the pool adopts it (perf/RESULTS.md, "start-up"). Run the job inside the
        returned context (``with`` / ``async with``), which ends an unadopted one."""
        from ._bridge._launch import launch_early

        worker = worker_spec(
            self.config,
            name=self.name,
            script_path=prep.script_path,
            source_dir=prep.source_dir,
            argv=self._worker_argv(),
            output=self.output,
            log_dir=self._log_dir,
            preload=table_preload(self.inputs),
        )
        worker.fork_server = launch_early(worker)
        return Launched(worker)

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
        script_path, source_dir = check_script(self.config)
        check_output(
            self.output,
            self._log_dir,
            self._final_path,
            self.config.append_row_file_name,
        )
        check_inputs(self.inputs, self.side_inputs)
        fingerprint = self._fingerprint(script_path, source_dir)
        prep = _Prepared(script_path, source_dir, fingerprint)
        output = check_table_output(self._worker_argv(), source_dir)
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

    def _plan(
        self,
        prep: _Prepared,
        worker: WorkerSpec,
        handle_signals: bool,
        on_progress: Any,
    ) -> JobPlan:
        from ._job_plan import JobPlan  # the record only; here to keep start-up lean

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

    def _worker_argv(self) -> list[str]:
        """The entry script's sys.argv after its name: the driver arguments Azure puts
        there, then the step's arguments."""
        return [*runtime_args(self.config, self.output, self.tabular), *self.arguments]

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
