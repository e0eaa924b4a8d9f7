"""Tabular jobs end to end: real workers read their own slices; run() gets DataFrames."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import aprs
from aprs import ConfigError, Dataset, FileDataset, TabularDataset

from .conftest import pd, table, write

SCORE = Path(__file__).parent / "scripts" / "score_table.py"
pytestmark = pytest.mark.slow


def read_text_output(data: bytes) -> Any:
    """Azure's text format: space separated, no header (id x text maybe batch ds keys)."""
    names = ["id", "x", "text", "maybe", "batch", "dataset", "keys"]
    return pd.read_csv(io.BytesIO(data), sep=" ", header=None, names=names)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_each_format_in_order_with_context(
    tmp_path: Path, job: Callable[..., Any], fmt: str
) -> None:
    """Two files, small byte batches: rows come out in input order, counts are rows."""
    df = table(3000)
    for i, part in enumerate((df.iloc[:1000], df.iloc[1000:])):
        write(
            part,
            tmp_path / f"p{i}.{fmt}",
            fmt,
            **({"row_group_size": 250} if fmt == "parquet" else {}),
        )
    maker = {
        "csv": Dataset.Tabular.from_delimited_files,
        "parquet": Dataset.Tabular.from_parquet_files,
        "jsonl": Dataset.Tabular.from_json_lines_files,
    }[fmt]
    ds = maker(str(tmp_path / f"p*.{fmt}")).as_named_input("scores")
    ran = job(SCORE, [ds], mini_batch_size="16KB")
    s = ran.summary
    assert (s.items_total, s.items_succeeded, s.items_failed) == (3000, 3000, 0)
    assert s.mini_batches_total > 4
    got = read_text_output(ran.output_bytes())
    pd.testing.assert_frame_equal(got[["id", "x", "text"]], df[["id", "x", "text"]])
    assert got["batch"].is_monotonic_increasing
    assert set(got["dataset"]) == {"scores"}
    assert set(got["keys"]) == {"{}"}


