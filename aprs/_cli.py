"""The command line: argument parsing, config files, progress, exit codes. No job logic.

Exit codes: 0 the job completed (tolerated failures included); 1 the job failed; 2 a usage or
configuration error (one paragraph on stderr, no traceback); 130 / 143 stopped by Ctrl-C /
SIGTERM (run the same command again to resume).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from ._cli_args import (
    CONFIG_OPTIONS,
    FLAG_OPTIONS,
    STEP_KEYS,
    as_validate,
    build_parser,
    top_help,
)

__all__ = ("main",)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if argv is None:
        argv = sys.argv[1:]
    if not argv or list(argv)[:1] in (["-h"], ["--help"]):
        _print(top_help(parser))
        return 0 if argv else 2
    validate = list(argv)[:1] == ["validate"]
    if validate:  # `validate` takes exactly run's options
        argv = ["run", *list(argv)[1:]]
        as_validate(parser)
    args = parser.parse_args(argv)
    if validate:
        args.command = "validate"
    args.argv = list(argv)  # `aprs status` prints the command that resumes the job
    if args.version:
        from . import __version__

        _print(f"aprs {__version__}")
        return 0
    if args.command in ("report", "status"):
        from ._commands import run_command

        return run_command(args)
    if args.command not in ("run", "validate"):
        print(top_help(parser), file=sys.stderr)
        return 2
    _setup_logging(quiet=args.quiet)
    return _run_command(args)


def _run_command(args: argparse.Namespace) -> int:
    """run, validate or run --dry-run; the exit code says how it ended."""
    from ._errors import AprsError, JobError, UsageError

    try:
        return _run_jobs(args)
    except UsageError as exc:
        print(f"aprs: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aprs: interrupted", file=sys.stderr)
        return 130
    except JobError as exc:
        from ._summary import exit_code_for

        if exc.summary is not None:
            _print_summary(exc.summary, args)
            print(f"aprs: {exc}", file=sys.stderr)
            return exit_code_for(exc.summary)
        print(f"aprs: {exc}", file=sys.stderr)
        return 1
    except AprsError as exc:  # infrastructure (BackendError): not the user's input
        print(f"aprs: error: {exc}", file=sys.stderr)
        return 1


def _run_jobs(args: argparse.Namespace) -> int:
    """One job, or every parallel job of a pipeline file in turn; all are built (and so
    checked) before the first runs, and a failed job stops the rest."""
    from ._errors import JobError

    runs = _every_job(args) or [args]
    steps = [_build_step(run) for run in runs]  # warnings reach stderr via the logger
    if len(runs) > 1 and args.command == "run" and not args.dry_run:
        from ._step_checks import check_inputs, check_script, check_table_output

        # a later job's missing script or input, or its unreadable DataFrame output
        # settings, is found now, not after the jobs before it ran; its output folder
        # is checked (created) when it starts
        for step in steps:
            _, source_dir = check_script(step.config)
            check_inputs(step.inputs, step.side_inputs)
            check_table_output(step._worker_argv(), source_dir)
    code = 0
    for i, (run, step) in enumerate(zip(runs, steps, strict=True)):
        if len(runs) > 1:
            print(f"aprs: job {run.job} ({i + 1} of {len(runs)})", file=sys.stderr)
        if args.command == "validate" or args.dry_run:
            from ._commands import dry_run, validate_step

            check = validate_step if args.command == "validate" else dry_run
            code = max(code, check(step))
            continue
        try:
            summary = _run(step, args)
        except JobError as exc:
            rest = [r.job for r in runs[i + 1 :]]
            if not rest:
                raise
            raise JobError(_not_run(exc, rest), exc.summary) from exc
        _print_summary(summary, args)
    return code


def _not_run(exc: BaseException, rest: list[str]) -> str:
    """``exc``'s message, and what it leaves undone: the jobs after it."""
    from ._errors import JobInterruptedError

    text = str(exc).rstrip()
    text += "\n\n" if "\n" in text else " " if text.endswith(".") else ". "
    jobs = ", ".join(rest)
    if isinstance(exc, JobInterruptedError):  # Ctrl-C / SIGTERM: nothing to fix
        return (
            f"{text}Not started: job {jobs}; the same command resumes this job, then "
            "runs the rest (completed jobs are reused)."
        )
    return (
        f"{text}Not run after this failure: job {jobs}; fix it and run the same "
        "command again (completed jobs are reused)."
    )


