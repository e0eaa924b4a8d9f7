"""The azureml compatibility layer inside real workers, driven from the CLI (issue 9)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import SCRIPTS, cli, metrics, numbered_files

pytestmark = pytest.mark.timeout(150)


def _facts(out: Path) -> list[dict[str, str]]:
    facts = []
    for path in sorted((out / "logs" / "user" / "stdout").glob("*.txt")):
        for line in path.read_text().splitlines():
            if line.startswith("FACTS "):
                facts.append(json.loads(line[6:]))
    return facts


def test_model_run_and_entry_script_work_offline(tmp_path: Path) -> None:
    data = numbered_files(tmp_path / "data", 6)
    model = tmp_path / "scaler-model"
    model.mkdir()
    (model / "factor.txt").write_text("3")
    out = tmp_path / "out"
    done = cli(
        "run", "--entry-script", SCRIPTS / "azure_surface.py", "--input", data,
        "--output", out, "--mini-batch-size", "2", "--process-count-per-node", "2",
        "--model", f"scaler={model}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = (out / "parallel_run_step.txt").read_text().splitlines()
    assert rows == [f"f{i:02d}.txt {3 * i}" for i in range(1, 7)]
    records = metrics(out)
    values = sorted(r["value"] for r in records if r["name"] == "value")
    assert values == [3, 6, 9, 12, 15, 18]
    kinds = {r["kind"] for r in records}
    assert {"log", "log_row", "log_list", "log_table", "tag", "upload_file"} <= kinds
    run_ids = {r["run_id"] for r in records if r["run"] == "step"}
    assert len(run_ids) == 1  # one step run, shared by every worker
    assert next(iter(run_ids)).startswith("OfflineRun_aprs-azure-surface_")
    parent = [r for r in records if r["run"] == "parent"]
    assert parent and all(
        r["run_id"] == f"{next(iter(run_ids))}_parent" for r in parent
    )
    assert {r["worker"] for r in records} <= {"process000", "process001"}
    uploads = list((out / "logs" / "user" / "run_files").iterdir())
    assert uploads and all(p.read_text().strip().isdigit() for p in uploads)
    facts = _facts(out)
    assert facts  # a worker stopped before its init() finished prints nothing
    for fact in facts:
        assert fact["run_id"] == next(iter(run_ids)) == fact["env_run_id"]
        assert fact["experiment"] == "aprs-azure-surface"
        assert fact["output_dir"] == fact["bi_output"] == str(out)
        assert fact["log_dir"].startswith(str(out / "logs"))
        assert "aprs/_compat/site/azureml/core" in fact["azureml_core_file"]
    assert {f["agent_name"] for f in facts} <= {"process000", "process001"}
    logs = (out / "logs" / "user" / "entry_script_log").glob("process*.log.txt")
    assert any("init in process" in p.read_text() for p in logs)


def test_a_real_azureml_installation_wins(tmp_path: Path) -> None:
    fake = tmp_path / "fake-site"
    (fake / "azureml" / "core").mkdir(parents=True)
    (fake / "azureml" / "__init__.py").write_text("")
    (fake / "azureml" / "core" / "__init__.py").write_text(
        "REAL = True\nclass Model:\n    @staticmethod\n"
        "    def get_model_path(name, version=None):\n        return 'real:' + name\n"
    )
    script = tmp_path / "which.py"
    script.write_text(
        "import os\nimport azureml.core\n"
        "def run(mini_batch):\n"
        '    return [f\'{azureml.core.Model.get_model_path("m")} '
        '{getattr(azureml.core, "REAL", False)} '
        '{os.environ.get("AZUREML_RUN_ID")}\' for _ in mini_batch]\n'
    )
    data = numbered_files(tmp_path / "data", 2)
    pythonpath = os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])
    done = cli(
        "run", "--entry-script", script, "--input", data, "--output", tmp_path / "out",
        "--process-count-per-node", "1", cwd=tmp_path, env={"PYTHONPATH": pythonpath},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = (tmp_path / "out" / "parallel_run_step.txt").read_text().splitlines()
    # the real package answered, and AZUREML_RUN_ID stays unset: a real Run would
    # otherwise try to reach Azure
    assert rows == ["real:m True None"] * 2


@pytest.mark.parametrize(
    ("what", "named"),
    [
        ("module", "The module azureml.data"),
        ("name", "azureml.core.Workspace"),
        ("dataset", "azureml.core.Dataset.get_by_name is not available"),
    ],
)
def test_other_azureml_imports_fail_naming_the_layer(
    tmp_path: Path, what: str, named: str
) -> None:
    data = numbered_files(tmp_path / "data", 1)
    done = cli(
        "run", "--entry-script", SCRIPTS / "unsupported_import.py", "--input", data,
        "--output", tmp_path / "out", "--process-count-per-node", "1",
        "--", "--what", what, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1
    text = " ".join(done.stderr.split())
    assert named in text
    assert "compatibility layer" in text and "Model.get_model_path" in text


def test_model_lookup_order_follows_azureml_core(tmp_path: Path) -> None:
    cached = tmp_path / "azureml-models" / "cached"
    for version in ("1", "2", "10"):
        (cached / version).mkdir(parents=True)
        (cached / version / f"model-v{version}.pkl").write_text(version)
    (tmp_path / "rooted.pkl").write_text("x")
    given = tmp_path / "given.pkl"
    given.write_text("g")
    model_dir = tmp_path / "model-dir"
    (model_dir / "in-dir").mkdir(parents=True)
    data = numbered_files(tmp_path / "data", 1)
    names = "given,cached,cached:2,rooted.pkl,in-dir,absent"
    done = cli(
        "run", "--entry-script", SCRIPTS / "model_paths.py", "--input", data,
        "--output", tmp_path / "out", "--process-count-per-node", "1",
        "--model", "given=given.pkl", "--model-dir", "model-dir",
        "--", "--names", names, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads((tmp_path / "out" / "parallel_run_step.txt").read_text())
    assert found["given"] == str(given)
    assert found["cached"] == "azureml-models/cached/10/model-v10.pkl"
    assert found["cached:2"] == "azureml-models/cached/2/model-v2.pkl"
    assert found["rooted.pkl"] == "rooted.pkl"
    assert found["in-dir"] == str(model_dir / "in-dir")
    assert found["AZUREML_MODEL_DIR"] == str(model_dir)
    assert found["absent"].startswith("ModelNotFoundException")
    assert "--model absent=PATH" in found["absent"]


def test_a_missing_model_is_a_usage_error_before_any_worker(tmp_path: Path) -> None:
    data = numbered_files(tmp_path / "data", 1)
    out = tmp_path / "out"
    done = cli(
        "run", "--entry-script", SCRIPTS / "model_paths.py", "--input", data,
        "--output", out, "--model", "mnist=models/absent", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Model path not found: mnist=" in done.stderr
    assert "--model NAME=PATH" in done.stderr
    assert not out.exists()  # nothing started
    bad = cli(
        "run", "--entry-script", SCRIPTS / "model_paths.py", "--input", data,
        "--model", "no-equals-sign", cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 2 and "NAME=PATH" in bad.stderr


@pytest.mark.parametrize(
    ("script", "code"), [("azure_surface.py", 0), ("raises_on_odd.py", 1)]
)
def test_a_closed_stdout_ends_quietly_with_the_jobs_exit_code(
    tmp_path: Path, script: str, code: int
) -> None:
    """``python -m aprs run ... | head -1``: no BrokenPipeError traceback, same exit code."""
    import subprocess
    import sys

    data = numbered_files(tmp_path / "data", 3)
    model = tmp_path / "m"
    model.mkdir()
    (model / "factor.txt").write_text("1")
    args = [
        sys.executable, "-m", "aprs", "run", "--entry-script", str(SCRIPTS / script),
        "--input", str(data), "--output", str(tmp_path / "out"), "--run-max-try", "1",
        "--process-count-per-node", "1", "--model", f"scaler={model}", "--no-progress",
    ]  # fmt: skip
    proc = subprocess.Popen(
        args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before aprs prints its summary
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == code
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr


def test_models_in_a_config_file_are_relative_to_it(tmp_path: Path) -> None:
    job = tmp_path / "job"
    (job / "models" / "scaler").mkdir(parents=True)
    (job / "models" / "scaler" / "factor.txt").write_text("2")
    (job / "job.yaml").write_text(
        f"entry_script: {SCRIPTS / 'azure_surface.py'}\n"
        "models:\n  scaler: models/scaler\nprocess_count_per_node: 1\n"
    )
    data = numbered_files(tmp_path / "data", 2)
    done = cli(
        "run", "--config", job / "job.yaml", "--input", data,
        "--output", tmp_path / "out", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = (tmp_path / "out" / "parallel_run_step.txt").read_text().splitlines()
    assert rows == ["f01.txt 2", "f02.txt 4"]


@pytest.mark.parametrize("action", ["append_row", "summary_only"])
def test_a_generator_run_fails_with_the_fix_in_the_message(
    tmp_path: Path, action: str
) -> None:
    """run() written with yield returns a generator: the tries fail, as in Azure (only a
    list, tuple or DataFrame counts), and the error in the job's logs says how to fix it
    (both result paths: formatted rows, and counts only)."""
    script = tmp_path / "yields.py"
    script.write_text(
        "import os\n"
        "def run(mini_batch):\n"
        "    for path in mini_batch:\n"
        "        yield os.path.basename(path)\n"
    )
    data = numbered_files(tmp_path / "data", 4)
    out = tmp_path / "out"
    done = cli(
        "run", "--entry-script", script, "--input", data, "--output", out,
        "--mini-batch-size", "2", "--run-max-try", "1", "--error-threshold", "0",
        "--output-action", action, "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    errors = " ".join((out / "logs" / "job_error.txt").read_text().split())
    assert "run() returned builtins.generator" in errors
    assert "run() uses yield; return a list (or a DataFrame) instead" in errors
    failures = [
        json.loads(line)
        for line in (out / "logs" / "failures.jsonl").read_text().splitlines()
    ]
    assert failures and all(
        "run() uses yield" in record["message"] for record in failures
    )


def test_the_dataset_stand_in_answers_attribute_probes() -> None:
    """Probes for private or protocol attributes (hasattr, asyncio.iscoroutinefunction,
    which reads _is_coroutine) get AttributeError, as from any class; only the public
    Dataset API raises NotImplementedError naming the layer."""
    import asyncio

    from aprs._compat._dataset import Dataset

    assert not hasattr(Dataset, "_is_coroutine")
    assert not asyncio.iscoroutinefunction(Dataset)
    with pytest.raises(NotImplementedError, match=r"azureml\.core\.Dataset\.Tabular "):
        Dataset.Tabular  # noqa: B018
