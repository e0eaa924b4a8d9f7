"""isolate_failures on tables: a poison row in a slice fails alone; the other rows are written.

The parent sends row windows of the slice (``RowWindow``); each worker reads the whole slice
and keeps the window's rows. ``score_table.py`` raises on a row whose text is "raise" and
kills its worker on a row whose text is "crash".
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aprs import TabularDataset

from .conftest import pd, table, write

SCORE = Path(__file__).parent / "scripts" / "score_table.py"
pytestmark = pytest.mark.slow


def poisoned(n: int, rows: dict[int, str]) -> Any:
    df = table(n)
    for i, text in rows.items():
        df.loc[i, "text"] = text
    return df


def read_text_output(data: bytes) -> Any:
    names = ["id", "x", "text", "maybe", "batch", "dataset", "keys"]
    return pd.read_csv(io.BytesIO(data), sep=" ", header=None, names=names)


def test_csv_byte_slices_poison_rows_fail_alone(
    tmp_path: Path, job: Callable[..., Any]
) -> None:
    """Byte-range slices (rows unknown until read): the failed try reports the rows."""
    df = poisoned(2000, {17: "raise", 1234: "raise", 1235: "raise"})
    write(df, tmp_path / "t.csv", "csv")
    ds = TabularDataset.from_delimited_files(str(tmp_path / "t.csv"))
    ran = job(SCORE, [ds], mini_batch_size="16KB", isolate_failures=True, run_max_try=1)

    s = ran.summary
    assert (s.items_total, s.items_succeeded, s.items_failed) == (2000, 1997, 3)
    assert s.items_isolated == 3 and s.mini_batches_failed == 2
    got = read_text_output(ran.output_bytes())
    good = df.drop(index=[17, 1234, 1235]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got[["id", "x", "text"]], good[["id", "x", "text"]])
    assert got["batch"].is_monotonic_increasing
    singles = [r for r in ran.failures() if r["part"] and r["part"][1] == 1]
    assert len(singles) == 3
    assert all(r["items"][0].startswith("row ") for r in singles)


def test_parquet_crash_and_raise_rows_with_parquet_output(
    tmp_path: Path, job: Callable[..., Any]
) -> None:
    """Parquet slices know their rows, so even a crash is bisected; the output's Arrow
    streams from the parts become row groups in order."""
    df = poisoned(600, {5: "crash", 450: "raise"})
    write(df, tmp_path / "t.parquet", "parquet", row_group_size=100)
    ran = job(
        SCORE,
        [TabularDataset.from_parquet_files(str(tmp_path / "t.parquet"))],
        mini_batch_rows=200,
        append_row_file_name="scores.parquet",
        isolate_failures=True,
        run_max_try=1,
    )

    s = ran.summary
    assert (s.items_succeeded, s.items_failed, s.items_isolated) == (598, 2, 2)
    assert s.worker_crashes >= 1
    assert s.output_file is not None
    back = pd.read_parquet(s.output_file)
    good = df.drop(index=[5, 450]).reset_index(drop=True)
    pd.testing.assert_frame_equal(back[list(df.columns)], good)
    assert back["batch"].tolist() == [i // 200 for i in good["id"]]


def test_csv_rows_with_csv_output_header_written_once(
    tmp_path: Path, job: Callable[..., Any]
) -> None:
    """--mini-batch-rows: a crash row is isolated; the .csv header comes once."""
    df = poisoned(1000, {300: "crash", 999: "raise"})
    write(df, tmp_path / "t.csv", "csv")
    ran = job(
        SCORE,
        [TabularDataset.from_delimited_files(str(tmp_path / "t.csv"))],
        mini_batch_rows=250,
        append_row_file_name="scores.csv",
        isolate_failures=True,
        run_max_try=1,
    )

    assert (ran.summary.items_failed, ran.summary.items_isolated) == (2, 2)
    data = ran.output_bytes()
    assert data.count(b"id,x,text,maybe") == 1
    back = pd.read_csv(io.BytesIO(data), dtype={"maybe": "Int64"})
    good = df.drop(index=[300, 999]).reset_index(drop=True)
    pd.testing.assert_frame_equal(back[list(df.columns)], good)


def test_partition_batch_poison_row_fails_alone(
    tmp_path: Path, job: Callable[..., Any]
) -> None:
    """A partition (whole files filtered by key columns) is bisected by its rows."""
    df = pd.DataFrame(
        {
            "id": range(12),
            "store": [1, 2] * 6,
            "text": ["ok"] * 7 + ["raise"] + ["ok"] * 4,
        }
    )
    write(df.iloc[:6], tmp_path / "a.csv", "csv")
    write(df.iloc[6:], tmp_path / "b.csv", "csv")
    ran = job(
        SCORE,
        [TabularDataset.from_delimited_files(str(tmp_path / "*.csv"))],
        partition_keys=["store"],
        isolate_failures=True,
        run_max_try=1,
    )

    s = ran.summary
    assert (s.mini_batches_total, s.mini_batches_failed) == (2, 1)
    assert (s.items_succeeded, s.items_failed, s.items_isolated) == (11, 1, 1)
    names = ["id", "store", "text", "batch", "dataset", "keys"]
    got = pd.read_csv(io.BytesIO(ran.output_bytes()), sep=" ", header=None, names=names)
    assert got["id"].tolist() == [0, 2, 4, 6, 8, 10, 1, 3, 5, 9, 11]


def test_byte_slice_whose_tries_crash_is_counted_then_bisected(
    tmp_path: Path, job: Callable[..., Any]
) -> None:
    """A byte-range slice whose first try crashes never reported its rows: the parent has
    a worker read it once without run() (RowCount), then bisects it by rows."""
    write(table(300), tmp_path / "a.csv", "csv")
    write(poisoned(300, {100: "crash"}), tmp_path / "b.csv", "csv")
    ds = TabularDataset.from_delimited_files(str(tmp_path / "*.csv"))
    ran = job(SCORE, [ds], isolate_failures=True, run_max_try=1)

    s = ran.summary
    assert (s.mini_batches_total, s.mini_batches_failed) == (2, 1)
    assert (s.items_total, s.items_succeeded, s.items_failed) == (600, 599, 1)
    assert s.items_isolated == 1
    got = read_text_output(ran.output_bytes())
    assert got["id"].tolist() == list(range(300)) + [i for i in range(300) if i != 100]
    lines = (ran.out / "logs" / "minibatches.jsonl").read_bytes().splitlines()
    probes = [line for line in lines if line.endswith(b"[0,0]]")]
    assert len(probes) == 1 and b'"done"' in probes[0]  # read once, run() not called


def test_byte_slice_hang_on_one_row_is_isolated(
    tmp_path: Path, job: Callable[..., Any]
) -> None:
    """A hang costs run_invocation_timeout per level; the row fails alone."""
    df = poisoned(12, {7: "hang"})
    write(df, tmp_path / "t.csv", "csv")
    ds = TabularDataset.from_delimited_files(str(tmp_path / "t.csv"))
    ran = job(
        SCORE,
        [ds],
        isolate_failures=True,
        run_max_try=1,
        run_invocation_timeout=1.0,
    )

    s = ran.summary
    assert (s.items_total, s.items_succeeded, s.items_failed) == (12, 11, 1)
    assert s.items_isolated == 1 and s.worker_timeouts >= 3
    got = read_text_output(ran.output_bytes())
    assert got["id"].tolist() == [i for i in range(12) if i != 7]
    [alone] = [r for r in ran.failures() if r["part"] and r["part"][1] == 1]
    assert alone["kind"] == "timeout" and alone["items"][0] == "row 7 of the mini-batch"
