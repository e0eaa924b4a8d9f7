"""The command line's grammar: the options of `run` and their config keys. No behaviour.

    CONFIG_OPTIONS / FLAG_OPTIONS  option -> ParallelRunConfig key (the one table both the
                                   parser and _cli._build_step read)
    build_parser()                 run (= validate's options), report, status

Kept apart from ``_cli`` (what the commands do) so each stays small.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = (
    "CONFIG_OPTIONS",
    "FLAG_OPTIONS",
    "STEP_KEYS",
    "as_validate",
    "build_parser",
    "top_help",
)

# (option, config key, type, help)
CONFIG_OPTIONS: list[tuple[str, str, Any, str]] = [
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
FLAG_OPTIONS = [  # (option, config key, help): store_true flags that set a config key
    (
        "--ship-inputs",
        "ship_inputs",
        (
            "compute_target ray: send file inputs to the workers as bytes through Ray's "
            "object store (for nodes without the driver's storage); run() gets copies "
            "in a node-local folder"
        ),
    ),
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

STEP_KEYS = {"name", "inputs", "output", "side_inputs", "arguments", "allow_reuse"}
# (models: / model_dir: in a file are config keys: ParallelRunConfig.models / .model_dir)


def build_parser() -> argparse.ArgumentParser:
    """The whole grammar: run (its options in groups below), validate, report, status."""
    parser = argparse.ArgumentParser(
        prog="python -m aprs",
        description="Run an Azure ML ParallelRunStep entry script (init() once per worker, "
        "run(mini_batch) per mini-batch) over large inputs on local worker processes or a "
        "Ray cluster.",
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
    _add_config_options(run)
    _add_inputs(run)
    _add_job_options(run)
    _add_display_options(run)
    _add_commands(sub)
    return parser


def _add_config_options(run: argparse.ArgumentParser) -> None:
    """--config FILE and --set overrides."""
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
    run.add_argument(
        "--job",
        metavar="NAME",
        help="run only this parallel job (its key in jobs:) of an Azure pipeline file; "
        "without it, a file with several runs each in turn, in file order, when none "
        "takes another's output",
    )


def _add_inputs(run: argparse.ArgumentParser) -> None:
    """The step's name and what it reads."""
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


def _add_job_options(run: argparse.ArgumentParser) -> None:
    """The output, every ParallelRunConfig key, environment, models, reuse."""
    run.add_argument("--output", help="output directory (default ./aprs_output/<name>)")
    for option, key, typ, text in CONFIG_OPTIONS:
        run.add_argument(option, dest=key, type=typ, help=text, default=None)
    for option, key, text in FLAG_OPTIONS:
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


def _add_display_options(run: argparse.ArgumentParser) -> None:
    """Progress, --quiet, --dry-run, --json and the script's own arguments after '--'."""
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


def top_help(parser: argparse.ArgumentParser) -> str:
    """The top-level help also lists the run command's options, so one --help shows all."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    run: argparse.ArgumentParser = sub.choices["run"]
    return f"{parser.format_help()}\n{run.format_help()}"


def as_validate(parser: argparse.ArgumentParser) -> None:
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
