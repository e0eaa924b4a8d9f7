"""FileDataset: files named by paths, folders or globs; a mini-batch is a list of paths."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .._errors import InputError

__all__ = ("FileDataset",)


class FileDataset:
    """Files to process, as ``FileDataset.from_files(...)`` in Azure ML.

    A mini-batch is a list of absolute file path strings, files in sorted path order.
    Folders are walked recursively; globs may use ``**``; a folder holding an ``MLTable``
    file stands for the data files its ``paths:`` name (never the MLTable file itself). Resolution happens when the job
    starts (so the listing reflects the files present then).

    Example:
        >>> ds = FileDataset.from_files("data/images")
        >>> ds = FileDataset.from_files(["a.csv", "b.csv"])
        >>> ds = FileDataset.from_files("data/**/*.pgm")
    """

    __slots__ = ("_paths", "_resolved", "partition_format")

    def __init__(
        self, paths: Sequence[str], partition_format: str | None = None
    ) -> None:
        self._paths = [os.fspath(p) for p in paths]
        self._resolved: list[str] | None = None
        self.partition_format = partition_format
        if partition_format is not None:
            from ._path_keys import PathKeys

            PathKeys(partition_format)  # a bad template fails here

    @classmethod
    def from_files(
        cls,
        path: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        partition_format: str | None = None,
    ) -> FileDataset:
        """Create a dataset from a path, folder, glob, or a list of them.

        ``partition_format`` (Azure's) names the varying parts of the files' paths below
        the input folder, such as ``"{user}/{season}/{genres}.wav"``; with
        ``partition_keys`` one mini-batch holds the files of one combination of values.
        Without it, ``key=value`` folder names (Hive style) are the partition values.
        """
        if isinstance(path, (str, os.PathLike)):
            return cls([os.fspath(path)], partition_format)
        paths = [os.fspath(p) for p in path]
        if not paths:
            raise InputError(
                "FileDataset.from_files() got an empty list of paths. Pass at least one "
                "file, folder or glob pattern."
            )
        return cls(paths, partition_format)

    @property
    def patterns(self) -> list[str]:
        return list(self._paths)

    def __repr__(self) -> str:
        return f"FileDataset.from_files({self._paths!r})"

    def resolve(self, base: str | None = None) -> list[str]:
        """Sorted absolute paths of every file (blocking: call from a thread)."""
        if self._resolved is not None:
            return self._resolved
        found: set[str] = set()
        for raw in self._paths:
            pattern = (
                raw if base is None or os.path.isabs(raw) else os.path.join(base, raw)
            )
            found.update(_expand(pattern, raw))
        self._resolved = sorted(found)
        return self._resolved

    def iter_sized(self, base: str | None = None) -> Iterator[tuple[str, int]]:
        for p in self.resolve(base):
            try:
                size = os.stat(p).st_size
            except OSError as exc:
                raise InputError(f"Input file {p} cannot be read: {exc}.") from exc
            yield p, size


def _expand(pattern: str, raw: str) -> list[str]:
    if glob.has_magic(pattern):
        matches = [os.path.abspath(m) for m in glob.glob(pattern, recursive=True)]
        files = [m for m in matches if os.path.isfile(m)]
        if not files:
            raise InputError(
                f"The input pattern {raw!r} matches no files. Check the pattern (use ** to "
                "match sub-folders) and that the files exist."
            )
        return files
    path = Path(pattern)
    if path.is_file():
        if not os.access(path, os.R_OK):
            raise InputError(
                f"The input file {raw!r} is not readable. Fix its permissions."
            )
        return [str(path.resolve())]
    if path.is_dir():
        if (path / "MLTable").is_file():  # an MLTable folder lists its data files
            from ._mltable import load_mltable

            return load_mltable(str(path)).files
        if not os.access(path, os.R_OK | os.X_OK):
            raise InputError(
                f"The input folder {raw!r} is not readable. Fix its permissions."
            )
        out: list[str] = []
        for root, dirs, files in os.walk(path, onerror=_raise):
            dirs.sort()
            out.extend(os.path.abspath(os.path.join(root, f)) for f in files)
        return out
    raise InputError(
        f"The input {raw!r} does not exist (resolved to {path.absolute()}). Pass an "
        "existing file, folder or glob pattern."
    )


def _raise(exc: OSError) -> None:
    raise InputError(f"An input folder cannot be listed: {exc}.") from exc
