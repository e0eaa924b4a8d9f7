"""MLTable folders (Azure ML v2): the ``MLTable`` YAML file names data paths and a reader.

    <folder>/MLTable ──yaml──► paths: [file | folder | pattern] ──► data files (sorted)
                              transformations: read_delimited | read_parquet | read_json_lines
                              ──► TableOptions (or None: the MLTable lists files only)

Paths are relative to the folder; the MLTable file itself is never a data file. Only local
paths are supported (``file://`` is accepted); cloud URIs are an input error.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from .._errors import InputError
from .._tabular import TableOptions
from ._files import FileDataset

__all__ = ("MLTable", "has_mltable", "load_mltable")

log = logging.getLogger("aprs.mltable")

_READERS = {
    "read_delimited": "delimited",
    "read_parquet": "parquet",
    "read_json_lines": "json_lines",
}


@dataclass(frozen=True, slots=True)
class MLTable:
    files: list[str]  # sorted absolute paths of the data files
    options: TableOptions | None  # None: no reader, the MLTable lists files


def has_mltable(folder: str) -> bool:
    """Does ``folder`` hold an ``MLTable`` file?"""
    return os.path.isfile(os.path.join(folder, "MLTable"))


def load_mltable(folder: str) -> MLTable:
    """Read ``folder/MLTable``: its data files and its reader's options."""
    path = os.path.join(folder, "MLTable")
    data = _read_yaml(path)
    entries = data.get("paths")
    if not isinstance(entries, list) or not entries:
        raise InputError(
            f"The MLTable file {path} has no paths: list. Add one, such as "
            "paths: [{file: ./data.csv}] or [{pattern: ./data/*.parquet}]."
        )
    files: set[str] = set()
    for entry in entries:
        files.update(_entry_files(entry, folder, path))
    files.discard(os.path.abspath(path))
    if not files:
        raise InputError(f"The paths of the MLTable file {path} match no data files.")
    return MLTable(sorted(files), _reader(data.get("transformations"), path))


def _read_yaml(path: str) -> dict[str, Any]:
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise InputError(f"The MLTable file {path} cannot be read: {exc}.") from exc
    except yaml.YAMLError as exc:
        raise InputError(
            f"The MLTable file {path} is not valid YAML: {exc}. Fix its syntax."
        ) from exc
    if not isinstance(data, dict):
        raise InputError(f"The MLTable file {path} must hold a YAML mapping.")
    return data


def _entry_files(entry: Any, folder: str, where: str) -> list[str]:
    if not isinstance(entry, dict) or len(entry) != 1:
        raise InputError(
            f"Each entry of paths: in {where} must be one of file: PATH, folder: PATH or "
            f"pattern: GLOB; got {entry!r}."
        )
    ((kind, value),) = entry.items()
    if kind not in ("file", "folder", "pattern") or not isinstance(value, str):
        raise InputError(
            f"Unknown paths entry {entry!r} in {where}: use file:, folder: or pattern:."
        )
    local = value.removeprefix("file://")
    if "://" in local:
        raise InputError(
            f"The MLTable path {value!r} in {where} is a remote URI; aprs reads local "
            "files only. Download the data and point the MLTable at the local copy."
        )
    full = local if os.path.isabs(local) else os.path.join(folder, local)
    if kind == "pattern" and not any(c in full for c in "*?["):
        kind = "file"
    return FileDataset([full]).resolve()


def _reader(transformations: Any, where: str) -> TableOptions | None:
    if transformations is None:
        return None
    if not isinstance(transformations, list):
        raise InputError(f"transformations: in {where} must be a list.")
    options: TableOptions | None = None
    for step in transformations:
        name, args = _step(step)
        if name in _READERS:
            options = _options(name, args, where)
        else:
            log.warning(
                "the MLTable transformation %r in %s is not supported and is ignored",
                name,
                where,
            )
    return options


def _step(step: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(step, str):
        return step, {}
    if isinstance(step, dict) and len(step) == 1:
        ((name, args),) = step.items()
        return str(name), args if isinstance(args, dict) else {}
    return repr(step), {}


def _options(name: str, args: dict[str, Any], where: str) -> TableOptions:
    from ._tabular import _check_separator, _encoding, _header_mode

    try:
        if name == "read_parquet":
            return TableOptions("parquet")
        encoding = _encoding(args.get("encoding", "utf8"))
        if name == "read_json_lines":
            return TableOptions("json_lines", encoding=encoding)
        return TableOptions(
            "delimited",
            separator=_check_separator(args.get("delimiter", ",")),
            header=_header_mode(args.get("header", "all_files_same_headers")),
            encoding=encoding,
        )
    except InputError as exc:
        raise InputError(f"In the MLTable file {where}, {name}: {exc}") from exc
