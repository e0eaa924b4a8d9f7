"""The rules a ParallelRunConfig's fields obey, and the sentences that name a broken one.

    file keys ──► translate (v2 aliases, retry_settings.*, "60" for numbers, unknown keys
                  with the closest valid key) ──► field values
    field values ──► collect_problems: each field alone (CHECKS), then cross-field rules
                  ──► one sentence per problem (MESSAGES: field, value, valid range, fix)
    fail(subject, problems) ──► one ConfigError listing them all, numbered

Pure: no I/O. Invariant: every problem is a full sentence that names the fix.
"""

from __future__ import annotations

import difflib
import re
import reprlib
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TypeGuard

from ._backends._base import WORKER_STARTS
from ._errors import ConfigError

__all__ = (
    "SIZE_RE",
    "SIZE_UNITS",
    "STEP_NAME_RE",
    "collect_problems",
    "fail",
    "say",
    "shown",
    "translate",
)


_MAX_TIMEOUT_S = 259_200  # 3 days: Azure v2's upper bound for retry_settings.timeout
SIZE_RE = re.compile(r"([0-9]+)([kKmMgG][bB])?")  # v2's rule, one unit at most
SIZE_UNITS = {"KB": 1024, "MB": 1024**2, "GB": 1024**3}
_MODULE_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
# A Ray client address; without a port, Ray uses 10001.
_RAY_RE = re.compile(rf"ray://{_HOST}(?::(?P<port>[0-9]{{1,5}}))?")
_MODEL_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
STEP_NAME_RE = re.compile(r"[a-z][a-z0-9-]{1,30}[a-z0-9]")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_ALIASES = {  # Azure v2 name -> v1 name (azure-prs.md 6.6)
    "max_concurrency_per_instance": "process_count_per_node",
    "mini_batch_error_threshold": "allowed_failed_count",
    "instance_count": "node_count",
    "code": "source_directory",
}
_RETRY_KEYS = {"max_retries": "run_max_try", "timeout": "run_invocation_timeout"}
_INT_FIELDS = {  # field -> (lowest valid value, None allowed)
    "error_threshold": (-1, False),
    "allowed_failed_count": (-1, True),
    "process_count_per_node": (1, True),
    "node_count": (1, False),
    "run_max_try": (1, False),
    "mini_batch_rows": (1, True),
}
_FLOAT_FIELDS = frozenset(
    {"allowed_failed_percent", "run_invocation_timeout", "ray_node_wait"}
)
_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False}  # quoted in files
_RAY_ONLY = (
    "ray_address",
    "worker_resources",
    "ship_inputs",
)  # meaningless for compute_target="local"

