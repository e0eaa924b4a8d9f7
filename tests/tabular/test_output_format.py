"""Worker-side formatting of run()'s DataFrames: Azure's text format, .csv, .jsonl."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from aprs._tabular._output import (
    SETTINGS_FILE,
    TableOutput,
    _integer_rows,
    split_header,
)

from .conftest import np, pd, table

RUNTIME = ["--mini_batch_size", "1MB", "--append_row_file_name"]


def encode_all(out: TableOutput, parts: list[Any]) -> bytes:
    """What the parent writes: the header once, then every part's rows, in order."""
    written = b""
    for part in parts:
        _, body = out.encode(part)
        if out.framed:
            header, body = split_header(body)
            if not written:
                body = header + body
        written += body
    return written


def test_default_text_format_is_azures() -> None:
    """Space separated, no header, no index; quoted where a value holds a space."""
    out = TableOutput.from_run_args([*RUNTIME, "parallel_run_step.txt"], None)
    df = pd.DataFrame({"id": [1, 2], "name": ["a b", "c"]})
    assert out.encode(df) == (2, b'1 "a b"\n2 c\n')
    assert out.encode(["x", 3]) == (2, b"x\n3\n")


def test_dataframe_header_argument_writes_one_header() -> None:
    out = TableOutput.from_run_args(
        [*RUNTIME, "out.txt", "--append_row_dataframe_header", "True"], None
    )
    df = pd.DataFrame({"id": [1, 2], "p": [0.5, 1.5]})
    assert encode_all(out, [df, df]) == b"id p\n1 0.5\n2 1.5\n1 0.5\n2 1.5\n"


def test_settings_file_overrides_to_csv(tmp_path: Path) -> None:
    (tmp_path / SETTINGS_FILE).write_text(
        json.dumps({"append_row": {"pandas.DataFrame.to_csv": {"sep": ","}}})
    )
    out = TableOutput.from_run_args([*RUNTIME, "out.txt"], str(tmp_path))
    assert out.encode(pd.DataFrame({"a": [1], "b": ["x y"]})) == (1, b"1,x y\n")


def test_csv_round_trip_exact() -> None:
    """.csv: header once, values with quotes, commas and nulls read back unchanged."""
    out = TableOutput.from_run_args([*RUNTIME, "scores.csv"], None)
    df = table(50)
    data = encode_all(out, [df.iloc[:20], df.iloc[20:20], df.iloc[20:]])
    back = pd.read_csv(io.BytesIO(data), dtype={"maybe": "Int64"})
    pd.testing.assert_frame_equal(back, df)


def test_jsonl_round_trip_exact() -> None:
    out = TableOutput.from_run_args([*RUNTIME, "scores.jsonl"], None)
    df = table(50)
    data = encode_all(out, [df.iloc[:7], df.iloc[7:]])
    back = pd.read_json(io.BytesIO(data), lines=True, dtype={"maybe": "Int64"})
    pd.testing.assert_frame_equal(back, df)
    assert data.count(b"\n") == 50
    assert json.loads(data.split(b"\n")[3]) == {
        "id": 3,
        "x": df.x[3],
        "text": df.text[3],
        "maybe": None,
    }


def test_arrow_table_result_and_wrong_type() -> None:
    import pyarrow as pa

    out = TableOutput.from_run_args([*RUNTIME, "o.txt"], None)
    assert out.encode(pa.table({"a": [1, 2]})) == (2, b"1\n2\n")
    with pytest.raises(TypeError, match="must return a list"):
        out.encode({"a": 1})


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("out.txt", None),
        ("scores.csv", None),
        ("out.txt", {"sep": "\t"}),
        ("out.txt", {"sep": ";", "index": True}),
        ("out.txt", {"sep": "-"}),
        ("out.txt", {"sep": ",", "na_rep": "NA"}),
        ("out.txt", {"sep": "|", "header": True}),
    ],
)
def test_integer_frames_are_written_as_pandas_writes_them(
    tmp_path: Path, name: str, settings: dict[str, Any] | None
) -> None:
    """Integer columns take a faster writer: the bytes stay those of DataFrame.to_csv."""
    if settings is not None:
        (tmp_path / SETTINGS_FILE).write_text(
            json.dumps({"append_row": {"pandas.DataFrame.to_csv": settings}})
        )
    out = TableOutput.from_run_args([*RUNTIME, name], str(tmp_path))
    big = np.iinfo(np.int64)
    frames = [
        pd.DataFrame({"id": np.arange(5000), "prediction": np.arange(5000) % 3}),
        pd.DataFrame(
            {
                "a": np.array([big.min, -1, 0, big.max], dtype="int64"),
                "b": np.array([0, 1, 2**64 - 1, 7], dtype="uint64"),
                "c": np.array([-128, 0, 5, 127], dtype="int8"),
            },
            index=[10, 11, 12, 13],
        ),
        pd.DataFrame([[1, 2], [3, 4]], columns=["same", "same"]),
        pd.DataFrame({"n": pd.array([1, None], dtype="Int64"), "m": [1, 2]}),
        pd.DataFrame({"flag": [True, False], "m": [1, 2]}),
    ]
    kwargs = {**out.to_csv, "header": False}
    if settings is None:
        assert _integer_rows(frames[0], kwargs) is not None  # the fast writer is used
    for df in frames:
        _, body = out.encode(df)
        header, rows = split_header(body) if out.framed else (b"", body)
        assert rows == df.to_csv(**kwargs).encode()
        if out.framed:
            assert (
                header == df.iloc[:0].to_csv(**{**out.to_csv, "header": True}).encode()
            )


def test_a_frame_subclass_keeps_its_own_to_csv() -> None:
    """The faster writer never bypasses a DataFrame subclass that formats rows itself."""

    class Shouting(pd.DataFrame):
        def to_csv(self, *args: Any, **kwargs: Any) -> Any:
            return str(super().to_csv(*args, **kwargs)).replace("1", "ONE")

    out = TableOutput.from_run_args([*RUNTIME, "out.txt"], None)
    assert out.encode(Shouting({"a": [1, 2]})) == (2, b"ONE\n2\n")
