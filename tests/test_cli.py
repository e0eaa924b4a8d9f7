"""`python -m aprs` in a subprocess: exit codes, config files, overrides, help, --json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from conftest import Ran, make_files, read_job_result, script_path

import aprs

pytestmark = pytest.mark.timeout(120)

ALL_RUN_OPTIONS = [
    "--mini-batch-size",
    "--error-threshold",
    "--allowed-failed-count",
    "--allowed-failed-percent",
    "--output-action",
    "--append-row-file-name",
    "--process-count-per-node",
    "--node-count",
    "--run-invocation-timeout",
    "--run-max-try",
    "--logging-level",
    "--partition-keys",
    "--entry-script",
    "--source-directory",
    "--input",
    "--side-input",
    "--output",
    "--name",
    "--env",
    "--no-reuse",
    "--config",
    "--model",  # issue 9
    "--model-dir",
    "--set",
]


def aprs_cli(
    *args: str | os.PathLike[str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m aprs ARGS`` in ``cwd``; return the finished process (text output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APRS_TEST")}
    return subprocess.run(
        [sys.executable, "-m", "aprs", *map(os.fspath, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def rows(path: Path) -> list[str]:
    return path.read_text().splitlines()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """tmp_path/data with five small text files d0..d4."""
    return make_files(tmp_path / "data", {f"d{i}": f"text {i}" for i in range(5)})


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty folder to run the CLI in, so nothing depends on the test's cwd."""
    path = tmp_path / "elsewhere"
    path.mkdir()
    return path


# -- running jobs -----------------------------------------------------------------------------


def test_cli_output_matches_api(
    tmp_path: Path, data: Path, workdir: Path, job: Callable[..., Ran]
) -> None:
    """The CLI exits 0 and writes the same output bytes as the API for the same job."""
    proc = aprs_cli(
        "run",
        "--entry-script",
        script_path("echo_files"),
        "--input",
        data,
        "--output",
        tmp_path / "cli-out",
        "--mini-batch-size",
        "2",
        "--process-count-per-node",
        "2",
        "--no-reuse",
        cwd=workdir,
    )
    ok(proc)
    assert "status: completed" in proc.stdout
    api = job(
        "echo_files",
        [aprs.FileDataset.from_files(data)],
        mini_batch_size=2,
        output=tmp_path / "api-out",
    )
    cli_bytes = (tmp_path / "cli-out" / "parallel_run_step.txt").read_bytes()
    assert cli_bytes == api.output_bytes()
    assert rows(tmp_path / "cli-out" / "parallel_run_step.txt") == [
        f"d{i}:text {i}" for i in range(5)
    ]


def test_json_output_parses(tmp_path: Path, data: Path, workdir: Path) -> None:
    """--json prints the summary as one JSON document equal to job_result.json."""
    out = tmp_path / "out"
    proc = ok(
        aprs_cli(
            "run",
            "--entry-script",
            script_path("echo"),
            "--input",
            data,
            "--output",
            out,
            "--process-count-per-node",
            "2",
            "--json",
            cwd=workdir,
        )
    )
    summary = json.loads(proc.stdout)
    assert summary["status"] == "completed"
    assert (summary["items_total"], summary["items_succeeded"]) == (5, 5)
    assert summary == read_job_result(out)


def test_script_args_after_double_dash_and_env(
    tmp_path: Path, data: Path, workdir: Path
) -> None:
    """Arguments after `--` reach the script's argparse; --env sets worker variables."""
    out = tmp_path / "out"
    ok(
        aprs_cli(
            "run",
            "--entry-script",
            script_path("args_env"),
            "--input",
            data,
            "--output",
            out,
            "--process-count-per-node",
            "2",
            "--env",
            "APRS_TEST_VALUE=a=b",
            "--",
            "--greeting",
            "hi",
            cwd=workdir,
        )
    )
    assert rows(out / "parallel_run_step.txt") == [
        f"hi:a=b:{data / f'd{i}'}" for i in range(5)
    ]


def test_unimplemented_azure_flag_warns_once_and_reaches_the_script(
    tmp_path: Path, data: Path, workdir: Path
) -> None:
    """An Azure runtime flag aprs does not implement is passed on, with one warning line."""
    out = tmp_path / "out"
    proc = ok(
        aprs_cli(
            "run",
            "--entry-script",
            script_path("args_env"),
            "--input",
            data,
            "--output",
            out,
            "--env",
            "APRS_TEST_VALUE=v",
            "--",
            "--greeting",
            "hi",
            "--task_overhead_timeout",
            "1200",
            cwd=workdir,
        )
    )
    assert proc.stderr.count("does not implement the Azure runtime flag") == 1
    assert "--task_overhead_timeout" in proc.stderr
    assert rows(out / "parallel_run_step.txt")[0].startswith("hi:v:")


