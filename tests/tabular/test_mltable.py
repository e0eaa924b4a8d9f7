"""MLTable folders: paths (file, folder, pattern) and the three readers; file-input listing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aprs import FileDataset, InputError, TabularDataset
from aprs._datasets._spec import InputDefaults, input_from_spec
from aprs._datasets._table_plan import plan
from aprs._tabular._read import read_slice

from .conftest import pd, table, write


def mltable(folder: Path, body: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "MLTable").write_text(body)
    return folder


def rows(ds: TabularDataset) -> Any:
    slices = list(plan(ds, None, "bytes", 1 << 20))
    return pd.concat([read_slice(s) for s in slices], ignore_index=True)


@pytest.mark.parametrize(
    ("paths", "reader", "fmt"),
    [
        (
            "- file: ./data/a.csv\n  - file: ./data/b.csv",
            "read_delimited:\n      delimiter: ','\n      header: all_files_same_headers\n      encoding: utf8",
            "csv",
        ),
        ("- folder: ./data", "read_parquet", "parquet"),
        (
            "- pattern: ./data/*.jsonl",
            "read_json_lines:\n      encoding: utf8",
            "jsonl",
        ),
    ],
)
def test_mltable_forms(tmp_path: Path, paths: str, reader: str, fmt: str) -> None:
    """Each path form with each reader reads the same rows as the files themselves."""
    folder = tmp_path / "table"
    (folder / "data").mkdir(parents=True)
    df = table(30)
    write(df.iloc[:12], folder / "data" / f"a.{fmt}", fmt)
    write(df.iloc[12:], folder / "data" / f"b.{fmt}", fmt)
    mltable(
        folder, f"type: mltable\npaths:\n  {paths}\ntransformations:\n  - {reader}\n"
    )
    got = rows(TabularDataset.from_mltable(folder))
    pd.testing.assert_frame_equal(got, df, check_dtype=False)
    spec = input_from_spec(str(folder), InputDefaults())  # tabular without flags
    assert isinstance(spec, TabularDataset)
    assert (
        spec.options.format
        == {"csv": "delimited", "parquet": "parquet", "jsonl": "json_lines"}[fmt]
    )


def test_mltable_as_file_input_lists_data_files_only(tmp_path: Path) -> None:
    folder = mltable(tmp_path / "t", "paths:\n  - pattern: ./*.csv\n")
    for name in ("a.csv", "b.csv", "notes.md"):
        (folder / name).write_text("x\n1\n")
    files = FileDataset.from_files(str(folder)).resolve()
    assert [Path(f).name for f in files] == ["a.csv", "b.csv"]
    spec = input_from_spec(str(folder), InputDefaults())  # no reader: a file input
    assert isinstance(spec, FileDataset)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("paths: []\n", "has no paths"),
        ("paths:\n  - url: x\n", "use file:, folder: or pattern:"),
        ("paths:\n  - file: https://example.com/a.csv\n", "remote URI"),
        ("paths: [\n", "not valid YAML"),
        (
            "paths:\n  - file: ./a.csv\ntransformations:\n  - read_delimited:\n      delimiter: ';;'\n",
            "read_delimited: separator=';;'",
        ),
    ],
)
def test_bad_mltable(tmp_path: Path, body: str, fragment: str) -> None:
    folder = mltable(tmp_path / "t", body)
    (folder / "a.csv").write_text("x\n1\n")
    with pytest.raises(InputError, match=fragment):
        TabularDataset.from_mltable(folder)


def test_mltable_without_reader_is_not_a_table(tmp_path: Path) -> None:
    folder = mltable(tmp_path / "t", "paths:\n  - file: ./a.csv\n")
    (folder / "a.csv").write_text("x\n1\n")
    with pytest.raises(InputError, match="has no read_delimited"):
        TabularDataset.from_mltable(folder)
