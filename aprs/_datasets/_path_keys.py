"""Partition values taken from file paths: Azure's partition_format templates and Hive folders.

    "{user}/{season}/{genres}.wav"  ──► regex (?:^|/)(?P<user>[^/]+)/(?P<season>[^/]+)/...$
    data/store=7/brand=x/part.csv   ──► {"store": "7", "brand": "x"}   (Hive key=value/)
    files ──► group_files(keys) ──► [(partition_key_value, [files...])] in first-seen order

Values are strings, as Azure's ``{column}`` parts are. A ``{name:format}`` part (Azure's
datetime parts) matches like ``{name}`` across the slashes its format holds, and stays a
string. ``*`` and ``**`` in a template match within one folder level and across levels.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence

from .._errors import ConfigError, InputError

__all__ = ("PathKeys", "group_files", "hive_values", "path_values", "roots")

_PART = re.compile(r"\{([A-Za-z_][A-Za-z0-9_ ]*)(?::([^}]*))?\}|\*\*|\*")


class PathKeys:
    """A compiled partition_format template."""

    __slots__ = ("keys", "regex", "template")

    def __init__(self, template: str) -> None:
        self.template = template
        pattern, keys, pos = [], [], 0
        for m in _PART.finditer(template):
            pattern.append(re.escape(template[pos : m.start()]))
            if m.group(0) == "**":
                pattern.append(".*")
            elif m.group(0) == "*":
                pattern.append("[^/]*")
            else:
                name = m.group(1)
                if name in keys:
                    raise ConfigError(
                        f"partition_format {template!r} names {{{name}}} twice. Name each "
                        "part once."
                    )
                keys.append(name)
                fmt = m.group(2) or ""
                width = fmt.count("/") + 1
                pattern.append(f"(?P<{name}>[^/]+" + "/[^/]+" * (width - 1) + ")")
            pos = m.end()
        pattern.append(re.escape(template[pos:]))
        if not keys:
            raise ConfigError(
                f"partition_format {template!r} has no {{name}} part. Write the path with "
                'the varying parts named, such as "{user}/{season}/{genres}.wav".'
            )
        body = "".join(pattern).lstrip("/")
        self.keys = keys
        self.regex = re.compile(f"(?:^|/){body}$")

    def values(self, relpath: str) -> dict[str, str] | None:
        m = self.regex.search(relpath.replace(os.sep, "/"))
        return None if m is None else {k: m.group(k) for k in self.keys}


def hive_values(relpath: str) -> dict[str, str]:
    """The ``key=value`` folder names of a path, outermost first."""
    parts = relpath.replace(os.sep, "/").split("/")[:-1]
    found: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if sep and key:
            found[key] = value
    return found


def roots(patterns: Sequence[str], base: str | None) -> list[str]:
    """The folder each pattern's files are relative to (longest first)."""
    out = []
    for raw in patterns:
        path = raw if base is None or os.path.isabs(raw) else os.path.join(base, raw)
        if glob.has_magic(path):
            path = re.split(r"[*?\[]", path, maxsplit=1)[0]
            path = path if path.endswith(os.sep) else os.path.dirname(path)
        elif os.path.isfile(path):
            path = os.path.dirname(path)
        out.append(os.path.abspath(path))
    return sorted(set(out), key=len, reverse=True)


def relative(path: str, folders: list[str]) -> str:
    for root in folders:
        if path.startswith(root.rstrip(os.sep) + os.sep):
            return os.path.relpath(path, root)
    return os.path.basename(path)


def path_values(
    files: list[str], folders: list[str], template: PathKeys | None
) -> list[dict[str, str]]:
    """The partition values of every file (from the template, else its Hive folders)."""
    out = []
    for path in files:
        rel = relative(path, folders)
        if template is None:
            out.append(hive_values(rel))
            continue
        found = template.values(rel)
        if found is None:
            raise InputError(
                f"The file {path} does not match partition_format {template.template!r} "
                f"(its path below the input folder is {rel!r}). Fix the template or move "
                "the file out of the input."
            )
        out.append(found)
    return out


def group_files(
    files: list[str], values: list[dict[str, str]], keys: list[str]
) -> list[tuple[dict[str, str], list[str]]]:
    """One group per distinct combination of ``keys``, in order of first appearance."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for path, found in zip(files, values, strict=True):
        groups.setdefault(tuple(found[k] for k in keys), []).append(path)
    return [
        (dict(zip(keys, combo, strict=True)), paths) for combo, paths in groups.items()
    ]