def _every_job(args: argparse.Namespace) -> list[argparse.Namespace] | None:
    """A copy of ``args`` per parallel job when --config is a pipeline file with several
    and no --job is given (each with its own output folder), else None."""
    import copy

    from ._jobfile import apply_sets, step_name
    from ._pipeline import check_sets, jobs_to_run, parallel_jobs

    if not args.config or args.job is not None:
        return None
    data, _ = _load_config_file(args.config)
    if len(parallel_jobs(data)) < 2:
        return None
    check_sets(data, args.sets, args.config)
    data = apply_sets(data, args.sets, os.getcwd(), where=args.config)
    runs = []
    for name in jobs_to_run(data, args.config):
        run = copy.copy(args)
        run.job, run.every_job = name, True
        if args.output:
            run.output = os.path.join(args.output, name)
        if args.name:  # one step name per job, as each has its own folder
            run.name = step_name(name, prefix=args.name)
        runs.append(run)
    return runs


def _setup_logging(*, quiet: bool = False) -> None:
    """The parent's warnings (retries, worker deaths, stops) go to stderr, one line each."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.ERROR if quiet else logging.WARNING)
    handler.setFormatter(logging.Formatter("aprs: %(levelname)s: %(message)s"))
    logger = logging.getLogger("aprs")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False


def _run(step: Any, args: argparse.Namespace) -> Any:
    from ._commands import display_for_run, record_command

    record_command(step, args.argv)
    with display_for_run(progress=args.progress, quiet=args.quiet) as on_progress:
        return step._run_blocking(on_progress)


def _print_summary(summary: Any, args: argparse.Namespace) -> None:
    if args.json:
        import msgspec

        _print(msgspec.json.encode(summary).decode())
    else:
        _print(summary.render())


def _print(text: str) -> None:
    """Print to stdout; a closed stdout (``| head -1``) ends quietly, same exit code."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader is gone: send the rest (and the interpreter's final flush) nowhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _build_step(args: argparse.Namespace) -> Any:
    """The ParallelRunStep the command line (and its --config file) describes."""
    from ._config import ParallelRunConfig
    from ._datasets._spec import input_from_spec
    from ._errors import ConfigError
    from ._step import ParallelRunStep

    cfg_data, step_data, where = _job_data(args)
    _apply_options(args, cfg_data)
    _apply_models(args, cfg_data)
    if "entry_script" not in cfg_data:
        raise ConfigError(
            "No entry script given. Pass --entry-script score.py (or entry_script in "
            "--config)."
        )
    config = ParallelRunConfig.from_mapping(cfg_data, where=where)
    inputs = args.inputs if args.inputs else step_data.get("inputs")
    if not inputs:
        raise ConfigError(
            "No input given. Pass --input PATH (a file, folder or glob; repeatable) or "
            "inputs in --config."
        )
    if isinstance(inputs, str):
        inputs = [inputs]
    name = args.name or step_data.get("name") or _default_name(config.entry_script)
    arguments = _script_arguments(args, step_data)
    return ParallelRunStep(
        name=name,
        parallel_run_config=config,
        inputs=[input_from_spec(spec, _input_defaults(args)) for spec in inputs],
        output=args.output or step_data.get("output"),
        side_inputs=args.side_inputs or step_data.get("side_inputs"),
        arguments=arguments or None,
        allow_reuse=False
        if args.no_reuse
        else bool(step_data.get("allow_reuse", True)),
    )