def test_failed_job_exits_1(tmp_path: Path, workdir: Path) -> None:
    """A job where every item fails exits 1 and still prints its summary."""
    make_files(tmp_path / "bad", {"bad1": "", "bad2": ""})
    proc = aprs_cli(
        "run",
        "--entry-script",
        script_path("raises"),
        "--input",
        tmp_path / "bad",
        "--output",
        tmp_path / "out",
        "--process-count-per-node",
        "2",
        "--run-max-try",
        "1",
        cwd=workdir,
    )
    assert proc.returncode == 1, proc.stderr
    assert "status: failed" in proc.stdout
    assert "Traceback" not in proc.stderr


# -- config files -------------------------------------------------------------------------------


def write_config(folder: Path, kind: str, *, nested: bool) -> Path:
    """A config file in ``folder`` (with its script and data next to it), relative paths."""
    (folder / "code").mkdir(parents=True)
    shutil.copy(script_path("batch_index"), folder / "code" / "batch_index.py")
    make_files(folder / "data", {f"x{i}": "" for i in range(5)})
    config = {
        "entry_script": "code/batch_index.py",
        "mini_batch_size": 2,
        "process_count_per_node": 2,
    }
    step = {
        "name": f"{kind}-job",
        "inputs": ["data"],
        "output": "out",
        "allow_reuse": False,
    }
    doc = {**step, "parallel_run_config": config} if nested else {**step, **config}
    path = folder / f"job.{kind}"
    if kind == "json":
        path.write_bytes(orjson.dumps(doc))
    elif kind == "yaml":
        import yaml

        path.write_text(yaml.safe_dump(doc))
    else:
        lines = [
            f"{k} = {json.dumps(v)}" for k, v in step.items() if k != "allow_reuse"
        ]
        lines.append("allow_reuse = false")
        if nested:
            lines.append("[parallel_run_config]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in config.items()]
        path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
@pytest.mark.parametrize("kind", ["yaml", "toml", "json"])
def test_config_file(tmp_path: Path, workdir: Path, kind: str, nested: bool) -> None:
    """YAML, TOML and JSON configs (flat or nested) run; relative paths are from the file."""
    path = write_config(tmp_path / "conf", kind, nested=nested)
    ok(aprs_cli("run", "--config", path, cwd=workdir))
    out = tmp_path / "conf" / "out"
    assert rows(out / "parallel_run_step.txt") == [
        "0:x0",
        "0:x1",
        "1:x2",
        "1:x3",
        "2:x4",
    ]
    assert not (workdir / "out").exists()


def test_cli_options_override_the_config_file(tmp_path: Path, workdir: Path) -> None:
    """--mini-batch-size and --output on the command line win over the file's keys."""
    path = write_config(tmp_path / "conf", "yaml", nested=True)
    out = tmp_path / "override-out"
    ok(
        aprs_cli(
            "run",
            "--config",
            path,
            "--mini-batch-size",
            "3",
            "--output",
            out,
            cwd=workdir,
        )
    )
    assert rows(out / "parallel_run_step.txt") == [
        "0:x0",
        "0:x1",
        "0:x2",
        "1:x3",
        "1:x4",
    ]
    assert not (tmp_path / "conf" / "out").exists()


def test_config_with_source_directory(tmp_path: Path, workdir: Path) -> None:
    """A relative source_directory is resolved from the file; entry_script is inside it."""
    conf = tmp_path / "conf"
    write_config(conf, "yaml", nested=False)
    path = conf / "src.yaml"
    path.write_text(
        "source_directory: code\nentry_script: batch_index.py\nmini_batch_size: 5\n"
        "process_count_per_node: 2\ninputs: data\noutput: out2\n"
    )
    ok(aprs_cli("run", "--config", path, cwd=workdir))
    assert rows(conf / "out2" / "parallel_run_step.txt") == [
        f"0:x{i}" for i in range(5)
    ]


# -- usage errors: exit 2, one paragraph, no traceback --------------------------------------


def usage_error(proc: subprocess.CompletedProcess[str]) -> str:
    """Assert exit 2 with a one-paragraph stderr and no traceback; return the message."""
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    text = proc.stderr.strip()
    assert text.startswith("aprs: error: ")
    assert "Traceback" not in proc.stderr
    assert "\n\n" not in text
    assert len(text.splitlines()) == 1
    return text


def test_unknown_config_key(tmp_path: Path, data: Path, workdir: Path) -> None:
    """An unknown key in the config file exits 2, naming the key and the close match."""
    path = tmp_path / "bad.yaml"
    path.write_text(f"entry_script: {script_path('echo')}\nmini_batch_sise: 3\n")
    text = usage_error(aprs_cli("run", "--config", path, "--input", data, cwd=workdir))
    assert "mini_batch_sise" in text
    assert "mini_batch_size" in text


def test_missing_input(tmp_path: Path, workdir: Path) -> None:
    """An input path that does not exist exits 2, naming the path."""
    text = usage_error(
        aprs_cli(
            "run",
            "--entry-script",
            script_path("echo"),
            "--input",
            tmp_path / "nothere",
            "--output",
            tmp_path / "out",
            cwd=workdir,
        )
    )
    assert "nothere" in text


def test_no_input(tmp_path: Path, workdir: Path) -> None:
    """No --input at all exits 2 and says how to pass one."""
    text = usage_error(
        aprs_cli("run", "--entry-script", script_path("echo"), cwd=workdir)
    )
    assert "--input" in text


def test_missing_entry_script(tmp_path: Path, data: Path, workdir: Path) -> None:
    """An entry script that does not exist exits 2, naming the script."""
    text = usage_error(
        aprs_cli(
            "run",
            "--entry-script",
            "nope.py",
            "--input",
            data,
            "--output",
            tmp_path / "out",
            cwd=workdir,
        )
    )
    assert "nope.py" in text


def test_bad_mini_batch_size(tmp_path: Path, data: Path, workdir: Path) -> None:
    """An invalid --mini-batch-size exits 2, naming the field and the value."""
    text = usage_error(
        aprs_cli(
            "run",
            "--entry-script",
            script_path("echo"),
            "--input",
            data,
            "--output",
            tmp_path / "out",
            "--mini-batch-size",
            "10XB",
            cwd=workdir,
        )
    )
    assert "mini_batch_size" in text
    assert "10XB" in text


def test_bad_env_pair(tmp_path: Path, data: Path, workdir: Path) -> None:
    """--env without '=' exits 2 and shows the expected KEY=VALUE form."""
    text = usage_error(
        aprs_cli(
            "run",
            "--entry-script",
            script_path("echo"),
            "--input",
            data,
            "--env",
            "NOVALUE",
            cwd=workdir,
        )
    )
    assert "KEY=VALUE" in text


# -- help -------------------------------------------------------------------------------------


def test_run_help_lists_every_option(workdir: Path) -> None:
    """`python -m aprs run --help` documents every option of the run command."""
    proc = ok(aprs_cli("run", "--help", cwd=workdir))
    missing = [opt for opt in ALL_RUN_OPTIONS if opt not in proc.stdout]
    assert missing == []


def test_top_level_help_lists_every_option(workdir: Path) -> None:
    """`python -m aprs --help` documents every option."""
    proc = ok(aprs_cli("--help", cwd=workdir))
    missing = [opt for opt in ALL_RUN_OPTIONS if opt not in proc.stdout]
    assert missing == []


def test_top_level_help_names_run(workdir: Path) -> None:
    """`python -m aprs --help` exits 0 and names the run command."""
    proc = ok(aprs_cli("--help", cwd=workdir))
    assert "run" in proc.stdout
    assert proc.stdout.startswith("usage: python -m aprs")


def test_version(workdir: Path) -> None:
    """--version prints the package version."""
    proc = ok(aprs_cli("--version", cwd=workdir))
    assert proc.stdout.strip() == f"aprs {aprs.__version__}"


def test_isolate_failures_from_the_config_file_and_the_flag(
    tmp_path: Path, workdir: Path
) -> None:
    """`isolate_failures: true` in --config, or --isolate-failures: only the bad file
    fails; without either its whole mini-batch fails (Azure's rule)."""
    make_files(tmp_path / "in", {"a": "", "b": "", "bad": "", "c": ""})
    script = script_path("raises")
    base = [
        "run", "--entry-script", script, "--input", tmp_path / "in",
        "--mini-batch-size", "4", "--run-max-try", "1", "--no-progress",
    ]  # fmt: skip
    config = tmp_path / "conf.yml"
    config.write_text("isolate_failures: true\n")
    out = tmp_path / "file"
    ok(aprs_cli(*base, "--config", config, "--output", out, cwd=workdir))
    assert [os.path.basename(r) for r in rows(out / "parallel_run_step.txt")] == [
        "a",
        "b",
        "c",
    ]
    out = tmp_path / "flag"
    proc = ok(aprs_cli(*base, "--isolate-failures", "--output", out, cwd=workdir))
    assert "items: 3 succeeded, 1 failed (1 isolated as poison items)" in proc.stdout
    out = tmp_path / "off"
    proc = aprs_cli(*base, "--output", out, cwd=workdir)
    assert proc.returncode == 1  # no item succeeded: append_row has nothing to append
    assert "items: 0 succeeded, 4 failed" in proc.stdout
