"""partition_keys for file and table inputs: one mini-batch per combination of key values.

    FileDataset   ──► values from partition_format / key=value folders ──► files per combo
    TabularDataset, keys in the paths (partition_format, key=value folders)
                  ──► whole files per combo (no row is read), folder values become columns
    TabularDataset, keys are columns
                  ──► the parent reads only the key columns (streamed, file by file)
                  ──► per combo: the files holding it + its row count
                  ──► TableSlice(whole file, match=True): the worker keeps the matching rows

Groups come out in order of first appearance. Memory: one entry per combination and file,
never the rows. A file that lacks a key column becomes a mini-batch of its own that fails
in the worker, naming the file and the column (it is not silently skipped).
"""

from __future__ import annotations

import os
from typing import Any

from .._errors import ConfigError
from .._tabular import TableSlice
from .._tabular._read import column_names
from ._files import FileDataset
from ._path_keys import PathKeys, group_files, path_values, roots
from ._tabular import TabularDataset

__all__ = ("file_groups", "table_groups")

Group = tuple[dict[str, Any], list[TableSlice], int]


def _path_groups(
    files: list[str],
    patterns: list[str],
    base: str | None,
    keys: list[str],
    fmt: str | None,
) -> tuple[list[dict[str, str]], bool]:
    """Every file's path values, and whether ``keys`` are all among them."""
    template = PathKeys(fmt) if fmt else None
    values = path_values(files, roots(patterns, base), template)
    if template is not None and not set(keys) <= set(template.keys):
        raise ConfigError(
            f"partition_keys={keys!r} must be among the parts of partition_format "
            f"{template.template!r}: {template.keys}. Name them in the template."
        )
    return values, all(set(keys) <= set(v) for v in values)


def file_groups(
    ds: FileDataset, base: str | None, keys: list[str]
) -> list[tuple[dict[str, Any], list[str]]]:
    """The files of each combination (blocking)."""
    files = ds.resolve(base)
    values, complete = _path_groups(files, ds.patterns, base, keys, ds.partition_format)
    if not complete:
        missing = next(
            f for f, v in zip(files, values, strict=True) if not set(keys) <= set(v)
        )
        raise ConfigError(
            f"partition_keys={keys!r}: the file {missing} has no such parts in its path. "
            "Give partition_format (--partition-format), or use key=value folder names."
        )
    return group_files(files, values, keys)


def table_groups(ds: TabularDataset, base: str | None, keys: list[str]) -> list[Group]:
    """(partition_key_value, slices, rows or 1) per combination (blocking)."""
    files = ds.resolve(base)
    values, complete = _path_groups(files, ds.patterns, base, keys, None)
    if complete:  # Hive folders: whole files, no row read here
        out: list[Group] = []
        for combo, paths in group_files(files, values, keys):
            by_path = dict(zip(files, values, strict=True))
            parts = [
                _whole(ds, p, files[0], combo, by_path[p], match=False) for p in paths
            ]
            out.append((combo, parts, 1))
        return out
    return _column_groups(ds, files, keys)


def _whole(
    ds: TabularDataset,
    path: str,
    first: str,
    combo: dict[str, Any],
    constants: dict[str, str],
    *,
    match: bool,
) -> TableSlice:
    fmt = ds.options.format
    start = 0
    if fmt != "parquet":
        from ._table_plan import data_start

        start = data_start(path, ds.options.has_header(path == first))
    stop = -1 if fmt == "parquet" else os.path.getsize(path)
    return TableSlice(
        path,
        ds.options,
        start,
        stop,
        header_file=first if fmt == "delimited" else None,
        dataset=ds.name,
        key_value=combo,
        constants=constants,
        match=match,
    )


def _column_groups(
    ds: TabularDataset, files: list[str], keys: list[str]
) -> list[Group]:
    combos: dict[tuple[Any, ...], tuple[list[str], list[int]]] = {}
    broken: list[str] = []
    for path in files:
        probe = _whole(ds, path, files[0], {}, {}, match=False)
        try:
            names = column_names(probe)
            absent = [k for k in keys if names is not None and k not in names]
            found = [] if absent else _key_counts(probe, keys)
        except Exception:  # unreadable here: its worker reports why, for that file
            absent, found = keys, []
        if absent:
            broken.append(path)
            continue
        for combo, count in found:
            paths, counts = combos.setdefault(combo, ([], []))
            if not paths or paths[-1] != path:
                paths.append(path)
                counts.append(0)
            counts[-1] += count
    out: list[Group] = []
    for combo, (paths, counts) in combos.items():
        kv = dict(zip(keys, combo, strict=True))
        parts = [_whole(ds, p, files[0], kv, {}, match=True) for p in paths]
        out.append((kv, parts, sum(counts)))
    for path in broken:  # fails in the worker: "no column ... in file ..."
        kv = dict.fromkeys(keys)
        out.append((kv, [_whole(ds, path, files[0], kv, {}, match=True)], 1))
    return out


def _key_counts(
    probe: TableSlice, keys: list[str]
) -> list[tuple[tuple[Any, ...], int]]:
    """Distinct key combinations of one file with their row counts, first-seen order."""
    from .._tabular._read import key_batches

    counts: dict[tuple[Any, ...], int] = {}
    for batch in key_batches(probe, keys):
        grouped = batch.group_by(keys, use_threads=False).aggregate([([], "count_all")])
        columns = [grouped.column(k).to_pylist() for k in keys]
        for combo, n in zip(
            zip(*columns, strict=True),
            grouped.column("count_all").to_pylist(),
            strict=True,
        ):
            counts[combo] = counts.get(combo, 0) + n
    return list(counts.items())
