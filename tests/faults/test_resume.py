"""Resume and reuse: a killed job finishes where it stopped, byte for byte; a done job is reused.

The killed run can never finish by itself: its last items block on a gate file that does not
exist (APRS_FAULTS_GATE, a process variable outside the job's fingerprint). The test kills the
parent once the journal shows N mini-batches durable, then runs the same command without the
gate, and compares the output with an uninterrupted run of the same job.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from .conftest import (
    FAULTY,
    OUTPUT_NAME,
    Faults,
    Markers,
    assert_once_in_order,
    assert_pids_gone,
    cli_args,
    cli_env,
    final_rows,
    item_names,
    job_result,
    journal_next,
    kill_tree,
    run_cli,
    start_cli,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

N_FILES = 300
GATED_FROM = (
    290  # items 290.. block in a gated run, so it cannot complete before the kill
)
# Kill points stay well below GATED_FROM: the journal is synced at most every 0.25 s and not
# again while the job idles at the gate, so its last entry may trail the rows by ~80 items.
NAMES = item_names(N_FILES, dict.fromkeys(range(GATED_FROM, N_FILES), "block"))
SLEEP = {
    "APRS_FAULTS_SLEEP": "0.006"
}  # ~1 s of run() per worker: kills land mid-flight


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """300 input files and the output of one uninterrupted run over them."""
    root = tmp_path_factory.mktemp("resume-reference")
    markers = root / "markers"
    markers.mkdir()
    ref = Faults(root, Markers(markers), {"APRS_FAULTS_DIR": os.fspath(markers)})
    ref.items(NAMES)
    proc = run_cli(ref, cli_args(ref), env=cli_env(ref, **SLEEP))
    assert proc.returncode == 0, proc.stderr
    data = (ref.out / OUTPUT_NAME).read_bytes()
    assert_once_in_order(data.decode().splitlines(), NAMES)
    return ref.inputs, data


def _kill_when_journaled(faults: Faults, args: list[str], at_least: int) -> int:
    """Run ``args`` gated; SIGKILL the parent once ``at_least`` batches are journaled."""
    env = cli_env(faults, APRS_FAULTS_GATE=os.fspath(faults.root / "gate"), **SLEEP)
    proc = start_cli(faults, args, env=env)
    try:
        wait_for(
            lambda: journal_next(faults.out) >= at_least,
            f"{at_least} mini-batches in the journal",
        )
        proc.kill()
        proc.wait(timeout=30)
    finally:
        kill_tree(proc.pid)
        proc.communicate()
    assert_pids_gone(faults.markers.all_pids(), timeout=5.0)
    done = journal_next(faults.out)
    assert at_least <= done < GATED_FROM + 1
    assert not (faults.out / OUTPUT_NAME).exists()
    return done


@pytest.mark.parametrize(
    "kill_points",
    [
        pytest.param([1], id="kill-after-1"),
        pytest.param([80], id="kill-after-80"),
        pytest.param([150], id="kill-after-150"),
        pytest.param([40, 150], id="kill-twice"),
    ],
)
def test_killed_job_resumes_to_identical_output(
    faults: Faults, reference: tuple[Path, bytes], kill_points: list[int]
) -> None:
    """SIGKILL after N journaled batches, rerun: the output equals an uninterrupted run's."""
    inputs, expected = reference
    args = cli_args(faults)
    args[args.index("--input") + 1] = os.fspath(inputs)
    done = 0
    for at_least in kill_points:
        done = _kill_when_journaled(faults, args, at_least)

    proc = run_cli(faults, args, env=cli_env(faults, **SLEEP))
    assert proc.returncode == 0, proc.stderr
    assert "resumed at mini-batch" in proc.stdout
    result = job_result(faults.out)
    assert result["resumed_from_batch"] == done > 0
    assert (result["items_succeeded"], result["items_failed"]) == (N_FILES, 0)
    data = (faults.out / OUTPUT_NAME).read_bytes()
    if data != expected:
        assert_once_in_order(data.decode().splitlines(), NAMES)  # names the difference
    assert data == expected
    calls = {name: len(faults.markers.calls(name)) for name in NAMES}
    first_run_only = [n for n in NAMES[: kill_points[0]] if calls[n] != 1]
    assert not first_run_only, f"journaled items ran again: {first_run_only}"
    assert max(calls.values()) <= len(kill_points) + 1


# -- reuse ------------------------------------------------------------------------------


def _json_run(faults: Faults, args: list[str], **env: str) -> dict:
    proc = run_cli(faults, [*args, "--json"], env=cli_env(faults, **env))
    assert proc.returncode == 0, proc.stderr
    data = orjson.loads(proc.stdout)
    assert isinstance(data, dict)
    return data


