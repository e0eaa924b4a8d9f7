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

__all__ = ("main",)

# (option, config key, type, help)
_CONFIG_OPTIONS: list[tuple[str, str, Any, str]] = [
    (
        "--entry-script",
        "entry_script",
        str,
        "the user script with init() and run(mini_batch) (a .py path or a dotted module)",
    ),
    (
        "--source-directory",
        "source_directory",
        str,
        "folder that holds the entry script; put on sys.path in every worker",
    ),
    (
        "--mini-batch-size",
        "mini_batch_size",
        str,
        (
            "items (or files) per run() call, or a byte size for files such as 64KB, "
            "10MB (default 10)"
        ),
    ),
    (
        "--mini-batch-rows",
        "mini_batch_rows",
        int,
        "rows per run() call for tabular inputs (instead of a byte size)",
    ),
    (
        "--error-threshold",
        "error_threshold",
        int,
        "failed items tolerated over the whole job; -1 tolerates all (default -1)",
    ),
    (
        "--allowed-failed-count",
        "allowed_failed_count",
        int,
        "failed mini-batches tolerated; -1 tolerates all",
    ),
    (
        "--allowed-failed-percent",
        "allowed_failed_percent",
        float,
        "percent of failed mini-batches tolerated, checked once all are scheduled (0-100)",
    ),
    (
        "--output-action",
        "output_action",
        str,
        "append_row (write run()'s elements to one file, in input order) or summary_only",
    ),
    (
        "--append-row-file-name",
        "append_row_file_name",
        str,
        "output file name for append_row (default parallel_run_step.txt)",
    ),
    (
        "--process-count-per-node",
        "process_count_per_node",
        int,
        "worker processes (default: the number of CPU cores)",
    ),
    ("--node-count", "node_count", int, "nodes (1 for local runs)"),
    (
        "--run-invocation-timeout",
        "run_invocation_timeout",
        float,
        "seconds a run() call may take before its worker is killed and replaced (default 60)",
    ),
    ("--run-max-try", "run_max_try", int, "tries per mini-batch (default 3)"),
    ("--logging-level", "logging_level", str, "DEBUG, INFO (default), WARNING, ERROR"),
    ("--partition-keys", "partition_keys", str, "comma-separated partition keys"),
    (
        "--environment",
        "environment",
        str,
        "Python interpreter that runs the workers (default: this one)",
    ),
    (
        "--compute-target",
        "compute_target",
        str,
        "local (default), ray, or a Ray client address ray://host:port",
    ),
    (
        "--ray-address",
        "ray_address",
        str,
        (
            "Ray cluster for compute_target ray: auto, host:port or ray://host:port "
            "(default: RAY_ADDRESS, else start Ray on this machine)"
        ),
    ),
    (
        "--worker-resources",
        "worker_resources",
        str,
        (
            "Ray resources of each worker, as num_cpus=1,num_gpus=0.5,memory=2e9,NAME=N "
            "(default num_cpus=1)"
        ),
    ),
    (
        "--ray-node-wait",
        "ray_node_wait",
        float,
        "seconds to wait for node_count Ray nodes before failing (default 60)",
    ),
    ("--description", "description", str, "free text"),
    (
        "--worker-start",
        "worker_start",
        str,
        (
            "how local workers start: fork-server (default on Linux: forked from one "
            "process that imported the script's libraries once) or spawn (a fresh "
            "interpreter each); env APRS_WORKER_START"
        ),
    ),
]
_FLAG_OPTIONS = [  # (option, config key, help): store_true flags that set a config key
    (
        "--isolate-failures",
        "isolate_failures",
        (
            "split a failing mini-batch in halves until only its poison items fail; the "
            "good items are written (default: a failure fails the whole mini-batch, as "
            "in Azure)"
        ),
    ),
]

