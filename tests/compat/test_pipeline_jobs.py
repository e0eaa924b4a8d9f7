"""Pipeline files with several parallel jobs, run in turn from the CLI: what is checked
before the first job starts, and how a stop part-way is reported. Real CLI processes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .conftest import cli, numbered_files

_TWO_JOBS = (
    "type: pipeline\njobs:\n"
    "  first:\n    type: parallel\n    inputs: {data: {path: data}}\n"
    "    input_data: ${{inputs.data}}\n    mini_batch_size: '1'\n"
    "    task: {code: ., entry_script: score.py}\n"
    "  second:\n    type: parallel\n    inputs: {data: {path: data}}\n"
    "    input_data: ${{inputs.data}}\n    mini_batch_size: '1'\n"
    "    task: {code: ., entry_script: score.py}\n"
)


def _pipeline(tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text(
        "import os\n"
        "def run(mini_batch):\n"
        "    return [os.path.basename(p) for p in mini_batch]\n"
    )
    numbered_files(tmp_path / "data", 2)
    (tmp_path / "pipeline.yml").write_text(_TWO_JOBS)


def _run(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``aprs run --config pipeline.yml --no-progress OPTIONS`` in ``tmp_path``."""
    return cli(
        "run", "--config", "pipeline.yml", "--no-progress", *options, cwd=tmp_path
    )


def test_a_later_jobs_missing_input_stops_the_command_before_the_first_job(
    tmp_path: Path,
) -> None:
    """Every job is checked before the first starts: a missing input (or entry script)
    of the second job is a usage error (exit 2) and the first job never runs."""
    _pipeline(tmp_path)
    done = _run(tmp_path, "--set", "jobs.second.inputs.data.path=missing")
    assert done.returncode == 2, done.stderr
    assert "missing' does not exist" in done.stderr
    assert "(1 of 2)" not in done.stderr
    assert not (tmp_path / "aprs_output" / "first" / "logs" / "journal.jsonl").exists()
    assert "Traceback" not in done.stderr

    done = _run(tmp_path, "--set", "jobs.second.task.entry_script=nope.py")
    assert done.returncode == 2, done.stderr
    assert "The entry script 'nope.py' was not found" in done.stderr
    assert "(1 of 2)" not in done.stderr


def test_a_later_jobs_bad_output_settings_stop_the_command_before_the_first_job(
    tmp_path: Path,
) -> None:
    """The second job's parallel_run_step.settings.json (its code folder's) is read
    before the first job starts: unreadable, it is a usage error (exit 2) naming the
    file, and the first job never runs."""
    _pipeline(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "score.py").write_text((tmp_path / "score.py").read_text())
    (other / "parallel_run_step.settings.json").write_text("{not json")
    done = _run(tmp_path, "--set", "jobs.second.task.code=other")
    assert done.returncode == 2, done.stderr
    message = " ".join(done.stderr.split())
    assert "parallel_run_step.settings.json cannot be read as JSON" in message
    assert "Fix the file or remove it." in message
    assert "(1 of 2)" not in done.stderr
    assert not (tmp_path / "aprs_output" / "first" / "logs").exists()


def test_a_set_naming_no_parallel_job_is_a_usage_error(tmp_path: Path) -> None:
    """--set jobs.<key>.KEY=VALUE with a misspelt key (or no KEY) changed nothing, without
    a word: the job ran with the file's value. It is a usage error naming the jobs."""
    _pipeline(tmp_path)
    for options, what in (
        (["--set", "jobs.frist.mini_batch_size=2"], "no parallel job"),
        (
            ["--job", "first", "--set", "jobs.frist.mini_batch_size=2"],
            "no parallel job",
        ),
        (["--set", "jobs.first=2"], "no key of the job"),
    ):
        done = cli(
            "run", "--config", "pipeline.yml", "--dry-run", *options, cwd=tmp_path
        )
        assert done.returncode == 2, (options, done.stderr)
        message = " ".join(done.stderr.split())
        assert f"--set '{options[-1]}' names {what} of pipeline.yml" in message
        assert "its parallel jobs are first, second" in message
        assert len(done.stderr.strip().splitlines()) == 1  # one paragraph


def test_a_job_stopped_by_ctrl_c_says_the_same_command_resumes(tmp_path: Path) -> None:
    """Ctrl-C during the first of two jobs: exit 130, the second never starts, and the
    message says the same command resumes, not "after this failure ... fix it"."""
    scripts = Path(__file__).resolve().parent.parent / "scripts"
    (tmp_path / "data").mkdir()
    for i, what in enumerate(["ok", "stop"] + ["ok"] * 20):
        (tmp_path / "data" / f"f{i:02d}.txt").write_text(what)
    (tmp_path / "pipeline.yml").write_text(
        _TWO_JOBS.replace("code: .", f"code: {scripts}").replace(
            "score.py", "experience.py"
        )
    )
    done = _run(tmp_path, "--process-count-per-node", "1")
    assert done.returncode == 130, done.stderr
    message = " ".join(done.stderr.split())
    assert "Not started: job second; the same command resumes this job" in message
    assert "fix it" not in message and "failure" not in message
    assert not (tmp_path / "aprs_output" / "second").exists()


def test_job_in_a_pipeline_without_parallel_jobs_says_there_are_none(
    tmp_path: Path,
) -> None:
    """--job in a pipeline file whose jobs are all command jobs: the error says it has
    no parallel job, not "Its parallel jobs are none; pass one of them to --job"."""
    (tmp_path / "pipeline.yml").write_text(
        "type: pipeline\njobs:\n  prep: {type: command, command: echo}\n"
    )
    for name in ("prep", "other"):
        done = cli("run", "--config", "pipeline.yml", "--job", name, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        message = " ".join(done.stderr.split())
        assert (
            "It has no parallel job (type: parallel), the only kind aprs runs"
            in message
        )
        assert "pass one of them" not in message
