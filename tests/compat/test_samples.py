"""The compatibility suite: entry scripts and job files modelled on Microsoft's public
ParallelRunStep / parallel job samples (written for this repository), each run end to end
from the CLI, unchanged, with its output checked (issue 9).

Every sample folder under samples/ is copied to a temporary folder first, so relative paths
in the job files resolve there and nothing is written into the repository.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import SAMPLES, cli, metrics, numbered_files

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def sample(tmp_path: Path):  # type: ignore[no-untyped-def]
    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(SAMPLES / name, target)
        return target

    return copy


def _images(folder: Path, count: int) -> Path:
    """Tiny "images": three pixel values per file; the label is their sum modulo 10."""
    folder.mkdir(parents=True)
    for i in range(1, count + 1):
        (folder / f"img{i:02d}.txt").write_text(f"{i} 0 {i * 3}\n")
    return folder


_DIGITS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
]


def _expected_labels(count: int) -> list[str]:
    return [f"img{i:02d}.txt: {_DIGITS[(4 * i) % 10]}" for i in range(1, count + 1)]


def test_v1_image_scoring_with_a_registered_model(sample, tmp_path: Path) -> None:
    """MachineLearningNotebooks' file-dataset inference: Model.get_model_path("mnist-prs")."""
    root = sample("mnist_v1")
    model = root / "mnist-model"
    model.mkdir()
    (model / "weights.json").write_text(json.dumps(dict(enumerate(_DIGITS))))
    images = _images(tmp_path / "images", 7)
    done = cli(
        "run", "--entry-script", root / "digit_identification.py", "--input", images,
        "--output", tmp_path / "out", "--mini-batch-size", "3",
        "--model", f"mnist-prs={model}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = (tmp_path / "out" / "parallel_run_step.txt").read_text().splitlines()
    assert rows == _expected_labels(7)


def test_v2_pipeline_file_with_a_local_input(sample, tmp_path: Path) -> None:
    """azureml-examples' mnist pipeline.yml: the parallel job of a pipeline, its input
    bound to another job's output, so the local folder is given with --set. Its output
    file is an azureml:// datastore path: written under the output folder with its own
    name, and a note says where."""
    root = sample("mnist_v2")
    images = _images(tmp_path / "images", 12)
    done = cli(
        "run", "--config", root / "pipeline.yml",
        "--set", f"inputs.job_data_path.path={images}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = tmp_path / "aprs_output" / "aprs-digit-identification"
    result = out / "aggregated_returns.csv"
    assert result.read_text().splitlines() == _expected_labels(12)
    note = " ".join(done.stderr.split())
    assert f"an Azure location; writing it to {result} instead" in note
    summary = json.loads((out / "logs" / "job_result.json").read_text())
    assert summary["mini_batches_total"] == 3  # mini_batch_size: "5"
    ignored = " ".join(done.stderr.split())
    assert "ignored resources.instance_count=2, compute, task.environment" in ignored


def _sales(folder: Path, stores: int, weeks: int) -> Path:
    folder.mkdir(parents=True)
    for s in range(1, stores + 1):
        lines = ["Week,Quantity"] + [f"{w},{10 * s + w}" for w in range(1, weeks + 1)]
        (folder / f"store{s}.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_v1_many_models_training_from_a_saved_config(sample, tmp_path: Path) -> None:
    """The many-models accelerator's train.py, from a save_to_yaml file: Run.get_context()
    logs, uploads and registers per model; the file's cloud keys are reported, not fatal."""
    root = sample("many_models_train")
    data = _sales(tmp_path / "sales", 5, 6)
    out = tmp_path / "out"
    done = cli(
        "run", "--config", root / "parallel_run_config.yml", "--input", data,
        "--output", out, "--", "--target_column", "Quantity", "--timestamp_column",
        "Week", "--model_type", "mean", "--test_size", "2", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    notes = " ".join(done.stderr.split())
    assert "ignored compute_target_name, environment, node_count=3" in notes
    rows = [json.loads(r) for r in (out / "train_results.txt").read_text().splitlines()]
    assert [r["model_name"] for r in rows] == [f"mean_store{s}" for s in range(1, 6)]
    # store s: weeks 1-4 average 10s+2.5, test weeks 5 and 6 -> MAE 3.0
    assert {r["mae"] for r in rows} == {3.0} and {r["status"] for r in rows} == {
        "Running"
    }
    records = metrics(out)
    registered = sorted(r["name"] for r in records if r["kind"] == "register_model")
    assert registered == [f"mean_store{s}" for s in range(1, 6)]
    assert (
        sorted(p.name for p in (out / "logs" / "user" / "run_files").iterdir())
        == registered
    )


def test_many_models_forecasting_from_the_model_cache(sample, tmp_path: Path) -> None:
    """forecast.py finds each store's model in ./azureml-models/<name>/<version>/ and logs
    through EntryScript().logger."""
    root = sample("many_models_forecast")
    for store, forecast in (("store1", 12.5), ("store2", 22.5)):
        for version in (1, 2):
            folder = tmp_path / "azureml-models" / f"mean_{store}" / str(version)
            folder.mkdir(parents=True)
            value = forecast * version / 2  # the highest version is the right one
            (folder / "model.json").write_text(json.dumps({"forecast": value}))
    horizons = tmp_path / "horizons"
    horizons.mkdir()
    (horizons / "store1.txt").write_text("4")
    (horizons / "store2.txt").write_text("2")
    out = tmp_path / "out"
    done = cli(
        "run", "--entry-script", root / "forecast.py", "--input", horizons,
        "--output", out, "--", "--model_type", "mean", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (out / "parallel_run_step.txt").read_text().splitlines() == [
        "store1 4 50.0",
        "store2 2 45.0",
    ]
    logs = "".join(
        p.read_text() for p in (out / "logs" / "user" / "entry_script_log").iterdir()
    )
    assert "store store1: 4 weeks from azureml-models/mean_store1/2/model.json" in logs


def test_many_models_train_then_forecast_through_the_local_registry(
    sample, tmp_path: Path
) -> None:
    """register_model in the training job stores each model as
    <output>/azureml-models/<name>/<version>/; the forecasting job, given that folder with
    --model-dir, finds every model with Model.get_model_path: both scripts unchanged."""
    train, forecast = sample("many_models_train"), sample("many_models_forecast")
    data = _sales(tmp_path / "sales", 2, 6)
    trained = tmp_path / "trained"
    done = cli(
        "run", "--config", train / "parallel_run_config.yml", "--input", data,
        "--output", trained, "--", "--target_column", "Quantity", "--timestamp_column",
        "Week", "--model_type", "mean", "--test_size", "2", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    registry = trained / "azureml-models"
    assert sorted(
        p.relative_to(registry).as_posix() for p in registry.glob("*/*/*")
    ) == [
        "mean_store1/1/mean_store1",
        "mean_store2/1/mean_store2",
    ]
    horizons = tmp_path / "horizons"
    horizons.mkdir()
    (horizons / "store1.txt").write_text("4")
    (horizons / "store2.txt").write_text("2")
    out = tmp_path / "forecasts"
    done = cli(
        "run", "--entry-script", forecast / "forecast.py", "--input", horizons,
        "--output", out, "--model-dir", registry, "--", "--model_type", "mean",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (out / "parallel_run_step.txt").read_text().splitlines() == [
        "store1 4 50.0",
        "store2 2 45.0",
    ]


def test_batch_endpoint_scoring_reads_azureml_model_dir(sample, tmp_path: Path) -> None:
    root = sample("batch_endpoint")
    data = tmp_path / "rows"
    data.mkdir()
    for name, values in (("a", "4,0"), ("b", "1,1"), ("c", "0,8")):
        (data / f"{name}.csv").write_text(values)
    out = tmp_path / "out"
    done = cli(
        "run", "--entry-script", root / "score.py", "--input", data, "--output", out,
        "--model-dir", root / "model", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = (out / "parallel_run_step.txt").read_text().splitlines()
    assert rows == ["a.csv,1", "b.csv,0", "c.csv,1"]


def test_v2_partitioned_training_returning_nothing_completes(sample) -> None:
    """The OJ sales training job: run() returns [] per partition, with
    mini_batch_error_threshold 5, error_threshold -1 and --allowed_failed_percent 30 among
    the program arguments. In Azure it completes; here too, with every model written."""
    root = sample("partitioned_training")
    sales = root / "sales"
    for store in ("s1", "s2", "s3", "s4"):
        _sales(sales / store, 2, 3)
    done = cli("run", "--config", root / "parallel_train.yml", cwd=root)
    assert done.returncode == 0, done.stderr
    out = root / "aprs_output" / "aprs-parallel-train"
    models = sorted(p.parent.name for p in (out / "model_folder").glob("*/model.json"))
    assert models == ["s1", "s2", "s3", "s4"]
    result = json.loads((out / "logs" / "job_result.json").read_text())
    assert result["mini_batches_failed"] == 0 and result["items_failed"] == 8
    assert not (
        out / "parallel_run_step.txt"
    ).exists()  # no append_row_to: summary_only
    stderr = " ".join(done.stderr.split())
    assert "runtime flags --task_overhead_timeout, --progress_update_timeout" in stderr


def test_skeleton_from_a_load_yaml_file(sample, tmp_path: Path) -> None:
    """Azure's skeleton with EntryScript, run(mini_batch, mini_batch_context) and
    shutdown(), from a hand-written load_yaml file whose environment is a file path."""
    root = sample("skeleton")
    data = numbered_files(tmp_path / "data", 7)
    out = tmp_path / "out"
    done = cli(
        "run", "--config", root / "prs_config.yml", "--input", data, "--output", out,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    notes = " ".join(done.stderr.split())
    assert "ignored compute_target_name, environment_dir_path, environment" in notes
    batches = sorted((out / "per_batch").iterdir(), key=lambda p: int(p.stem))
    assert [p.read_text().split() for p in batches] == [
        ["f01.txt", "f02.txt", "f03.txt"],
        ["f04.txt", "f05.txt", "f06.txt"],
        ["f07.txt"],
    ]
    logs = "".join(
        p.read_text() for p in (out / "logs" / "user" / "entry_script_log").iterdir()
    )
    assert "init() in process0" in logs and "shutdown() in process0" in logs
    result = json.loads((out / "logs" / "job_result.json").read_text())
    assert result["items_succeeded"] == 7


def test_v2_pipeline_inputs_and_the_old_iris_quirks(sample, tmp_path: Path) -> None:
    """The iris pipeline: a step input bound to ${{parent.inputs.x}}, task.type function,
    args: instead of program_arguments, an optional $[[...]] segment whose input is unset."""
    root = sample("iris_pipeline")
    data = tmp_path / "iris"
    data.mkdir()
    (data / "a.csv").write_text("id,petal_length\n1,1.4\n2,4.5\n")
    (data / "b.csv").write_text("id,petal_length\n3,6.1\n")
    out = tmp_path / "out"
    done = cli(
        "run", "--config", root / "pipeline.yml", "--output", out,
        "--set", "inputs.pipeline_input_data.path=iris", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = (out / "parallel_run_step.txt").read_text().splitlines()
    assert rows == ["a.csv Setosa,Versicolor", "b.csv Virginica"]


def test_azure_detection_by_run_id_behaves(sample, tmp_path: Path) -> None:
    """A script that looks for AZUREML_RUN_ID finds it, and the Run it then uses works."""
    root = sample("run_detect")
    data = numbered_files(tmp_path / "data", 3)
    out = tmp_path / "out"
    done = cli(
        "run", "--entry-script", root / "score.py", "--input", data, "--output", out,
        "--process-count-per-node", "1", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = (out / "parallel_run_step.txt").read_text().splitlines()
    assert rows == [f"f0{i}.txt tracked" for i in (1, 2, 3)]
    assert {r["kind"] for r in metrics(out)} == {"tag", "log_row"}


def test_v2_tabular_iris_from_an_mltable_input(sample) -> None:
    """azureml-examples' iris pipeline: an MLTable input (direct mode), run() takes and
    returns a DataFrame, Azure's runtime flags in program_arguments."""
    root = sample("iris_mltable")
    done = cli("run", "--config", root / "pipeline.yml", "--no-progress", cwd=root)
    assert done.returncode == 0, done.stderr
    out = root / "aprs_output" / "aprs-iris-prediction"
    rows = (out / "parallel_run_step.txt").read_text().splitlines()
    assert len(rows) == 30
    assert [r.split()[-1] for r in rows[:3]] == ["Setosa", "Versicolor", "Virginica"]
    assert all(len(r.split()) == 5 for r in rows)  # 4 measurements + variety, no label
    result = json.loads((out / "logs" / "job_result.json").read_text())
    assert (result["items_succeeded"], result["items_failed"]) == (30, 0)


def test_file_partitions_per_folder(sample, tmp_path: Path) -> None:
    """MachineLearningNotebooks' partition-per-folder sample: one mini-batch per
    (user, genres) folder, the keys in mini_batch_context.partition_key_value."""
    root = sample("partition_per_folder")
    audio = tmp_path / "audio"
    for user, genres, name, size in (
        ("alice", "jazz", "a", 4), ("alice", "jazz", "b", 6),
        ("alice", "rock", "c", 2), ("bob", "jazz", "d", 8),
    ):  # fmt: skip
        folder = audio / user / genres
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.wav").write_bytes(b"x" * size)
    out = tmp_path / "out"
    done = cli(
        "run", "--entry-script", root / "total_file_size.py", "--input", audio,
        "--partition-keys", "user,genres", "--partition-format",
        "{user}/{genres}/{filename}.wav", "--output", out, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (out / "parallel_run_step.txt").read_text().splitlines() == [
        "a.wav,4,0.4,alice,jazz,10",
        "b.wav,6,0.6,alice,jazz,10",
        "c.wav,2,1.0,alice,rock,2",
        "d.wav,8,1.0,bob,jazz,8",
    ]


def test_v2_output_shared_by_append_row_to_and_the_script(sample) -> None:
    """1g_pipeline_with_parallel_nodes' tabular node: one mltable output without a path
    is both --job_output_path and append_row_to. As in Azure it is one folder: the rows
    and the files the script writes there end up side by side."""
    root = sample("parallel_nodes")
    done = cli("run", "--config", root / "tabular_batch.yml", "--no-progress", cwd=root)
    assert done.returncode == 0, done.stderr
    out = root / "aprs_output" / "aprs-tabular-batch-inference"
    rows = (out / "parallel_run_step.txt").read_text().splitlines()
    assert [r.split()[-1] for r in rows] == ["Setosa", "Virginica"] * 6
    written = sorted(out.glob("batch*.txt"))
    assert len(written) > 1  # mini_batch_size "100": bytes for a table
    assert sum(int(p.read_text()) for p in written) == 12
    assert not (out / "job_output_path").exists()


def test_v1_batch_scoring_tutorial_with_a_side_input(sample, tmp_path: Path) -> None:
    """MachineLearningNotebooks' batch-scoring tutorial: --model_name and --labels_dir
    (a side input) in the arguments, and `from azureml.core.dataset import Dataset`
    imported but never used, which must not stop the script."""
    root = sample("batch_scoring_tutorial")
    model = tmp_path / "inception.ckpt"
    model.write_text("2")
    images = tmp_path / "images"
    images.mkdir()
    for i in range(1, 26):
        (images / f"im{i:02d}.txt").write_text(str(i))
    out = tmp_path / "out"
    done = cli(
        "run", "--config", root / "parallel_run_config.yml", "--input", images,
        "--side-input", root / "labels", "--output", out, "--model",
        f"inception={model}", "--no-progress", "--", "--model_name", "inception",
        "--labels_dir", root / "labels", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    labels = ["tench", "goldfish", "shark"]
    rows = (out / "parallel_run_step.txt").read_text().splitlines()
    assert rows == [f"im{i:02d}.txt: {labels[(2 * i) % 3]}" for i in range(1, 26)]
    result = json.loads((out / "logs" / "job_result.json").read_text())
    assert result["mini_batches_total"] == 2  # mini_batch_size '20'


_NODES = ("batch_inference_with_file_data", "batch_inference_with_tabular_data")


def _run_nodes(
    root: Path, tmp_path: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    """Both parallel nodes of the 1g sample in turn (``aprs run --config pipeline.yml``),
    their data given with --set (3 files; the iris MLTable), plus ``options``."""
    files = numbered_files(tmp_path / "files", 3)
    file_job, table_job = _NODES
    return cli(
        "run", "--config", root / "pipeline.yml", "--no-progress", *options,
        "--set", f"jobs.{file_job}.inputs.job_data_path.path={files}",
        "--set", f"jobs.{table_job}.inputs.job_data_path.path=dataset/iris-mltable",
        cwd=root,
    )  # fmt: skip


def test_v2_pipeline_with_two_parallel_nodes_runs_each_in_turn(
    sample, tmp_path: Path
) -> None:
    """1g_pipeline_with_parallel_nodes as a pipeline file: two parallel jobs whose data
    come from a command job (given with --set jobs.<job>.inputs...), independent of each
    other, so without --job both run, in file order, each in a folder named by its key."""
    root = sample("parallel_nodes")
    file_job, table_job = _NODES
    done = _run_nodes(root, tmp_path)
    assert done.returncode == 0, done.stderr
    stderr = " ".join(done.stderr.split())
    assert stderr.index(f"job {file_job} (1 of 2)") < stderr.index(
        f"job {table_job} (2 of 2)"
    )
    copies = root / "aprs_output" / file_job / "job_output_path"
    assert sorted(p.name for p in copies.iterdir()) == ["f01.txt", "f02.txt", "f03.txt"]
    rows = (root / "aprs_output" / table_job / "parallel_run_step.txt").read_text()
    assert [r.split()[-1] for r in rows.splitlines()] == ["Setosa", "Virginica"] * 6
    assert done.stdout.count("status: completed") == 2


def test_v2_pipeline_with_two_parallel_nodes_runs_one_with_job(
    sample, tmp_path: Path
) -> None:
    """--job NAME runs only that parallel job; its --set keys are the job's own."""
    root = sample("parallel_nodes")
    out = tmp_path / "out"
    done = cli(
        "run", "--config", root / "pipeline.yml", "--job", _NODES[1], "--output", out,
        "--set", "inputs.job_data_path.path=dataset/iris-mltable", "--no-progress",
        cwd=root,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = (out / "parallel_run_step.txt").read_text().splitlines()
    assert len(rows) == 12
    assert not (root / "aprs_output").exists() and "(1 of" not in done.stderr


def test_v2_pipeline_stops_at_the_first_parallel_job_that_fails(
    sample, tmp_path: Path
) -> None:
    """Run in turn, a failed job stops the pipeline: exit 1, the later job does not start,
    and the error names it."""
    root = sample("parallel_nodes")
    file_job, table_job = _NODES
    # init() needs its --job_output_path flag
    done = _run_nodes(
        root, tmp_path, "--set", f"jobs.{file_job}.task.program_arguments="
    )
    assert done.returncode == 1, done.stderr
    assert (root / "aprs_output" / file_job / "logs").is_dir()
    assert "init() failed in every worker" in done.stdout
    stderr = " ".join(done.stderr.split())
    assert f"Not run after this failure: job {table_job}" in stderr
    assert not (root / "aprs_output" / table_job / "logs").exists()  # never started


def test_v2_pipeline_name_and_json_with_two_parallel_nodes(
    sample, tmp_path: Path
) -> None:
    """Run in turn with --name and --json: each job's step is named NAME-<key> (a valid
    step name), and stdout holds one JSON summary line per job."""
    root = sample("parallel_nodes")
    done = _run_nodes(root, tmp_path, "--name", "nodes", "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [s["items_succeeded"] for s in lines] == [3, 12]
    names = [
        json.loads((root / "aprs_output" / job / "logs" / "state.json").read_text())[
            "name"
        ]
        for job in _NODES
    ]
    assert names == [
        "nodes-batch-inference-with-file",
        "nodes-batch-inference-with-tabul",
    ]