# Problem sentences, filled in with str.format; {got} is the offending value (see _got).
# Those named after a field follow the field name: "`field` must be ...".
_MESSAGES = {
    "entry_script": 'is required and must be a path to a .py file (such as "score.py") or a dotted module name (such as "mypkg.score"); got {got}. Set it to the script that defines init() and run().',
    "mini_batch_size": 'must be a positive integer or a size such as "10MB" (digits, then optionally KB, MB or GB, no spaces); got {got}. Set it to the number of items (or files) each run() call should receive, or to a byte size.',
    "error_threshold": "must be an integer >= -1 (-1 disables the check); got {got}. Set it to the number of failed items the job may tolerate.",
    "allowed_failed_count": "must be an integer >= -1 or None (-1 disables the check); got {got}. Set it to the number of failed mini-batches the job may tolerate.",
    "allowed_failed_percent": "must be a number from 0 to 100 or None (100 disables the check); got {got}. Set it to the percentage of failed mini-batches the job may tolerate.",
    "output_action": 'must be "append_row" or "summary_only" (exact spelling); got {got}. Use "append_row" to collect run() results in one file, or "summary_only" to keep only the counts.',
    "append_row_file_name": 'must be a file name or relative path inside the output directory (no absolute path, no "..", "." or empty part); got {got}. Use a name such as "results.txt".',
    "append_row_summary_only": 'is only used with output_action="append_row"; got {got} with output_action="summary_only". Remove append_row_file_name or set output_action="append_row".',
    "process_count_per_node": "must be an integer >= 1 or None (None starts one worker per CPU); got {got}. Set it to the number of worker processes per node.",
    "node_count": "must be an integer >= 1; got {got}. Set it to the number of nodes that run workers.",
    "node_count_local": 'must be 1 when `compute_target` is "local"; got {got}. Set node_count=1, or use compute_target="ray" (or "ray://host:port") for multi-node runs.',
    "run_invocation_timeout": f"must be a number of seconds > 0 and <= {_MAX_TIMEOUT_S}; got {{got}}. Set it to the longest time one run() call may take (Azure's default is 60).",
    "run_max_try": "must be an integer >= 1; got {got}. Set it to the maximum number of tries per mini-batch (Azure's default is 3).",
    "logging_level": f"must be one of {', '.join(_LEVELS)} (any case); got {{got}}. Use INFO unless you need more or less detail.",
    "environment_variables": 'must be a dict of names (non-empty, without "=") to string values, or None; got {got}. Quote values and fix names, as in {{"MY_FLAG": "1"}}.',
    "partition_keys": 'must be a non-empty list of distinct non-empty strings, or None; got {got}. List the partition columns, as in ["Store", "Brand"].',
    "mini_batch_rows": "must be an integer >= 1 or None; got {got}. Set it to the number of table rows each run() call should receive (tabular inputs only).",
    "mini_batch_rows_and_size": "cannot be set together with `mini_batch_size`; got {got}. Keep one: rows per mini-batch, or an approximate byte size.",
    "partition_keys_and_size": "cannot be set together with `mini_batch_size` (as in Azure v1); got {got}. Remove mini_batch_size: each partition is one mini-batch.",
    "models": 'must be a dict of model names (letters, digits, "._-") to paths, or None; got {got}. Give each model as NAME=PATH, as in --model mnist=models/mnist (or models: {{mnist: models/mnist}} in a job file).',
    "compute_target": 'must be "local", "ray" or a Ray address such as "ray://head-node:10001"; got {got}. Use "local" for this machine or "ray" for the cluster that ray.init() finds.',
    "worker_resources": 'must map resource names to numbers >= 0 per worker (num_cpus, num_gpus, memory in bytes, or a custom Ray resource), or be None; got {got}. Write it as {{"num_cpus": 1, "num_gpus": 0.5}} (CLI: --worker-resources num_cpus=1,num_gpus=0.5).',
    "ray_node_wait": "must be a number of seconds > 0; got {got}. Set how long to wait for enough Ray nodes before failing (default 60).",
    "ship_inputs": "must be true or false; got {got}. Set it to true to send file inputs to the Ray workers as bytes (clusters without shared storage).",
    "isolate_failures": "must be true or false; got {got}. Set it to true to split a failing mini-batch so that only its poison items fail (default false: Azure's whole-mini-batch failures).",
    "worker_start": 'must be "fork-server", "spawn" or None; got {got}. Use "fork-server" (the default on Linux: workers forked from one process that imported the entry script\'s libraries once) or "spawn" (a fresh interpreter per worker, for libraries that are not fork-safe such as CUDA).',
    "ray_only": 'only applies to compute_target="ray"; got {got} with compute_target="local". Set compute_target="ray" (or "ray://host:port"), or remove it.',
    "text": "must be a non-empty string or None; got {got}. Set it to a path or name, or leave it unset.",
    "arg_type": "`arguments[{i}]` must be a str, int, float or path; got {got}. Convert it to a string (json.dumps for structured values).",
    "arg_first": 'The first argument must be a keyword starting with "-" (Azure passes keyword arguments only); got {got}. Put the option name first, as in ["--name", "{text}"].',
    "arg_reserved": "`arguments[{i}]` {got} uses the reserved name --{flag}, which aprs passes to the entry script itself. Set {fix} instead of passing it in arguments.",
    "arg_flag": "aprs accepts but does not implement the Azure runtime flag --{flag}; it is passed to the entry script unchanged.",
    "arg_typo": "--{flag} in the arguments is not an Azure runtime flag but looks like --{near} (a typo?); it is passed to the entry script as written, and neither aprs nor Azure's runtime reads it. Fix the spelling if you meant --{near}.",
    "arg_flags": "aprs accepts but does not implement the Azure runtime flags {flags}; they are passed to the entry script unchanged.",
    "step_name": 'The step `name` must be 3-32 lowercase letters, digits and dashes, starting with a letter and not ending with a dash; got {got}. Rename it, for example to "{example}".',
    "twice": "`{field}` is given twice: as `{first}` and as `{key}`. Keep one of them.",
    "unknown": "Unknown key {got}{place}.{hint} Valid keys: {valid}.",
    "not_mapping": "{what} must be a mapping; got {got}. Write it as key: value pairs.",
    "not_list": '`arguments` must be a list such as ["--model", "m.pkl"]; got {got}. Put one word per element.',
}

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 80