def test_mini_batch_rows_and_csv_output_round_trip(
    tmp_path: Path, job: Callable[..., Any]
) -> None:
    """--mini-batch-rows 400: batches of 400 rows; .csv output reads back exactly."""
    df = table(2000)
    write(df, tmp_path / "t.csv", "csv")
    ran = job(
        SCORE,
        [TabularDataset.from_delimited_files(str(tmp_path / "t.csv"))],
        mini_batch_rows=400,
        append_row_file_name="scores.csv",
    )
    assert ran.summary.mini_batches_total == 5
    back = pd.read_csv(io.BytesIO(ran.output_bytes()), dtype={"maybe": "Int64"})
    pd.testing.assert_frame_equal(back[list(df.columns)], df)
    assert back["batch"].tolist() == [i // 400 for i in range(2000)]


def test_jsonl_output_round_trip(tmp_path: Path, job: Callable[..., Any]) -> None:
    df = table(500)
    write(df, tmp_path / "t.parquet", "parquet")
    ran = job(
        SCORE,
        [TabularDataset.from_parquet_files(str(tmp_path / "t.parquet"))],
        mini_batch_rows=120,
        append_row_file_name="scores.jsonl",
    )
    back = pd.read_json(
        io.BytesIO(ran.output_bytes()), lines=True, dtype={"maybe": "Int64"}
    )
    pd.testing.assert_frame_equal(back[list(df.columns)], df)


def test_empty_dataframe_does_not_call_run(
    tmp_path: Path, job: Callable[..., Any]
) -> None:
    """A JSON Lines file of blank lines gives an empty DataFrame: run() is not called."""
    write(table(10), tmp_path / "a.jsonl", "jsonl")
    (tmp_path / "b.jsonl").write_text("\n\n\n")
    ran = job(SCORE, [TabularDataset.from_json_lines_files(str(tmp_path / "*.jsonl"))])
    s = ran.summary
    assert (s.mini_batches_total, s.mini_batches_succeeded, s.items_succeeded) == (
        2,
        2,
        10,
    )


def test_bad_rows_fail_their_batch_only(
    tmp_path: Path, job: Callable[..., Any]
) -> None:
    """A malformed CSV row and a corrupt Parquet file: one failure record each, with the
    file and line / reason, no traceback; rows count as failed items; the rest is written."""
    (tmp_path / "a.csv").write_text("id,text\n1,a\n2,b\n")
    (tmp_path / "b.csv").write_text("id,text\n3,c\n4,d,EXTRA\n5,e\n")
    ran = job(SCORE, [TabularDataset.from_delimited_files(str(tmp_path / "*.csv"))])
    s = ran.summary
    assert (s.mini_batches_failed, s.items_succeeded, s.items_failed) == (1, 2, 3)
    (record,) = ran.failures()  # a read error is not retried: the same bytes fail again
    assert record["error_type"] == "TableReadError"
    assert f"{tmp_path / 'b.csv'}, line 3: malformed row" in record["message"]
    assert record["traceback"] == ""
    assert ran.rows()[0].startswith("1 a 0")


def test_error_threshold_counts_rows(tmp_path: Path, job: Callable[..., Any]) -> None:
    (tmp_path / "a.csv").write_text("id,text\n1,a\n2,raise\n3,c\n")
    with pytest.raises(aprs.ErrorThresholdError) as info:
        job(
            SCORE,
            [TabularDataset.from_delimited_files(str(tmp_path / "a.csv"))],
            error_threshold=2,
            run_max_try=1,
        )
    assert info.value.summary is not None
    assert info.value.summary.items_failed == 3


def test_file_and_tabular_inputs_cannot_mix(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id\n1\n")
    cfg = aprs.ParallelRunConfig(entry_script=str(SCORE))
    with pytest.raises(ConfigError, match="file and tabular inputs cannot be mixed"):
        aprs.ParallelRunStep(
            name="mixed",
            parallel_run_config=cfg,
            inputs=[
                FileDataset.from_files(str(tmp_path)),
                TabularDataset.from_delimited_files(str(tmp_path / "a.csv")),
            ],
        )


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "aprs", "run", "--no-progress", *args],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_cli_tabular_and_config_mapping(tmp_path: Path) -> None:
    """--input-type tabular with a TSV; a config file's {path, type, format} mapping."""
    df = table(300)
    write(df, tmp_path / "t.tsv", "tsv")
    write(df, tmp_path / "t.data", "parquet")
    proc = cli(
        "--entry-script",
        str(SCORE),
        "--input",
        "t.tsv",
        "--input-type",
        "tabular",
        "--output",
        "o1",
        "--mini-batch-size",
        "4KB",
        "--process-count-per-node",
        "2",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    got = read_text_output((tmp_path / "o1" / "parallel_run_step.txt").read_bytes())
    assert got["id"].tolist() == list(range(300))
    (tmp_path / "job.yaml").write_text(
        f"entry_script: {SCORE}\nprocess_count_per_node: 2\noutput: o2\n"
        "inputs:\n  - {path: t.data, type: tabular, format: parquet}\n"
    )
    proc = cli("--config", "job.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "items: 300 succeeded" in proc.stdout


def test_missing_extra_is_exit_2(tmp_path: Path) -> None:
    """pyarrow hidden by an import hook (sitecustomize): one message naming the extra."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'pyarrow':\n"
        "            raise ModuleNotFoundError(name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Hide())\n"
    )
    (tmp_path / "t.csv").write_text("a\n1\n")
    path = os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])
    proc = cli(
        "--entry-script",
        str(SCORE),
        "--input",
        "t.csv",
        "--input-type",
        "tabular",
        cwd=tmp_path,
        env={"PYTHONPATH": path},
    )
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'aprs[tabular]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_parquet_output_round_trip(tmp_path: Path, job: Callable[..., Any]) -> None:
    """.parquet: one row group per mini-batch, in order, types kept (nullable ints too)."""
    import pyarrow.parquet as pq

    df = table(900)
    write(df, tmp_path / "t.csv", "csv")
    ran = job(
        SCORE,
        [TabularDataset.from_delimited_files(str(tmp_path / "t.csv"))],
        mini_batch_rows=200,
        append_row_file_name="scores.parquet",
    )
    assert ran.summary.output_file is not None
    path = ran.summary.output_file
    assert pq.ParquetFile(path).metadata.num_row_groups == 5
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back[list(df.columns)], df)
    assert back["batch"].tolist() == [i // 200 for i in range(900)]


def test_init_failure_wins_over_a_table_planned_meanwhile(
    tmp_path: Path, job: Callable[..., Any]
) -> None:
    """A table is planned while the workers start: when init() fails everywhere the job
    still stops with InitFailedError, and no mini-batch was run or written."""
    write(table(500), tmp_path / "t.csv", "csv")
    script = Path(__file__).parent / "scripts" / "init_fails.py"
    ds = TabularDataset.from_delimited_files(str(tmp_path / "t.csv"))
    with pytest.raises(aprs.InitFailedError, match="no model here"):
        job(script, [ds], mini_batch_rows=10)
