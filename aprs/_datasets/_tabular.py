"""TabularDataset: delimited, Parquet and JSON Lines files whose mini-batches are DataFrames.

    from_delimited_files / from_parquet_files / from_json_lines_files / from_mltable
        ──► TabularDataset(patterns, TableOptions) ──► resolve(): sorted data files
        ──► aprs._datasets._table_plan.plan(): TableSlice descriptors (byte / row ranges)

The dataset itself is only paths and options: nothing is read until the job plans it, and
the parent never parses rows (workers read their own ranges with pyarrow). Creating one
checks that the ``tabular`` extra (pyarrow + pandas) is installed, so a missing extra is a
usage error (exit 2) before any worker starts.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Sequence

from .._errors import InputError, UsageError
from .._tabular import HEADER_MODES, TableOptions
from .._tabular._slice import TableFormat
from ._files import FileDataset

__all__ = ("TabularDataset", "require_tabular_extra")

PathArg = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]

_ENCODINGS = {
    "utf8": "utf8",
    "utf-8": "utf8",
    "utf8bom": "utf8",
    "ascii": "ascii",
    "latin1": "latin1",
    "iso88591": "latin1",
    "iso-8859-1": "latin1",
    "windows1252": "cp1252",
    "cp1252": "cp1252",
}
_SUFFIXES: dict[str, TableFormat] = {
    ".csv": "delimited",
    ".tsv": "delimited",
    ".txt": "delimited",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "json_lines",
    ".json": "json_lines",
    ".ndjson": "json_lines",
}


def require_tabular_extra() -> None:
    """Raise UsageError naming the extra when pyarrow or pandas is missing."""
    missing = [m for m in ("pyarrow", "pandas") if not _installed(m)]
    if missing:
        raise UsageError(
            f"Tabular inputs need {' and '.join(missing)}, which are not installed. "
            "Install the tabular extra: pip install 'aprs[tabular]'."
        )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or blocked install counts as missing
        return False


def format_for_path(path: str) -> TableFormat | None:
    """The table format implied by a file name's extension, or None."""
    return _SUFFIXES.get(os.path.splitext(path)[1].lower())


