"""A job's usage checks: the mistakes a user can fix, found before any worker starts.

    ParallelRunStep(...)  ──► side_path (each side input), check_models
    _prepare (a thread)   ──► check_script ──► check_output ──► check_inputs
                              (script found   (output folder   (every file input
                               + compiles)     writable)        has files)

Each check raises one usage error (ConfigError, EntryScriptError, OutputError, InputError)
whose one paragraph says what is wrong and how to fix it, or returns quietly. Invariants:
nothing here starts a process or imports the engine; the only thing written is the output
folder (with ``logs/user``) and a probe file that is removed at once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ._bridge._runtime import locate_script
from ._config import ParallelRunConfig
from ._datasets import FileDataset, TabularDataset
from ._errors import ConfigError, EntryScriptError, InputError, OutputError
from ._tabular._output import TableOutput

__all__ = (
    "check_inputs",
    "check_models",
    "check_output",
    "check_script",
    "check_table_output",
    "side_path",
)


def check_script(cfg: ParallelRunConfig) -> tuple[str, str | None]:
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


def check_models(cfg: ParallelRunConfig) -> None:
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


def check_output(
    output: str, log_dir: str, final: str | None, file_name: str | None
) -> None:
    """Create ``output`` and ``<log_dir>/user``, prove ``output`` writable, and keep the
    final file (``final``, from append_row_file_name ``file_name``) inside it."""
    try:
        os.makedirs(os.path.join(log_dir, "user"), exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"The output directory {output} cannot be created: {exc.strerror}. "
            "Choose a directory you can write to with --output."
        ) from exc
    probe = os.path.join(output, f".aprs-write-test-{os.getpid()}")
    try:
        with open(probe, "wb"):
            pass
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(
            f"The output directory {output} is not writable ({exc.strerror}). "
            "Fix its permissions or choose another directory with --output."
        ) from exc
    if final is not None:
        real_out = os.path.realpath(output)
        if os.path.commonpath([real_out, os.path.realpath(final)]) != real_out:
            raise OutputError(
                f"append_row_file_name={file_name!r} would write "
                f"outside the output directory {output}. Use a plain file name."
            )
        os.makedirs(os.path.dirname(final), exist_ok=True)


def check_inputs(inputs: Sequence[Any], side_inputs: Sequence[str]) -> None:
    """Every file or table input holds files; every side input exists."""
    for i, inp in enumerate(inputs):
        if isinstance(inp, (FileDataset, TabularDataset)) and not inp.resolve():
            raise InputError(
                f"inputs[{i}] ({inp!r}) contains no files. Check the path, or remove "
                "the empty input."
            )
    for path in side_inputs:
        if not os.path.exists(path):
            raise InputError(
                f"The side input {path!r} does not exist. Pass an existing file or "
                "folder."
            )


def side_path(obj: Any) -> str | os.PathLike[str]:
    """A side input's path: a path as given, or the folder of a FileDataset's patterns."""
    if isinstance(obj, FileDataset):
        patterns = obj.patterns
        return patterns[0] if len(patterns) == 1 else os.path.commonpath(patterns)
    if isinstance(obj, (str, os.PathLike)):
        return obj
    raise ConfigError(
        f"side_inputs entries must be paths or FileDatasets; got {type(obj).__name__}."
    )


def check_table_output(argv: list[str], source_dir: str | None) -> TableOutput:
    """How workers format DataFrames, from the driver's arguments (``argv``) and
    ``parallel_run_step.settings.json`` in ``source_dir``, which is checked here."""
    try:
        return TableOutput.from_run_args(argv, source_dir)
    except ValueError as exc:
        raise ConfigError(f"{exc} Fix the file or remove it.") from None
