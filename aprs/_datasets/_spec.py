"""Inputs named on the command line or in a config file: a path, or a mapping with options.

    "--input data/ --input-type tabular --input-format csv"      ┐
    config: inputs: [data/, {path: t.parquet, type: tabular}]    ├─► FileDataset | TabularDataset
    a folder holding an MLTable file (with a reader)             ┘

The type defaults to ``file``, except for a folder holding an MLTable file with a reader
(``read_delimited``, ``read_parquet``, ``read_json_lines``), which is tabular.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigError
from .._tabular._slice import TableFormat
from ._files import FileDataset
from ._mltable import has_mltable, load_mltable
from ._tabular import TabularDataset

__all__ = ("InputDefaults", "input_from_spec")

_FORMATS: dict[str, tuple[TableFormat, str | None]] = {
    "csv": ("delimited", None),
    "delimited": ("delimited", None),
    "txt": ("delimited", None),
    "tsv": ("delimited", "\t"),
    "parquet": ("parquet", None),
    "jsonl": ("json_lines", None),
    "json": ("json_lines", None),
    "json_lines": ("json_lines", None),
}
_KEYS = ("path", "type", "format", "separator", "header", "name", "partition_format")


@dataclass(frozen=True, slots=True)
class InputDefaults:
    """The command line's input options, applied to every input that does not override."""

    type: str | None = (
        None  # "file" | "tabular" | None (file, or tabular for an MLTable)
    )
    format: str | None = None
    separator: str | None = None
    header: bool | str = True
    partition_format: str | None = None


def input_from_spec(
    spec: str | Mapping[str, Any], defaults: InputDefaults
) -> FileDataset | TabularDataset:
    """One input from a path or a ``{path, type, format, separator, header}`` mapping."""
    if isinstance(spec, Mapping):
        unknown = sorted(set(map(str, spec)) - set(_KEYS))
        if unknown or not isinstance(spec.get("path"), str):
            raise ConfigError(
                f"An input mapping must have a path: and may have {', '.join(_KEYS[1:])}; "
                f"got {dict(spec)!r}. Write it as {{path: data.csv, type: tabular}}."
            )
        path = spec["path"]
        kind = spec.get("type", defaults.type)
        fmt = spec.get("format", defaults.format)
        separator = spec.get("separator", defaults.separator)
        header = spec.get("header", defaults.header)
        name = spec.get("name")
        template = spec.get("partition_format", defaults.partition_format)
    elif isinstance(spec, str):
        path, kind, fmt = spec, defaults.type, defaults.format
        separator, header, name = defaults.separator, defaults.header, None
        template = defaults.partition_format
    else:
        raise ConfigError(
            f"An input must be a path or a mapping with path:; got {spec!r}."
        )
    kind = _kind(path, kind, fmt)
    if kind == "file":
        return FileDataset.from_files(path, partition_format=template)
    table_format, implied_sep = _format(fmt)
    ds = TabularDataset.from_path(
        path, format=table_format, separator=separator or implied_sep, header=header
    )
    return ds.as_named_input(name) if name else ds


def _kind(path: str, kind: Any, fmt: Any) -> str:
    if kind is None:
        mltable = has_mltable(path) and load_mltable(path).options is not None
        kind = "tabular" if mltable or fmt is not None else "file"
    if kind not in ("file", "tabular"):
        raise ConfigError(
            f"The input type {kind!r} of {path!r} is unknown. Use file (mini-batches are "
            "lists of paths) or tabular (mini-batches are DataFrames)."
        )
    return str(kind)


def _format(fmt: Any) -> tuple[TableFormat | None, str | None]:
    if fmt is None:
        return None, None
    found = _FORMATS.get(str(fmt).lower())
    if found is None:
        raise ConfigError(
            f"The input format {fmt!r} is unknown. Use csv, tsv, parquet or jsonl."
        )
    return found