class TabularDataset:
    """Tables to score, as ``TabularDataset`` / ``Dataset.Tabular`` in Azure ML.

    ``run(mini_batch)`` receives a ``pandas.DataFrame`` of consecutive rows of one file.
    Several files form one dataset (sorted by path); a mini-batch never crosses a file.

    Example:
        >>> ds = TabularDataset.from_delimited_files("data/iris/*.csv")
        >>> ds = TabularDataset.from_parquet_files(["a.parquet", "b.parquet"])
        >>> ds = TabularDataset.from_mltable("data/iris-mltable")
    """

    __slots__ = ("_files", "name", "options")

    def __init__(
        self, files: FileDataset, options: TableOptions, name: str | None = None
    ) -> None:
        require_tabular_extra()
        self._files = files
        self.options = options
        self.name = name or files.patterns[0]

    @classmethod
    def from_delimited_files(
        cls,
        path: PathArg,
        separator: str = ",",
        header: bool | str = True,
        encoding: str = "utf8",
    ) -> TabularDataset:
        """Delimited text files (CSV, TSV, ...); ``header`` as Azure's (True, False or a mode).

        Rows are split at newlines: a quoted value may not contain a line break.
        """
        options = TableOptions(
            "delimited",
            separator=_check_separator(separator),
            header=_header_mode(header),
            encoding=_encoding(encoding),
        )
        return cls(_files(path, "from_delimited_files"), options)

    @classmethod
    def from_parquet_files(cls, path: PathArg) -> TabularDataset:
        """Parquet files; mini-batches are row ranges planned from the row groups."""
        return cls(_files(path, "from_parquet_files"), TableOptions("parquet"))

    @classmethod
    def from_json_lines_files(
        cls, path: PathArg, encoding: str = "utf8"
    ) -> TabularDataset:
        """JSON Lines files: one JSON object per line."""
        options = TableOptions("json_lines", encoding=_encoding(encoding))
        return cls(_files(path, "from_json_lines_files"), options)

    @classmethod
    def from_mltable(cls, folder: str | os.PathLike[str]) -> TabularDataset:
        """An Azure ML v2 MLTable folder (its ``MLTable`` file names paths and the reader)."""
        from ._mltable import load_mltable

        table = load_mltable(os.fspath(folder))
        if table.options is None:
            raise InputError(
                f"The MLTable in {os.fspath(folder)!r} has no read_delimited, read_parquet "
                "or read_json_lines transformation, so it lists files, not a table. Use "
                "it as a file input (FileDataset.from_files), or add a reader to it."
            )
        return cls(FileDataset(table.files), table.options, name=os.fspath(folder))

    @classmethod
    def from_path(
        cls,
        path: str,
        *,
        format: TableFormat | None = None,
        separator: str | None = None,
        header: bool | str = True,
    ) -> TabularDataset:
        """The CLI's and config files' form: the format inferred from the extension."""
        if os.path.isfile(os.path.join(path, "MLTable")):
            return cls.from_mltable(path)
        fmt = format or _infer_format(path)
        if fmt == "parquet":
            return cls.from_parquet_files(path)
        if fmt == "json_lines":
            return cls.from_json_lines_files(path)
        if separator is None:
            separator = "\t" if path.lower().endswith(".tsv") else ","
        return cls.from_delimited_files(path, separator=separator, header=header)

    def as_named_input(self, name: str) -> TabularDataset:
        """The same dataset under ``name`` (``mini_batch_context.dataset``), as in Azure."""
        return TabularDataset(self._files, self.options, name=name)

    @property
    def patterns(self) -> list[str]:
        return self._files.patterns

    def resolve(self, base: str | None = None) -> list[str]:
        """Sorted absolute paths of the data files (blocking).

        Hidden files and files whose name starts with "_" (``_SUCCESS`` markers of Spark
        and Hadoop) are not data and are skipped.
        """
        files = self._files.resolve(base)
        return [f for f in files if not os.path.basename(f).startswith((".", "_"))]

    def __repr__(self) -> str:
        return f"TabularDataset({self.options.format}, {self._files.patterns!r})"


def _files(path: PathArg, method: str) -> FileDataset:
    if isinstance(path, (str, os.PathLike)):
        return FileDataset([os.fspath(path)])
    paths: Sequence[str] = [os.fspath(p) for p in path]
    if not paths:
        raise InputError(
            f"TabularDataset.{method}() got an empty list of paths. Pass at least one "
            "file, folder or glob pattern."
        )
    return FileDataset(paths)


def _infer_format(path: str) -> TableFormat:
    probe = path.rstrip("/*")
    fmt = format_for_path(path) or format_for_path(probe)
    if fmt is None and os.path.isdir(path):
        names = sorted(os.listdir(path))
        found = {f for f in map(format_for_path, names) if f is not None}
        fmt = found.pop() if len(found) == 1 else None
    if fmt is None:
        raise InputError(
            f"Cannot tell the table format of the input {path!r} from its name. Pass "
            "--input-format csv, parquet or jsonl (or format: in a config input)."
        )
    return fmt


def _check_separator(separator: str) -> str:
    if not isinstance(separator, str) or len(separator) != 1 or separator in '\r\n"':
        raise InputError(
            f"separator={separator!r} must be one character other than a quote or a "
            'line break, such as "," or "\\t".'
        )
    return separator


def _header_mode(header: bool | str) -> str:
    if header is True:
        return "all_files_same_headers"
    if header is False:
        return "no_header"
    value = str(header).lower()
    aliases = {"true": HEADER_MODES[0], "false": "no_header", "none": "no_header"}
    value = aliases.get(value, value)
    if value not in HEADER_MODES:
        raise InputError(
            f"header={header!r} is not a header mode. Use True, False or one of "
            f"{', '.join(HEADER_MODES)}."
        )
    return value


def _encoding(encoding: str) -> str:
    value = _ENCODINGS.get(str(encoding).lower())
    if value is None:
        raise InputError(
            f"encoding={encoding!r} is not supported for tabular files. Use one of "
            f"{', '.join(sorted(_ENCODINGS))} (UTF-16/32 files cannot be split by lines: "
            "convert them to UTF-8)."
        )
    return value