_STEP_KEYS = {"name", "inputs", "output", "side_inputs", "arguments", "allow_reuse"}
# (models: / model_dir: in a file are config keys: ParallelRunConfig.models / .model_dir)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aprs",
        description="Run an Azure ML ParallelRunStep entry script (init() once per worker, "
        "run(mini_batch) per mini-batch) over large inputs on local worker processes.",
    )
    parser.add_argument(
        "--version", action="store_true", help="print the version and exit"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="run a job",
        description="Run a job. Options override the keys of --config. Put the entry "
        "script's own arguments after '--'.",
        epilog="Exit codes: 0 completed, 1 job failed, 2 usage error, 130/143 interrupted "
        "(run the same command again to resume).",
    )
    run.add_argument(
        "--config",
        help="a YAML, TOML or JSON file with the step's and the "
        "config's keys (flat, or config keys under parallel_run_config:)",
    )
    run.add_argument(
        "--set",
        action="append",
        dest="sets",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of the --config file by its dotted path, e.g. --set "
        "inputs.images.path=data/ for an Azure v2 job file (repeatable)",
    )
    run.add_argument("--name", help="step name: 3-32 lowercase letters, digits, dashes")
    run.add_argument(
        "--input",
        action="append",
        dest="inputs",
        metavar="PATH",
        help="a file, folder or glob to split into mini-batches (repeatable)",
    )
    run.add_argument(
        "--input-type",
        choices=("file", "tabular"),
        default=None,
        help="file (run() gets a list of paths; the default) or tabular (run() gets a "
        "pandas DataFrame; needs pip install 'aprs[tabular]'). A folder holding an "
        "MLTable file is tabular by default",
    )
    run.add_argument(
        "--input-format",
        choices=("csv", "tsv", "parquet", "jsonl", "json"),
        default=None,
        help="table format of the tabular inputs (default: from the file extension)",
    )
    run.add_argument(
        "--separator",
        default=None,
        help="column separator of delimited tabular inputs (default , or a tab for .tsv)",
    )
    run.add_argument(
        "--partition-format",
        default=None,
        metavar="TEMPLATE",
        help="file inputs: the varying parts of the paths below the input folder, as "
        "'{user}/{season}/{genres}.wav', for --partition-keys (key=value folders need none)",
    )
    run.add_argument(
        "--no-header",
        action="store_true",
        help="delimited tabular inputs have no header line (columns Column1, Column2...)",
    )
    run.add_argument(
        "--side-input",
        action="append",
        dest="side_inputs",
        metavar="PATH",
        help="reference data, not split; pass its path to the script in its "
        "arguments (repeatable)",
    )
    run.add_argument("--output", help="output directory (default ./aprs_output/<name>)")
    for option, key, typ, text in _CONFIG_OPTIONS:
        run.add_argument(option, dest=key, type=typ, help=text, default=None)
    for option, key, text in _FLAG_OPTIONS:
        run.add_argument(option, dest=key, action="store_true", help=text, default=None)
    run.add_argument(
        "--env",
        action="append",
        metavar="KEY=VALUE",
        default=None,
        help="environment variable for the workers (repeatable)",
    )
    run.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME=PATH",
        help="a local model for Model.get_model_path(NAME) in the entry script (repeatable)",
    )
    run.add_argument(
        "--model-dir",
        dest="model_dir",
        metavar="PATH",
        help="folder exported to the workers as AZUREML_MODEL_DIR",
    )
    run.add_argument(
        "--no-reuse",
        action="store_true",
        help="run afresh even if an identical run completed (allow_reuse=False)",
    )
    progress = run.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show progress on stderr (default when it is a terminal)",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    _add_run_extras(run)
    run.add_argument(
        "--json",
        action="store_true",
        help="print the result as JSON on stdout instead of text",
    )
    run.add_argument(
        "script_args",
        nargs=argparse.REMAINDER,
        help="after '--': arguments for the entry script",
    )
    _add_commands(sub)
    return parser


def _add_run_extras(run: argparse.ArgumentParser) -> None:
    """Issue 10: --quiet and --dry-run (kept apart from the job's own options)."""
    run.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="print only the final summary (no progress, no failure lines)",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print the mini-batch plan (how many, sizes, first items) and exit",
    )


