"""Azure runtime flags among the entry script's own arguments (v2 ``program_arguments``).

    arguments ──► split_runtime_flags ──► flags with a local meaning: config overrides
                                     └──► everything else, in order ──► the script's argv
    config + overrides ──► apply_runtime_flags ──► a new ParallelRunConfig (validated again)

Azure's driver parses its own flags out of the same argument list the script gets, so v2
jobs pass ``--error_threshold 5`` or ``--allowed_failed_percent 30`` in
``program_arguments``. Flags with a local meaning set the config and win over the config
file and the command line options (with a note in the log when they change a value that was
set); the Azure flags without one (``--task_overhead_timeout`` ...) are left in the
arguments and draw one warning each (see ``validate_arguments``). Only ``--output`` stays
reserved: aprs passes the output directory itself.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

from ._config import ParallelRunConfig
from ._errors import ConfigError

__all__ = ("LOCAL_RUNTIME_FLAGS", "apply_runtime_flags", "split_runtime_flags")

log = logging.getLogger("aprs.step")


def _threshold(text: str) -> int:
    """Azure's driver: floats round up, anything below -1 means -1."""
    return max(-1, math.ceil(float(text)))


def _keys(text: str) -> list[str]:
    """A JSON list (Azure sends ``json.dumps(keys)``) or comma-separated names."""
    if text.lstrip().startswith("["):
        value = json.loads(text)
        return [str(v) for v in value] if isinstance(value, list) else [text]
    return [k.strip() for k in text.split(",") if k.strip()]


def _count(text: str) -> int | str:
    return int(text) if text.strip().lstrip("+-").isdigit() else text


# flag (underscores) -> (config field, how the text becomes its value)
LOCAL_RUNTIME_FLAGS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "error_threshold": ("error_threshold", _threshold),
    "allowed_failed_count": ("allowed_failed_count", int),
    "mini_batch_error_threshold": ("allowed_failed_count", int),
    "allowed_failed_percent": ("allowed_failed_percent", float),
    "mini_batch_size": ("mini_batch_size", _count),
    "output_action": ("output_action", str),
    "append_row_file_name": ("append_row_file_name", str),
    "logging_level": ("logging_level", str),
    "process_count_per_node": ("process_count_per_node", int),
    "run_invocation_timeout": ("run_invocation_timeout", float),
    "score_run_timeout": ("run_invocation_timeout", float),
    "run_max_try": ("run_max_try", int),
    "partition_keys": ("partition_keys", _keys),
}


def _flag_name(text: str) -> str:
    return text[2:].split("=", 1)[0].replace("-", "_") if text[:2] == "--" else ""


def split_runtime_flags(
    arguments: Sequence[Any],
) -> tuple[list[Any], dict[str, tuple[str, Any]]]:
    """Take the flags with a local meaning out of ``arguments``.

    Returns:
        (rest, overrides): the other arguments in order (not converted), and
        ``{field: (flag as written with its value, value)}``; a later flag wins.

    Raises:
        ConfigError: a flag without a value, or a value of the wrong type.
    """
    rest: list[Any] = []
    overrides: dict[str, tuple[str, Any]] = {}
    i = 0
    while i < len(arguments):
        arg = arguments[i]
        flag = _flag_name(arg) if isinstance(arg, str) else ""
        if flag not in LOCAL_RUNTIME_FLAGS:
            rest.append(arg)
            i += 1
            continue
        if "=" in arg:
            text, i = arg.split("=", 1)[1], i + 1
        elif i + 1 < len(arguments):
            text, i = str(arguments[i + 1]), i + 2
        else:
            raise ConfigError(
                f"The Azure runtime flag {arg} at the end of the arguments has no value. "
                f"Give one, as in {arg} 5, or remove it."
            )
        field, convert = LOCAL_RUNTIME_FLAGS[flag]
        try:
            value = convert(text)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"The Azure runtime flag --{flag} in the arguments has the value {text!r}, "
                f"which is not a valid {field}: {exc}. Fix the value or remove the flag."
            ) from exc
        overrides[field] = (f"--{flag} {text}", value)
    return rest, overrides


def apply_runtime_flags(
    config: ParallelRunConfig, arguments: Sequence[Any] | None
) -> tuple[ParallelRunConfig, list[Any] | None]:
    """The config with the arguments' runtime flags applied, and the remaining arguments.

    Raises:
        ConfigError: as ``split_runtime_flags``, or the resulting config is invalid (the
            message names the flag).
    """
    if arguments is None or isinstance(arguments, str | bytes):
        return config, arguments  # type: ignore[return-value]  # validate_arguments reports it
    rest, overrides = split_runtime_flags(list(arguments))
    if not overrides:
        return config, list(arguments)
    values = config.to_dict()
    defaults = ParallelRunConfig(entry_script=config.entry_script).to_dict()
    for field, (written, value) in overrides.items():
        old = values[field]
        if old != value and old != defaults[field]:
            log.warning(
                "%s in the entry script's arguments overrides %s=%r (from the config "
                "file or options), as Azure's runtime would.",
                written,
                field,
                old,
            )
        else:
            log.info("%s in the entry script's arguments sets %s.", written, field)
        values[field] = value
    if "partition_keys" in overrides and "mini_batch_size" not in overrides:
        values["mini_batch_size"] = None  # v2: partition keys win over a batch size
    flags = ", ".join(w for w, _ in overrides.values())
    try:
        return ParallelRunConfig(**values), rest
    except ConfigError as exc:
        raise ConfigError(
            f"The Azure runtime flags in the arguments ({flags}) give an invalid "
            f"configuration: {exc}",
            problems=exc.problems,
        ) from exc