def _job_data(
    args: argparse.Namespace,
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(config keys, step keys, where they came from) of --config, paths made absolute."""
    from ._errors import ConfigError

    data: dict[str, Any] = {}
    base = os.getcwd()
    where = "the command line"
    if args.config:
        data, base = _load_config_file(args.config)
        where = f"config file {args.config}"
        data = _translate_job_file(data, base, args)
    elif args.sets or args.job is not None:
        option = "--set changes keys" if args.sets else "--job picks a parallel job"
        raise ConfigError(f"{option} of a --config file; pass --config FILE too.")
    nested = data.pop("parallel_run_config", None)
    if nested is not None and not isinstance(nested, dict):
        raise ConfigError(f"parallel_run_config in {where} must be a mapping.")
    step_data = {k: data.pop(k) for k in list(data) if k in STEP_KEYS}
    cfg_data: dict[str, Any] = {**(nested or {}), **data}
    _make_paths_absolute(cfg_data, step_data, base)
    return cfg_data, step_data, where


def _apply_options(args: argparse.Namespace, cfg_data: dict[str, Any]) -> None:
    """Command-line options override the file's keys; --env adds to its variables."""
    from ._errors import ConfigError

    config_keys = {key for _, key, _, _ in CONFIG_OPTIONS}
    config_keys |= {key for _, key, _ in FLAG_OPTIONS}
    for key in config_keys:
        value = getattr(args, key)
        if value is not None:
            if key == "partition_keys":
                value = [v.strip() for v in value.split(",") if v.strip()]
            cfg_data[key] = value
    if args.env:
        env = dict(cfg_data.get("environment_variables") or {})
        for pair in args.env:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise ConfigError(
                    f"--env {pair!r} must look like KEY=VALUE, e.g. --env MODEL_DIR=/models."
                )
            env[key] = value
        cfg_data["environment_variables"] = env


def _script_arguments(args: argparse.Namespace, step_data: dict[str, Any]) -> list[str]:
    """The entry script's sys.argv[1:]: after '--' (appended to a --config's arguments)."""
    arguments = list(step_data.get("arguments") or [])
    script_args = list(args.script_args)
    if script_args and script_args[0] == "--":
        script_args = script_args[1:]
    if script_args:
        arguments = script_args if not args.config else [*arguments, *script_args]
    return arguments


def _input_defaults(args: argparse.Namespace) -> Any:
    from ._datasets._spec import InputDefaults

    return InputDefaults(
        type=args.input_type,
        format=args.input_format,
        separator=args.separator,
        header=not args.no_header,
        partition_format=args.partition_format,
    )


def _translate_job_file(
    data: dict[str, Any], base: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Azure v1 / v2 job files become aprs keys; what is ignored is logged once."""
    import logging

    from ._jobfile import apply_sets, translate_job_file

    data = apply_sets(data, args.sets, os.getcwd(), args.job, args.config)
    flat, notes = translate_job_file(
        data,
        base,
        args.config,
        output=args.output,
        default_name=_default_name,
        job=args.job,
        every_job=getattr(args, "every_job", False),
    )
    for note in notes:
        logging.getLogger("aprs").warning("%s", note)
    return flat


def _apply_models(args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    """--model NAME=PATH (added to the file's models:) and --model-dir (wins)."""
    from ._errors import ConfigError

    if args.model_dir:
        cfg["model_dir"] = os.path.abspath(args.model_dir)
    if not args.models:
        return
    models = dict(cfg.get("models") or {})
    for pair in args.models:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise ConfigError(
                f"--model {pair!r} must look like NAME=PATH, e.g. --model "
                "mnist=models/mnist (the name the script passes to Model.get_model_path)."
            )
        models[name] = os.path.abspath(path)
    cfg["models"] = models


def _default_name(entry_script: str) -> str:
    from ._jobfile import step_name

    return step_name(os.path.splitext(os.path.basename(entry_script))[0])


def _load_config_file(path: str) -> tuple[dict[str, Any], str]:
    from ._errors import ConfigError

    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(
            f"The config file {path} cannot be read: {exc.strerror}. Check the path."
        ) from exc
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(raw)
        elif ext == ".toml":
            import tomllib

            data = tomllib.loads(raw.decode())
        elif ext == ".json":
            import orjson

            data = orjson.loads(raw)
        else:
            raise ConfigError(
                f"The config file {path} has an unknown extension {ext!r}. Use .yaml, "
                ".yml, .toml or .json."
            )
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"The config file {path} is not valid {ext.lstrip('.').upper()}: {exc}. Fix "
            "the syntax."
        ) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"The config file {path} must hold one mapping of keys to values; got a "
            f"{type(data).__name__}."
        )
    return data, os.path.dirname(os.path.abspath(path))


def _make_paths_absolute(cfg: dict[str, Any], step: dict[str, Any], base: str) -> None:
    """Relative paths in a config file are relative to the file."""

    def fix(value: Any) -> Any:
        if isinstance(value, str) and not os.path.isabs(value):
            return os.path.join(base, value)
        if isinstance(value, dict) and "path" in value:  # an input mapping
            return {**value, "path": fix(value["path"])}
        return value

    for key in ("source_directory", "model_dir"):
        if cfg.get(key):
            cfg[key] = fix(cfg[key])
    if isinstance(cfg.get("models"), dict):
        cfg["models"] = {k: fix(v) for k, v in cfg["models"].items()}
    if (
        "entry_script" in cfg
        and str(cfg["entry_script"]).endswith(".py")
        and not cfg.get("source_directory")
    ):
        cfg["entry_script"] = fix(cfg["entry_script"])
    if step.get("output"):
        step["output"] = fix(step["output"])
    for key in ("inputs", "side_inputs"):
        if step.get(key):
            items = step[key] if isinstance(step[key], list) else [step[key]]
            step[key] = [fix(v) for v in items]