def fail(subject: str, problems: list[str], where: str = "") -> NoReturn:
    """Raise one ConfigError whose message lists every problem, numbered."""
    head = f"Invalid {subject}" + (f" in {where}" if where else "")
    if len(problems) == 1:
        message = f"{head}: {problems[0]}" if where else problems[0]
    else:
        listed = " ".join(f"({i}) {p}" for i, p in enumerate(problems, 1))
        message = f"{head} ({len(problems)} problems): {listed}"
    raise ConfigError(message, problems=list(problems))


def shown(value: object) -> str:
    """```value```, plus the type name unless the repr shows it (str, number, None)."""
    text = f"`{_repr.repr(value)}`"
    plain = value is None or type(value) in (str, int, float)
    return text if plain else f"{text} ({type(value).__name__})"


def say(key: str, /, **fields: object) -> str:
    return _MESSAGES[key].format(**fields)


def _bad(rule: str, value: object, field: str = "", got: str = "") -> str:
    """The sentence for a field that breaks ``rule``: field, valid range, value, fix."""
    return f"`{field or rule}` " + say(rule, got=got or shown(value))


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text_ok(v: object) -> bool:
    return v is None or (isinstance(v, str) and bool(v.strip()))


def _entry_script_ok(v: object) -> bool:
    py_file = isinstance(v, str) and len(v) > 3 and v.endswith(".py")
    return py_file or (isinstance(v, str) and bool(_MODULE_RE.fullmatch(v)))


def _size_ok(v: object) -> bool:
    match = SIZE_RE.fullmatch(v) if isinstance(v, str) else None
    return v is None or (int(match[1]) >= 1 if match else _is_int(v) and v >= 1)


def _file_name_ok(v: object) -> bool:
    if not isinstance(v, str):
        return v is None
    parts = set(re.split(r"[/\\]", v))  # "/x" and "\\x" give an empty part
    return not ({"", ".", ".."} & parts or "\0" in v or re.match("[A-Za-z]:", v))


def _env_ok(v: object) -> bool:
    if not isinstance(v, dict):
        return v is None
    names_ok = all(isinstance(k, str) and re.fullmatch("[^=\0]+", k) for k in v)
    return names_ok and all(isinstance(x, str) for x in v.values())


def _keys_ok(v: object) -> bool:
    if not isinstance(v, list):
        return v is None
    strings = all(isinstance(k, str) and k for k in v)
    return bool(v) and strings and len(set(v)) == len(v)


def _models_ok(v: object) -> bool:
    if not isinstance(v, dict):
        return v is None
    names_ok = all(isinstance(k, str) and _MODEL_NAME_RE.fullmatch(k) for k in v)
    return names_ok and all(isinstance(p, str) and p.strip() for p in v.values())


def _target_ok(v: object) -> bool:
    match = _RAY_RE.fullmatch(v) if isinstance(v, str) else None
    port_ok = match is not None and 1 <= int(match["port"] or 10001) <= 65535
    return v in ("local", "ray") or port_ok


def _resources_ok(v: object) -> bool:
    if not isinstance(v, dict):
        return v is None
    names_ok = all(isinstance(k, str) and k.strip() for k in v)
    return names_ok and all(_is_number(x) and x >= 0 for x in v.values())


def _int_ok(low: int, optional: bool) -> Callable[[object], bool]:
    return lambda v: (optional and v is None) or (_is_int(v) and v >= low)


_CHECKS: dict[str, Callable[[Any], bool]] = {  # field -> is the value valid on its own
    "entry_script": _entry_script_ok,
    "source_directory": _text_ok,
    "mini_batch_size": _size_ok,
    **{name: _int_ok(low, optional) for name, (low, optional) in _INT_FIELDS.items()},
    "allowed_failed_percent": lambda v: v is None or (_is_number(v) and 0 <= v <= 100),
    "output_action": lambda v: v in ("append_row", "summary_only"),
    "append_row_file_name": _file_name_ok,
    "run_invocation_timeout": lambda v: _is_number(v) and 0 < v <= _MAX_TIMEOUT_S,
    "logging_level": lambda v: isinstance(v, str) and v.upper() in _LEVELS,
    "environment_variables": _env_ok,
    "partition_keys": _keys_ok,
    "description": _text_ok,
    "environment": _text_ok,
    "compute_target": _target_ok,
    "models": _models_ok,
    "model_dir": _text_ok,
    "ray_address": _text_ok,
    "worker_resources": _resources_ok,
    "ray_node_wait": lambda v: _is_number(v) and v > 0,
    "ship_inputs": lambda v: isinstance(v, bool),
    "isolate_failures": lambda v: isinstance(v, bool),
    "worker_start": lambda v: v is None or v in WORKER_STARTS,
}
_TEXT_FIELDS = frozenset(
    {"source_directory", "description", "environment", "model_dir", "ray_address"}
)