@pytest.fixture
def done_job(faults: Faults) -> tuple[list[str], list[str]]:
    """A completed job over 8 items with a private copy of the script; (names, args)."""
    names = item_names(8, {5: "block"})
    faults.items(names)
    script = faults.root / "entry.py"
    shutil.copy(FAULTY, script)
    args = cli_args(faults)
    args[args.index("--entry-script") + 1] = os.fspath(script)
    first = _json_run(faults, args)
    assert (first["status"], first["reused"]) == ("completed", False)
    assert_once_in_order(final_rows(faults.out), names)
    return names, args


def test_completed_job_is_reused(faults: Faults, done_job: tuple[list, list]) -> None:
    """The same command after a completed run reuses its output and starts no worker."""
    _names, args = done_job
    inits = len(faults.markers.inits())
    before = (faults.out / OUTPUT_NAME).read_bytes()

    again = _json_run(faults, args)

    assert again["reused"] is True
    assert again["status"] == "completed"
    assert len(faults.markers.inits()) == inits, "a reused run started workers"
    assert (faults.out / OUTPUT_NAME).read_bytes() == before


def _edit_input(faults: Faults) -> str:
    path = faults.inputs / "003-ok"
    path.write_text("edited content\n")
    return "003-ok edited content"


def _edit_script(faults: Faults) -> str:
    with open(faults.root / "entry.py", "a") as f:
        f.write("\n# edited: the fingerprint covers the script's text\n")
    return ""


@pytest.mark.parametrize(
    ("change", "flag"),
    [
        pytest.param(None, "--no-reuse", id="no-reuse"),
        pytest.param(_edit_input, "", id="changed-input-file"),
        pytest.param(_edit_script, "", id="changed-script"),
    ],
)
def test_changed_job_runs_again(
    faults: Faults, done_job: tuple[list, list], change, flag: str
) -> None:
    """--no-reuse, a changed input file or a changed script reruns the job."""
    names, args = done_job
    inits = len(faults.markers.inits())
    new_row = change(faults) if change else ""

    again = _json_run(faults, [*args, flag] if flag else args)

    assert again["reused"] is False and again["status"] == "completed"
    assert len(faults.markers.inits()) > inits, "the job did not run again"
    rows = final_rows(faults.out)
    if new_row:
        assert rows[3] == new_row
        rows[3] = f"{names[3]} content of {names[3]}"
    assert_once_in_order(rows, names)


def test_old_output_stays_until_the_changed_job_completes(
    faults: Faults, done_job: tuple[list, list]
) -> None:
    """While a changed job runs, the previous complete output stays in place, unchanged."""
    names, args = done_job
    final = faults.out / OUTPUT_NAME
    before = final.read_bytes()
    for started in faults.root.glob("markers/started-*"):
        started.unlink()
    new_row = _edit_input(faults)
    gate = faults.root / "gate"
    proc = start_cli(
        faults, args, env=cli_env(faults, APRS_FAULTS_GATE=os.fspath(gate))
    )
    try:
        wait_for(lambda: names[5] in faults.markers.started(), "the new run to block")
        assert final.read_bytes() == before, (
            "the old output changed while the new job ran"
        )
        gate.touch()
        proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the changed job did not finish after the gate opened")
    finally:
        kill_tree(proc.pid)
    assert proc.returncode == 0
    rows = final_rows(faults.out)
    assert rows[3] == new_row
    assert job_result(faults.out)["reused"] is False


# -- durability of the journal ----------------------------------------------------------


def test_finished_rows_are_journaled_while_the_job_waits(faults: Faults) -> None:
    """A row already written is in the journal within seconds, even if nothing follows it."""
    names = item_names(10, dict.fromkeys(range(10), "gated"))
    faults.items(names)
    gate = faults.root / "gate"
    proc = start_cli(
        faults, cli_args(faults), env=cli_env(faults, APRS_FAULTS_GATE=os.fspath(gate))
    )
    partial = faults.out / f"{OUTPUT_NAME}.partial"
    try:
        for k, name in enumerate(names[:-1]):  # the last one completes the job
            Path(f"{gate}.{name}").touch()  # let run() finish item k, and only it
            wait_for(
                lambda k=k: partial.exists() and partial.read_bytes().count(b"\n") > k,
                f"row {k} written",
            )
            wait_for(
                lambda k=k: journal_next(faults.out) > k,
                f"row {k} journaled (the job now waits on item {k + 1})",
                timeout=3.0,
            )
        Path(f"{gate}.{names[-1]}").touch()
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
        assert (faults.out / OUTPUT_NAME).read_bytes().count(b"\n") == len(names)
    finally:
        for name in names:
            Path(f"{gate}.{name}").touch()
        kill_tree(proc.pid)
        proc.communicate()
