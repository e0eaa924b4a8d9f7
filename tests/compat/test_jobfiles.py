"""Bad Azure job files end with exit 2 and one paragraph naming the problem (issue 9)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import cli, numbered_files

GOOD_TASK = """
task:
  type: run_function
  code: .
  entry_script: score.py
"""


@pytest.mark.parametrize(
    ("text", "sets", "fragments"),
    [
        pytest.param(
            "type: parallel\ninput_data: ${{inputs.data}}\ninputs:\n  data:\n"
            "    type: uri_folder\n    path: azureml:images:1\n" + GOOD_TASK,
            [],
            [
                "inputs.data.path is 'azureml:images:1', which is not on this machine",
                "--set inputs.data.path=PATH",
            ],
            id="remote-input",
        ),
        pytest.param(
            "type: parallel\ninputs: {}\n" + GOOD_TASK,
            [],
            ["input_data is missing"],
            id="no-input-data",
        ),
        pytest.param(
            "type: parallel\ninput_data: ${{inputs.images}}\ninputs:\n  data: {path: .}\n"
            "task:\n  type: command\n  program_arguments: --out ${{outputs.nowhere}}\n",
            [],
            [
                "(4 problems)",
                "inputs: has no 'images'",
                "task.type is 'command'",
                "task.entry_script is missing",
                "has no 'nowhere'",
            ],
            id="several-problems",
        ),
        pytest.param(
            "type: pipeline\njobs:\n  a: {type: command}\n",
            [],
            ["found 0 jobs of type parallel"],
            id="pipeline-without-parallel",
        ),
        pytest.param(
            "type: parallel\ninput_data: ${{inputs.data}}\ninputs:\n  data: {path: .}\n"
            + GOOD_TASK,
            ["no-equals"],
            ["--set 'no-equals' must look like KEY=VALUE"],
            id="bad-set",
        ),
        pytest.param(
            "type: parallel\n" + GOOD_TASK,
            ["mini_batch_size=[1"],
            ["--set 'mini_batch_size=[1' has a value that is not valid YAML", "Quote"],
            id="set-value-not-yaml",
        ),
        pytest.param(
            "type: parallel\ninput_data: ${{inputs.data}}\ninputs:\n  data: {path: .}\n"
            "mini_batch_size: ten\n" + GOOD_TASK,
            [],
            ["`mini_batch_size` must be a positive integer"],
            id="bad-value",
        ),
    ],
)
def test_bad_job_files_are_usage_errors(
    tmp_path: Path, text: str, sets: list[str], fragments: list[str]
) -> None:
    (tmp_path / "score.py").write_text("def run(mini_batch):\n    return mini_batch\n")
    (tmp_path / "job.yml").write_text(text)
    args = ["run", "--config", "job.yml"]
    for item in sets:
        args += ["--set", item]
    done = cli(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    message = " ".join(done.stderr.split())
    for fragment in fragments:
        assert fragment in message
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1  # one paragraph


def test_set_needs_a_config_file(tmp_path: Path) -> None:
    done = cli("run", "--entry-script", "x.py", "--set", "a=1", cwd=tmp_path)
    assert done.returncode == 2 and "pass --config FILE" in done.stderr


def test_set_changes_plain_keys_and_outputs(tmp_path: Path) -> None:
    """--set works on any key: here the batch size and the output file's location."""
    (tmp_path / "data").mkdir()
    for i in range(4):
        (tmp_path / "data" / f"{i}.txt").write_text(str(i))
    (tmp_path / "score.py").write_text(
        "import os\ndef run(mini_batch):\n"
        "    return [f'{len(mini_batch)} {os.path.basename(p)}' for p in mini_batch]\n"
    )
    (tmp_path / "job.yml").write_text(
        "type: parallel\ninput_data: ${{inputs.data}}\ninputs:\n  data: {path: data}\n"
        "outputs:\n  rows: {type: uri_file, path: out/rows.txt}\nmini_batch_size: '1'\n"
        + GOOD_TASK
        + "  append_row_to: ${{outputs.rows}}\n"
    )
    done = cli(
        "run", "--config", "job.yml", "--set", "mini_batch_size=2",
        "--set", "outputs.rows.path=elsewhere/result.txt", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = (tmp_path / "elsewhere" / "result.txt").read_text().splitlines()
    assert rows == ["2 0.txt", "2 1.txt", "2 2.txt", "2 3.txt"]


def test_a_parallel_component_file_with_inputs_from_the_command_line(
    tmp_path: Path,
) -> None:
    """The component form: typed inputs without paths, defaults, an optional input left
    unset ($[[...]] drops out), is_deterministic: false (no reuse)."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "score.py").write_text(
        "import argparse, os\n"
        "def init():\n"
        "    global args\n"
        "    p = argparse.ArgumentParser()\n"
        "    p.add_argument('--label'); p.add_argument('--extra', default='none')\n"
        "    args, _ = p.parse_known_args()\n"
        "def run(mini_batch):\n"
        "    return [f'{os.path.basename(f)} {args.label} {args.extra}' for f in mini_batch]\n"
    )
    (tmp_path / "component.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/parallelComponent.schema.json\n"
        "type: parallel\nname: score_component\nversion: 1\nis_deterministic: false\n"
        "inputs:\n"
        "  data: {type: uri_folder}\n"
        "  label: {type: string, default: seen}\n"
        "  extra: {type: string, optional: true}\n"
        "outputs:\n  scored: {type: uri_folder}\n"
        "input_data: ${{inputs.data}}\nmini_batch_size: '2'\n"
        "task:\n  type: run_function\n  code: ./src\n  entry_script: score.py\n"
        "  environment: azureml:sklearn-env@latest\n"
        "  program_arguments: --label ${{inputs.label}} $[[--extra ${{inputs.extra}}]]\n"
        "  append_row_to: ${{outputs.scored}}\n"
    )
    (tmp_path / "in").mkdir()
    for name in ("a", "b", "c"):
        (tmp_path / "in" / f"{name}.txt").write_text(name)
    missing = cli("run", "--config", "component.yml", cwd=tmp_path)
    assert missing.returncode == 2
    assert "inputs.data has no path or value" in " ".join(missing.stderr.split())
    done = cli(
        "run", "--config", "component.yml", "--set", "inputs.data.path=in",
        "--output", "out", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = (tmp_path / "out" / "parallel_run_step.txt").read_text().splitlines()
    assert rows == ["a.txt seen none", "b.txt seen none", "c.txt seen none"]
    again = cli(
        "run", "--config", "component.yml", "--set", "inputs.data.path=in",
        "--output", "out", cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0 and "reused" not in again.stdout  # run afresh


def test_settings_bound_to_pipeline_inputs(tmp_path: Path) -> None:
    """mini_batch_size, retry_settings and environment variables may be bindings."""
    (tmp_path / "score.py").write_text(
        "import os\ndef run(mini_batch):\n"
        "    tag = os.environ['LABEL']\n"
        "    return [f'{len(mini_batch)} {tag} {os.path.basename(p)}' for p in mini_batch]\n"
    )
    _three_files(tmp_path)
    pipeline = (
        "type: pipeline\ninputs:\n  batch: 2\n  tries: {type: integer, default: 1}\n"
        "jobs:\n  score:\n    type: parallel\n"
        "    inputs:\n      data: {path: data}\n      label: tagged\n"
        "    input_data: ${{inputs.data}}\n"
        "    mini_batch_size: ${{parent.inputs.batch}}\n"
        "    retry_settings: {max_retries: '${{parent.inputs.tries}}', timeout: 30}\n"
        "    environment_variables: {LABEL: '${{inputs.label}}'}\n"
        "    error_threshold: ${{parent.jobs.prep.outputs.limit}}\n"
        "    outputs: {rows: {type: uri_folder}}\n"
        "    task: {code: ., entry_script: score.py, append_row_to: '${{outputs.rows}}'}\n"
    )
    (tmp_path / "pipeline.yml").write_text(pipeline)
    unresolved = cli("run", "--config", "pipeline.yml", "--output", "out", cwd=tmp_path)
    assert unresolved.returncode == 2
    assert "--set error_threshold=VALUE" in " ".join(unresolved.stderr.split())
    done = cli(
        "run", "--config", "pipeline.yml", "--output", "out",
        "--set", "error_threshold=-1", "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = (tmp_path / "out" / "parallel_run_step.txt").read_text().splitlines()
    assert rows == ["2 tagged 0.txt", "2 tagged 1.txt", "1 tagged 2.txt"]


def test_save_to_yaml_and_load_yaml_round_trip(tmp_path: Path) -> None:
    """ParallelRunConfig.save_to_yaml writes Azure's layout; load_yaml reads it back."""
    import aprs

    config = aprs.ParallelRunConfig(
        entry_script="score.py", source_directory="src", mini_batch_size="1MB",
        error_threshold=5, allowed_failed_percent=20.0, output_action="append_row",
        append_row_file_name="out.txt", process_count_per_node=3,
        run_invocation_timeout=90, run_max_try=2, logging_level="DEBUG",
        environment_variables={"A": "1"}, models={"m": "models/m"},
    )  # fmt: skip
    path = tmp_path / "prs.yml"
    config.save_to_yaml(path)
    text = path.read_text()
    assert text.startswith("parallel_run_config:\n  mini_batch_size: 1MB\n")
    assert "compute_target_name: local" in text
    assert aprs.ParallelRunConfig.load_yaml(None, path) == config
    assert aprs.ParallelRunConfig.load_yaml(str(path)) == config


def test_load_yaml_ignores_cloud_keys_with_a_note(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import aprs

    path = tmp_path / "azure.yml"
    path.write_text(
        "parallel_run_config:\n  entry_script: score.py\n  mini_batch_size: '5'\n"
        "  compute_target_name: cpu-cluster\n  node_count: 4\n"
        "  environment: {name: env, python: {userManagedDependencies: false}}\n"
    )
    config = aprs.ParallelRunConfig.load_yaml(object(), path)  # a workspace is ignored
    assert config.mini_batch_spec().value == 5  # "5" as Azure's load_yaml keeps it
    assert (config.node_count, config.environment) == (1, None)
    notes = " ".join(r.getMessage() for r in caplog.records)
    assert "ignored compute_target_name, environment, node_count=4" in notes
    path.write_text("parallel_run_config: [1, 2]\n")
    with pytest.raises(aprs.ConfigError, match="must hold a parallel_run_config"):
        aprs.ParallelRunConfig.load_yaml(path)


def test_isolate_failures_in_v1_yaml_and_v2_job_files(tmp_path: Path) -> None:
    """The aprs key round-trips through save_to_yaml (written only when on) and is read
    from a v2 parallel job file."""
    import aprs
    from aprs._jobfile import translate_job_file

    off = aprs.ParallelRunConfig(entry_script="score.py")
    off.save_to_yaml(tmp_path / "off.yml")
    assert "isolate_failures" not in (tmp_path / "off.yml").read_text()
    on = aprs.ParallelRunConfig(entry_script="score.py", isolate_failures=True)
    on.save_to_yaml(tmp_path / "on.yml")
    assert "isolate_failures: true" in (tmp_path / "on.yml").read_text()
    assert aprs.ParallelRunConfig.load_yaml(tmp_path / "on.yml") == on

    job = {
        "type": "parallel",
        "input_data": "${{inputs.data}}",
        "inputs": {"data": {"path": "."}},
        "isolate_failures": True,
        "task": {"type": "run_function", "code": ".", "entry_script": "score.py"},
    }
    flat, notes = translate_job_file(
        job, str(tmp_path), "job.yml", output=None, default_name=lambda s: "job"
    )
    assert flat["isolate_failures"] is True
    assert not any("isolate_failures" in n for n in notes)


def _three_files(tmp_path: Path) -> None:
    """``data/0.txt``, ``1.txt``, ``2.txt`` under ``tmp_path``, holding 0, 1 and 2."""
    (tmp_path / "data").mkdir()
    for i in range(3):
        (tmp_path / "data" / f"{i}.txt").write_text(str(i))


def _run_to_out(tmp_path: Path, config: str) -> subprocess.CompletedProcess[str]:
    """``aprs run --config CONFIG --output out`` with one worker, in ``tmp_path``."""
    return cli(
        "run", "--config", config, "--output", "out", "--process-count-per-node", "1",
        "--no-progress", cwd=tmp_path,
    )  # fmt: skip


def test_uri_file_outputs_without_a_path_are_files_the_script_can_write(
    tmp_path: Path,
) -> None:
    """${{outputs.x}} of a uri_file output without a path is a file path, as Azure mounts
    it: <output>/<x>/<x>, its folder there, the file not. Also when the job's output is
    bound to a pipeline output that carries the type (${{parent.outputs.y}})."""
    (tmp_path / "score.py").write_text(
        "import argparse, os\n"
        "def init():\n"
        "    global args\n"
        "    p = argparse.ArgumentParser()\n"
        "    p.add_argument('--report'); p.add_argument('--totals')\n"
        "    args, _ = p.parse_known_args()\n"
        "    for path in (args.report, args.totals):\n"
        "        assert os.path.isdir(os.path.dirname(path)), path\n"
        "        assert not os.path.exists(path), path\n"
        "def run(mini_batch):\n"
        "    names = [os.path.basename(p) for p in mini_batch]\n"
        "    with open(args.report, 'a') as f:\n"
        "        f.write(''.join(n + '\\n' for n in names))\n"
        "    with open(args.totals, 'a') as f:\n"
        "        f.write(f'{len(names)}\\n')\n"
        "    return names\n"
    )
    _three_files(tmp_path)
    (tmp_path / "pipeline.yml").write_text(
        "type: pipeline\noutputs:\n  pipeline_totals: {type: uri_file, mode: rw_mount}\n"
        "jobs:\n  score:\n    type: parallel\n"
        "    inputs: {data: {type: uri_folder, path: data}}\n"
        "    outputs:\n"
        "      report: {type: uri_file, mode: rw_mount}\n"
        "      totals: ${{parent.outputs.pipeline_totals}}\n"
        "    input_data: ${{inputs.data}}\n    mini_batch_size: '1'\n"
        "    task:\n      code: .\n      entry_script: score.py\n"
        "      program_arguments: >-\n"
        "        --report ${{outputs.report}} --totals ${{outputs.totals}}\n"
    )
    done = _run_to_out(tmp_path, "pipeline.yml")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    report = (out / "report" / "report").read_text().splitlines()
    assert report == ["0.txt", "1.txt", "2.txt"]
    assert (out / "totals" / "totals").read_text().splitlines() == ["1", "1", "1"]


def test_a_uri_file_output_named_by_append_row_to_keeps_the_scripts_writes(
    tmp_path: Path,
) -> None:
    """A uri_file output without a path that append_row_to binds and the script is also
    given: the rows go to the output folder's rows file, written whole at the end, and
    the script's path is its own file (<output>/<x>/<x>), so nothing the script writes
    there is overwritten by the rows."""
    (tmp_path / "score.py").write_text(
        "import argparse\n"
        "def init():\n"
        "    p = argparse.ArgumentParser(); p.add_argument('--result')\n"
        "    args, _ = p.parse_known_args()\n"
        "    with open(args.result, 'a') as f:\n"
        "        f.write('scored by score.py\\n')\n"
        "def run(mini_batch):\n"
        "    return [p.rsplit('/', 1)[1] for p in mini_batch]\n"
    )
    _three_files(tmp_path)
    (tmp_path / "job.yml").write_text(
        "type: parallel\ninputs: {data: {type: uri_folder, path: data}}\n"
        "outputs: {result: {type: uri_file}}\n"
        "input_data: ${{inputs.data}}\nmini_batch_size: '1'\n"
        "task:\n  code: .\n  entry_script: score.py\n"
        "  program_arguments: --result ${{outputs.result}}\n"
        "  append_row_to: ${{outputs.result}}\n"
    )
    done = _run_to_out(tmp_path, "job.yml")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    rows = (out / "parallel_run_step.txt").read_text().splitlines()
    assert rows == ["0.txt", "1.txt", "2.txt"]
    assert (out / "result" / "result").read_text() == "scored by score.py\n"


_TWO_JOBS = (
    "type: pipeline\njobs:\n"
    "  first:\n    type: parallel\n    inputs: {data: {path: data}}\n"
    "    outputs: {scored: {type: uri_folder}}\n"
    "    input_data: ${{inputs.data}}\n    task: {code: ., entry_script: score.py}\n"
    "  second:\n    type: parallel\n"
    "    inputs: {data: {path: '${{parent.jobs.first.outputs.scored}}'}}\n"
    "    input_data: ${{inputs.data}}\n    task: {code: ., entry_script: score.py}\n"
)


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        pytest.param(
            [],
            [
                "has several parallel jobs (first, second)",
                "job second's input data is the output scored of job first",
                "run one at a time with --job NAME, first --job first",
                "then --job second --set inputs.data.path=<the scored folder of first>",
            ],
            id="outputs-feed-inputs",
        ),
        pytest.param(
            ["--job", "third"],
            ["has no job 'third' in jobs:. Its parallel jobs are first, second"],
            id="unknown-job",
        ),
        pytest.param(
            [
                "--set",
                "jobs.second.inputs.data.path=data",
                "--set",
                "mini_batch_size=2",
            ],
            [
                "--set 'mini_batch_size=2' does not say which job it changes",
                "Write --set jobs.first.mini_batch_size=2 (a job's key), or pass --job",
            ],
            id="set-without-a-job",
        ),
    ],
)
def test_pipeline_files_with_several_parallel_jobs_usage_errors(
    tmp_path: Path, options: list[str], fragments: list[str]
) -> None:
    """Several parallel jobs: --job picks one; without it they run in turn only when no
    job reads another's output, else one paragraph lists them and names --job."""
    (tmp_path / "score.py").write_text("def run(mini_batch):\n    return mini_batch\n")
    numbered_files(tmp_path / "data", 2)
    (tmp_path / "pipeline.yml").write_text(_TWO_JOBS)
    done = cli("run", "--config", "pipeline.yml", *options, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    message = " ".join(done.stderr.split())
    for fragment in fragments:
        assert fragment in message
    assert len(done.stderr.strip().splitlines()) == 1  # one paragraph, no traceback


def test_job_needs_a_pipeline_file(tmp_path: Path) -> None:
    (tmp_path / "job.yml").write_text(
        "type: parallel\ninput_data: ${{inputs.data}}\ninputs:\n  data: {path: .}\n"
        + GOOD_TASK
    )
    done = cli("run", "--config", "job.yml", "--job", "score", cwd=tmp_path)
    assert done.returncode == 2
    assert "--job score picks one parallel job of a pipeline file" in done.stderr
    done = cli("run", "--entry-script", "x.py", "--job", "score", cwd=tmp_path)
    assert done.returncode == 2 and "pass --config FILE" in done.stderr
