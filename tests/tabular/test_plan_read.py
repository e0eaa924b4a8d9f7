"""Planning (parent) + reading (worker) of tables: every format, byte and row batching."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import pytest

from aprs._datasets._table_plan import plan
from aprs._datasets._tabular import TabularDataset
from aprs._tabular._read import TableReadError, read_slice

from .conftest import np, pd, table, write

FORMATS = {
    "csv": lambda p: TabularDataset.from_delimited_files(p),
    "tsv": lambda p: TabularDataset.from_delimited_files(p, separator="\t"),
    "parquet": TabularDataset.from_parquet_files,
    "jsonl": TabularDataset.from_json_lines_files,
}


def read_all(slices: list[Any]) -> Any:
    return pd.concat([read_slice(s) for s in slices], ignore_index=True)


def same(got: Any, want: Any) -> None:
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_byte_batches_round_trip_and_stay_near_the_budget(
    tmp_path: Path, frame: Any, fmt: str
) -> None:
    """Slices of ~16 KiB read back to exactly the table; sizes within the tolerance."""
    kwargs = {"row_group_size": 300} if fmt == "parquet" else {}
    path = write(frame, tmp_path / f"t.{fmt}", fmt, **kwargs)
    slices = list(plan(FORMATS[fmt](str(path)), None, "bytes", 16 * 1024))
    assert len(slices) > 3
    same(read_all(slices), frame)
    if fmt != "parquet":  # byte ranges: contiguous, at line ends, <= budget + one line
        assert slices[-1].stop == os.path.getsize(path)
        longest = max(len(line) for line in path.read_bytes().split(b"\n"))
        for a, b in itertools.pairwise(slices):
            assert a.stop == b.start
            assert a.stop - a.start <= 16 * 1024 + longest
        assert all(s.stop - s.start >= 16 * 1024 for s in slices[:-1])


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_row_batches_are_exact(tmp_path: Path, frame: Any, fmt: str) -> None:
    """--mini-batch-rows: every slice holds exactly N rows, the last the remainder."""
    kwargs = {"row_group_size": 333} if fmt == "parquet" else {}
    path = write(frame, tmp_path / f"t.{fmt}", fmt, **kwargs)
    slices = list(plan(FORMATS[fmt](str(path)), None, "rows", 450))
    sizes = [len(read_slice(s)) for s in slices]
    assert sizes == [450, 450, 450, 450, 200]
    assert [s.rows for s in slices] == sizes
    same(read_all(slices), frame)


def test_slices_never_cross_files(tmp_path: Path) -> None:
    """Three files of different sizes: each slice lies in one file; files in path order."""
    parts = [table(n, seed=n) for n in (10, 700, 1)]
    for i, part in enumerate(parts):
        write(part, tmp_path / f"p{i}.csv", "csv")
    ds = TabularDataset.from_delimited_files(str(tmp_path / "*.csv"))
    slices = list(plan(ds, None, "bytes", 8 * 1024))
    assert next(Path(s.path).name for s in slices) == "p0.csv"
    assert sorted({Path(s.path).name for s in slices}) == ["p0.csv", "p1.csv", "p2.csv"]
    for part, name in zip(parts, ["p0.csv", "p1.csv", "p2.csv"], strict=True):
        mine = [s for s in slices if Path(s.path).name == name]
        same(read_all(mine), part)


def test_header_modes_and_no_header(tmp_path: Path) -> None:
    """from_first_file: later files have no header; no_header names Column1..N."""
    df = table(20)
    write(df.iloc[:10], tmp_path / "a.csv", "csv")
    write(df.iloc[10:], tmp_path / "b.csv", "csv", header=False)
    ds = TabularDataset.from_delimited_files(
        [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")], header="from_first_file"
    )
    same(read_all(list(plan(ds, None, "bytes", 1 << 20))), df)
    bare = TabularDataset.from_delimited_files(str(tmp_path / "b.csv"), header=False)
    got = read_all(list(plan(bare, None, "bytes", 1 << 20)))
    assert list(got.columns) == ["Column1", "Column2", "Column3", "Column4"]
    assert got["Column1"].tolist() == list(range(10, 20))


def test_bom_and_latin1(tmp_path: Path) -> None:
    """A UTF-8 BOM is not part of the first column name; latin1 text is decoded."""
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbfa,b\n1,x\n")
    got = read_all(
        list(
            plan(
                TabularDataset.from_delimited_files(
                    str(tmp_path / "bom.csv"), encoding="utf8bom"
                ),
                None,
                "bytes",
                100,
            )
        )
    )
    assert list(got.columns) == ["a", "b"]
    (tmp_path / "l1.csv").write_bytes("name\ncaf\xe9\n".encode("latin1"))
    ds = TabularDataset.from_delimited_files(
        str(tmp_path / "l1.csv"), encoding="latin1"
    )
    assert read_all(list(plan(ds, None, "bytes", 100)))["name"].tolist() == ["café"]


def test_header_only_file_has_no_batches(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("a,b\n")
    assert (
        list(
            plan(
                TabularDataset.from_delimited_files(str(tmp_path / "h.csv")),
                None,
                "bytes",
                10,
            )
        )
        == []
    )


# -- bad input: one message with the file and the line or row group ----------------------


def one_slice(ds: TabularDataset) -> Any:
    (s,) = list(plan(ds, None, "bytes", 1 << 20))
    return s


def test_malformed_csv_row_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3,4\n5,6,7\n8,9\n")
    with pytest.raises(TableReadError) as info:
        read_slice(one_slice(TabularDataset.from_delimited_files(str(path))))
    assert f"{path}, line 4: malformed row: expected 2 columns, got 3" in str(
        info.value
    )
    assert info.value.items == 4


def test_malformed_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": \n[1]\n')
    with pytest.raises(TableReadError, match=rf"{path}, line 3: invalid JSON"):
        read_slice(one_slice(TabularDataset.from_json_lines_files(str(path))))


def test_corrupt_parquet_is_one_failing_slice(tmp_path: Path) -> None:
    """A file that is not Parquet: planned as one slice; reading it names the file."""
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(TableReadError, match=rf"{path} is not a readable Parquet file"):
        read_slice(one_slice(TabularDataset.from_parquet_files(str(path))))


def test_corrupt_parquet_row_group_is_named(tmp_path: Path) -> None:
    """Damaged column data in the second row group: the error names row group 1."""
    path = write(
        table(400),
        tmp_path / "t.parquet",
        "parquet",
        row_group_size=200,
        compression="snappy",
    )
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path)
    column = meta.row_group(1).column(1)
    start = column.data_page_offset
    data = bytearray(path.read_bytes())
    data[start + 8 : start + column.total_compressed_size - 8] = b"\xff" * (
        column.total_compressed_size - 16
    )
    path.write_bytes(bytes(data))
    slices = list(plan(TabularDataset.from_parquet_files(str(path)), None, "rows", 200))
    assert len(read_slice(slices[0])) == 200
    with pytest.raises(
        TableReadError, match=rf"{path}, row group 1: the data cannot be read"
    ):
        read_slice(slices[1])


def test_schema_mismatch_between_files(tmp_path: Path) -> None:
    """A second CSV (or Parquet) file with other columns fails its own mini-batch only."""
    df = table(5)
    for fmt in ("csv", "parquet"):
        write(df, tmp_path / f"a.{fmt}", fmt)
        write(df.rename(columns={"x": "y"}), tmp_path / f"b.{fmt}", fmt)
        ds = FORMATS[fmt](str(tmp_path / f"*.{fmt}"))
        first, second = list(plan(ds, None, "bytes", 1 << 20))
        same(read_slice(first), df)
        with pytest.raises(
            TableReadError, match=r"has the columns .* but the first file"
        ):
            read_slice(second)


def test_row_batches_exact_with_lines_of_very_different_lengths(tmp_path: Path) -> None:
    """Row cuts are guessed from the mean line length: still exact when lengths vary a
    lot, across several 1 MiB planning blocks, with and without a final newline."""
    rng = np.random.default_rng(3)
    lengths = rng.choice([1, 2, 40, 9000], size=3000, p=[0.5, 0.3, 0.14, 0.06])
    df = pd.DataFrame({"id": np.arange(3000), "text": ["x" * int(n) for n in lengths]})
    path = write(df, tmp_path / "t.csv", "csv")
    for cut_final_newline in (False, True):
        if cut_final_newline:
            path.write_bytes(path.read_bytes().rstrip(b"\n"))
        ds = TabularDataset.from_delimited_files(str(path))
        for rows in (1, 7, 450, 2999):
            slices = list(plan(ds, None, "rows", rows))
            assert [s.rows for s in slices[:-1]] == [rows] * (len(slices) - 1)
            assert sum(s.rows for s in slices) == 3000
            assert all(a.stop == b.start for a, b in itertools.pairwise(slices))
        slices = list(plan(ds, None, "rows", 450))
        assert [len(read_slice(s)) for s in slices] == [s.rows for s in slices]
        same(read_all(slices), df)