def _add_commands(sub: Any) -> None:
    """Issue 10: the report, status and validate commands (in aprs/_commands.py)."""
    from ._commands import add_commands

    add_commands(sub)


def _top_help(parser: argparse.ArgumentParser) -> str:
    """The top-level help also lists the run command's options, so one --help shows all."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    run: argparse.ArgumentParser = sub.choices["run"]
    return f"{parser.format_help()}\n{run.format_help()}"


def _as_validate(parser: argparse.ArgumentParser) -> None:
    """Make run's subparser speak as ``validate`` (its --help and its usage errors)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    run: argparse.ArgumentParser = sub.choices["run"]
    run.prog = run.prog.replace(" run", " validate")
    run.description = (
        "Check a job without running it: the configuration, the inputs (listed and "
        "planned), and the entry script (imported and init() run in one real worker). "
        "Takes exactly the options of `run`; exit 0 when all is fine, 1 when something "
        "checked is broken, 2 for usage errors."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    if argv is None:
        argv = sys.argv[1:]
    if not argv or list(argv)[:1] in (["-h"], ["--help"]):
        _print(_top_help(parser))
        return 0 if argv else 2
    validate = list(argv)[:1] == ["validate"]
    if validate:  # `validate` takes exactly run's options
        argv = ["run", *list(argv)[1:]]
        _as_validate(parser)
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
        print(_top_help(parser), file=sys.stderr)
        return 2
    from ._errors import AprsError, JobError, UsageError

    _setup_logging(quiet=args.quiet)
    try:
        step = _build_step(args)  # its warnings reach stderr through the "aprs" logger
        if args.command == "validate" or args.dry_run:
            from ._commands import dry_run, validate_step

            return validate_step(step) if args.command == "validate" else dry_run(step)
        summary = _run(step, args)
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
    _print_summary(summary, args)
    return 0


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
    from ._step import run_coroutine

    record_command(step, args.argv)
    with display_for_run(progress=args.progress, quiet=args.quiet) as on_progress:

        async def go() -> Any:
            return await step.arun(on_progress=on_progress)

        return run_coroutine(go)


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
    from ._config import ParallelRunConfig
    from ._datasets._spec import input_from_spec
    from ._errors import ConfigError
    from ._step import ParallelRunStep

    data: dict[str, Any] = {}
    base = os.getcwd()
    where = "the command line"
    if args.config:
        data, base = _load_config_file(args.config)
        where = f"config file {args.config}"
        data = _translate_job_file(data, base, args)
    elif args.sets:
        raise ConfigError(
            "--set changes keys of a --config file; pass --config FILE too."
        )
    config_keys = {key for _, key, _, _ in _CONFIG_OPTIONS}
    config_keys |= {key for _, key, _ in _FLAG_OPTIONS}
    nested = data.pop("parallel_run_config", None)
    if nested is not None and not isinstance(nested, dict):
        raise ConfigError(f"parallel_run_config in {where} must be a mapping.")
    step_data = {k: data.pop(k) for k in list(data) if k in _STEP_KEYS}
    cfg_data: dict[str, Any] = {**(nested or {}), **data}
    _make_paths_absolute(cfg_data, step_data, base)
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
    arguments = list(step_data.get("arguments") or [])
    script_args = list(args.script_args)
    if script_args and script_args[0] == "--":
        script_args = script_args[1:]
    if script_args:
        arguments = script_args if not args.config else [*arguments, *script_args]
    name = args.name or step_data.get("name") or _default_name(config.entry_script)
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

    data = apply_sets(data, args.sets, os.getcwd())
    flat, notes = translate_job_file(
        data, base, args.config, output=args.output, default_name=_default_name
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
    import re

    stem = os.path.splitext(os.path.basename(entry_script))[0].lower()
    stem = re.sub(r"[^a-z0-9-]+", "-", stem).strip("-")
    name = f"aprs-{stem}" if stem else "aprs-job"
    return name[:32].rstrip("-")


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
