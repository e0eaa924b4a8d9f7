"""partition_keys for files and tables: one mini-batch per combination of key values."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import aprs
from aprs import ConfigError, FileDataset, TabularDataset

from .conftest import pd, write

SCRIPT = Path(__file__).parent / "scripts" / "partition_rows.py"
pytestmark = pytest.mark.slow


def batches(ran: Any) -> list[tuple[dict[str, Any], str]]:
    out = []
    for line in ran.rows():
        if line:
            keys, rest = line.split("} ", 1)
            out.append((json.loads(keys + "}"), rest))
    return out


def test_partition_format_template_groups_files(
    tmp_path: Path, job: Callable[..., Any]
) -> None:
    """Azure's "{user}/{season}/{genres}.wav": one mini-batch per (user, season)."""
    for rel in [
        "ann/s1/jazz.wav",
        "ann/s1/pop.wav",
        "bob/s1/rock.wav",
        "ann/s2/jazz.wav",
    ]:
        (tmp_path / "audio" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "audio" / rel).write_text("x")
    ds = FileDataset.from_files(
        str(tmp_path / "audio"), partition_format="{user}/{season}/{genres}.wav"
    )
    ran = job(SCRIPT, [ds], partition_keys=["user", "season"])
    assert batches(ran) == [
        ({"season": "s1", "user": "ann"}, "jazz.wav,pop.wav"),
        ({"season": "s2", "user": "ann"}, "jazz.wav"),
        ({"season": "s1", "user": "bob"}, "rock.wav"),
    ]
    with pytest.raises(
        ConfigError, match="must be among the parts of partition_format"
    ):
        job(SCRIPT, [ds], partition_keys=["artist"])


def test_hive_folders_need_no_row_read(tmp_path: Path, job: Callable[..., Any]) -> None:
    """store=N/ folders: whole files per store; the folder values become columns."""
    for store, ids in (("1", [0, 1]), ("2", [2]), ("1", [3])):
        folder = tmp_path / "t" / f"store={store}"
        folder.mkdir(parents=True, exist_ok=True)
        n = len(list(folder.iterdir()))
        write(
            pd.DataFrame({"id": ids, "v": [0.5] * len(ids)}),
            folder / f"p{n}.parquet",
            "parquet",
        )
    ds = TabularDataset.from_parquet_files(str(tmp_path / "t"))
    ran = job(SCRIPT, [ds], partition_keys=["store"])
    assert batches(ran) == [
        ({"store": "1"}, "3 0,1,3 id,store,v"),
        ({"store": "2"}, "1 2 id,store,v"),
    ]
    assert ran.summary.items_total == 4


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_column_keys_stream_key_columns(
    tmp_path: Path, job: Callable[..., Any], fmt: str
) -> None:
    """Keys that are columns: one mini-batch of all matching rows, across files."""
    df = pd.DataFrame(
        {
            "id": range(8),
            "store": [1, 1, 2, 3, 2, 1, 3, 3],
            "brand": ["a", "b", "a", "a", "a", "a", "a", "a"],
        }
    )
    write(df.iloc[:5], tmp_path / f"a.{fmt}", fmt)
    write(df.iloc[5:], tmp_path / f"b.{fmt}", fmt)
    maker = {
        "csv": TabularDataset.from_delimited_files,
        "parquet": TabularDataset.from_parquet_files,
        "jsonl": TabularDataset.from_json_lines_files,
    }[fmt]
    ran = job(
        SCRIPT, [maker(str(tmp_path / f"*.{fmt}"))], partition_keys=["store", "brand"]
    )
    assert batches(ran) == [
        ({"brand": "a", "store": 1}, "2 0,5 brand,id,store"),
        ({"brand": "b", "store": 1}, "1 1 brand,id,store"),
        ({"brand": "a", "store": 2}, "2 2,4 brand,id,store"),
        ({"brand": "a", "store": 3}, "3 3,6,7 brand,id,store"),
    ]
    assert (ran.summary.items_total, ran.summary.items_succeeded) == (8, 8)


def test_missing_partition_column_fails_that_file(
    tmp_path: Path, job: Callable[..., Any]
) -> None:
    write(pd.DataFrame({"id": [0, 1], "store": [1, 2]}), tmp_path / "a.csv", "csv")
    write(pd.DataFrame({"id": [2], "shop": [1]}), tmp_path / "b.csv", "csv")
    ran = job(
        SCRIPT,
        [
            TabularDataset.from_delimited_files(
                str(tmp_path / "*.csv"), header="all_files_different_headers"
            )
        ],
        partition_keys=["store"],
    )
    assert ran.summary.mini_batches_failed == 1
    (record,) = ran.failures()
    assert f"{tmp_path / 'b.csv'} has no column 'store'" in record["message"]
    assert [k for k, _ in batches(ran)] == [{"store": 1}, {"store": 2}]


def test_partition_keys_with_mini_batch_size_is_an_error() -> None:
    with pytest.raises(
        ConfigError, match="cannot be set together with `mini_batch_size`"
    ):
        aprs.ParallelRunConfig(
            entry_script="s.py", partition_keys=["a"], mini_batch_size="1MB"
        )