def collect_problems(v: Mapping[str, Any]) -> list[str]:
    """Every problem of the field values ``v``: each field alone, then cross-field."""
    bad = [f for f, ok in _CHECKS.items() if not ok(v[f])]
    problems = [_bad("text" if f in _TEXT_FIELDS else f, v[f], f) for f in bad]
    keys, size = v["partition_keys"], v["mini_batch_size"]
    file_name, nodes = v["append_row_file_name"], v["node_count"]
    rows = v["mini_batch_rows"]
    if rows is not None and size is not None:
        got = f"{shown(rows)} and mini_batch_size={shown(size)}"
        problems.append(_bad("mini_batch_rows_and_size", rows, "mini_batch_rows", got))
    if keys is not None and rows is not None:
        got = f"{shown(keys)} and mini_batch_rows={shown(rows)}"
        problems.append(_bad("partition_keys_and_size", keys, "partition_keys", got))
    if keys is not None and size is not None:
        got = f"{shown(keys)} and mini_batch_size={shown(size)}"
        problems.append(_bad("partition_keys_and_size", keys, "partition_keys", got))
    if file_name is not None and v["output_action"] == "summary_only":
        problems.append(
            _bad("append_row_summary_only", file_name, "append_row_file_name")
        )
    if v["compute_target"] == "local" and "node_count" not in bad and nodes != 1:
        problems.append(_bad("node_count_local", nodes, "node_count"))
    if v["compute_target"] == "local":
        given = [f for f in _RAY_ONLY if v[f] not in (None, False) and f not in bad]
        problems.extend(_bad("ray_only", v[f], f) for f in given)
    return problems


def translate(
    data: Mapping[Any, Any], where: str
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Map file keys (and v2 aliases) to fields: values, the aliases used, problems."""
    values: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    problems: list[str] = []
    items = [(k, v) for k, v in data.items() if k != "retry_settings"]
    retry = data.get("retry_settings")
    if isinstance(retry, Mapping):
        items += [(f"retry_settings.{k}", v) for k, v in retry.items()]
    elif "retry_settings" in data:
        problems.append(say("not_mapping", what="`retry_settings`", got=shown(retry)))
    for key, value in items:
        if isinstance(key, str) and key.startswith("retry_settings."):
            field = _RETRY_KEYS.get(key.removeprefix("retry_settings."), "")
        else:
            field = _ALIASES.get(key, key)
        if field not in _CHECKS:
            problems.append(_unknown_key(key, where))
        elif field in values:
            first = given_as.get(field, field)
            problems.append(say("twice", field=field, first=first, key=key))
        else:
            values[field] = _coerce(field, value)
            if key != field:
                given_as[field] = key
    return values, given_as, problems


def _unknown_key(key: object, where: str) -> str:
    nested = isinstance(key, str) and key.startswith("retry_settings.")
    valid = [f"retry_settings.{k}" for k in _RETRY_KEYS] if nested else _FILE_KEYS
    close = difflib.get_close_matches(key, valid, n=1) if isinstance(key, str) else []
    hint = f" Did you mean `{close[0]}`?" if close else ""
    got = f"`{key}`" if isinstance(key, str) else f"`{key!r}` ({type(key).__name__})"
    place = f" in {where}" if where else ""
    return say("unknown", got=got, place=place, hint=hint, valid=", ".join(valid))


def _coerce(field: str, value: Any) -> Any:
    """Turn "60" into 60 (or 60.0) for numeric fields: files often quote numbers."""
    if not isinstance(value, str):
        return value
    if field == "worker_resources":
        return _parse_resources(value)
    if (
        field in ("ship_inputs", "isolate_failures")
        and value.strip().lower() in _BOOL_TEXT
    ):
        return _BOOL_TEXT[value.strip().lower()]
    if field in _INT_FIELDS and re.fullmatch(r"\s*[+-]?[0-9]+\s*", value):
        return int(value)
    if field in _FLOAT_FIELDS:
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _parse_resources(text: str) -> Any:
    """ "num_cpus=1,num_gpus=0.5" -> {"num_cpus": 1.0, "num_gpus": 0.5}; bad text as is."""
    resources: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, number = part.partition("=")
        try:
            resources[name.strip()] = float(number)
        except ValueError:
            return text
        if not sep or not name.strip():
            return text
    return resources


_FILE_KEYS = sorted({*_CHECKS, *_ALIASES, "retry_settings"})
