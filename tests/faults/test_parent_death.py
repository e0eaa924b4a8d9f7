"""The parent goes away: no worker outlives it; Ctrl-C and SIGTERM stop the job gracefully.

Handshake before acting: the script writes ``started-<item>`` (its pid inside) and then blocks
on a gate file that never appears; the test waits for those files, then signals the parent.
"""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from .conftest import (
    OUTPUT_NAME,
    Faults,
    assert_journal_consistent,
    assert_once_in_order,
    assert_pids_gone,
    cli_args,
    cli_env,
    final_rows,
    item_names,
    job_result,
    kill_tree,
    partial_rows,
    run_cli,
    start_cli,
    state,
    stop_cli,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@pytest.mark.parametrize("phase", ["in-run", "in-init"])
def test_sigkill_parent_takes_every_worker_with_it(faults: Faults, phase: str) -> None:
    """SIGKILL to `python -m aprs run` ends every worker it started within seconds."""
    faults.items(item_names(6, dict.fromkeys(range(6), "block")))
    env = cli_env(faults, APRS_FAULTS_GATE=os.fspath(faults.root / "gate"))
    if phase == "in-init":
        env["APRS_FAULTS_INIT"] = "hang-always"  # init() never returns
    proc = start_cli(faults, cli_args(faults), env=env)
    try:
        if phase == "in-run":
            wait_for(
                lambda: len(faults.markers.started()) >= 2, "both workers in run()"
            )
        else:
            wait_for(lambda: len(faults.markers.faults("init")) >= 2, "both in init()")
        pids = faults.markers.all_pids()
        assert len(pids) == 2
        proc.kill()
        proc.wait(timeout=30)
        assert_pids_gone(pids, timeout=5.0)
    finally:
        kill_tree(proc.pid)
        proc.communicate()


STOPS = [
    pytest.param(signal.SIGINT, False, 130, "interrupted", id="sigint-parent"),
    pytest.param(signal.SIGINT, True, 130, "interrupted", id="ctrl-c-process-group"),
    pytest.param(signal.SIGTERM, False, 143, "terminated", id="sigterm-parent"),
    pytest.param(signal.SIGTERM, True, 143, "terminated", id="sigterm-process-group"),
]


@pytest.mark.parametrize(("signum", "group", "code", "reason"), STOPS)
def test_signal_stops_gracefully_and_resumes(
    faults: Faults, signum: signal.Signals, group: bool, code: int, reason: str
) -> None:
    """SIGINT/SIGTERM: exit 130/143, no worker left, journal consistent, then resume."""
    names = item_names(8, {6: "block", 7: "block"})
    faults.items(names)
    args = cli_args(faults)
    env = cli_env(faults, APRS_FAULTS_GATE=os.fspath(faults.root / "gate"))
    proc = start_cli(faults, args, env=env, new_session=True)
    partial = faults.out / f"{OUTPUT_NAME}.partial"
    try:
        wait_for(
            lambda: names[6] in faults.markers.started(), "run() blocked on item 6"
        )
        wait_for(
            lambda: partial.exists() and len(partial_rows(faults.out)) == 6,
            "the six rows before it written",
        )
        pids = faults.markers.all_pids()
        if group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        _, stderr = stop_cli(proc)
    finally:
        kill_tree(proc.pid)

    assert proc.returncode == code, stderr
    assert_pids_gone(pids, timeout=5.0)
    assert "run the same command again to resume" in stderr
    assert not (faults.out / OUTPUT_NAME).exists()
    assert_once_in_order(partial_rows(faults.out), names[:6])
    last = assert_journal_consistent(faults.out)
    assert (last["next"], last["items_ok"]) == (6, 6)
    result = job_result(faults.out)
    assert (result["status"], result["stop_reason"]) == ("interrupted", reason)
    assert state(faults.out)["status"] == "interrupted"

    resumed = run_cli(faults, args)  # same command, no gate: the blocked items finish
    assert resumed.returncode == 0, resumed.stderr
    assert job_result(faults.out)["resumed_from_batch"] == 6
    assert_once_in_order(final_rows(faults.out), names)
    for name in names[:6]:
        assert len(faults.markers.calls(name)) == 1, (
            f"{name} ran again after the resume"
        )


def test_second_ctrl_c_stops_at_once(faults: Faults) -> None:
    """A second SIGINT while workers ignore SIGTERM kills them at once: exit 130, none left."""
    names = item_names(4, dict.fromkeys(range(4), "block"))
    faults.items(names)
    env = cli_env(
        faults,
        APRS_FAULTS_GATE=os.fspath(faults.root / "gate"),
        APRS_FAULTS_IGNORE_TERM="1",
    )
    proc = start_cli(faults, cli_args(faults), env=env, new_session=True)
    try:
        wait_for(lambda: len(faults.markers.started()) >= 2, "both workers in run()")
        pids = faults.markers.all_pids()
        proc.send_signal(signal.SIGINT)
        wait_for(
            lambda: faults.markers._files("sigterm-"),
            "the first SIGINT handled: workers were sent SIGTERM (and ignore it)",
        )
        proc.send_signal(signal.SIGINT)
        _, stderr = stop_cli(proc)
    finally:
        kill_tree(proc.pid)

    assert proc.returncode == 130, stderr
    assert "second signal: stopping at once" in stderr
    assert_pids_gone(pids, timeout=5.0)
    assert not (faults.out / OUTPUT_NAME).exists()


def test_fork_server_killed_mid_job_fails_clearly_and_resumes(faults: Faults) -> None:
    """SIGKILL to the zygote: its workers die with it, the job exits 1 naming the fork
    server and the spawn fallback, nothing is left running, and the same command resumes."""
    # every item blocks, so both workers are in run() whatever their pipeline depth
    names = item_names(6, dict.fromkeys(range(6), "block"))
    faults.items(names)
    args = cli_args(faults)
    env = cli_env(faults, APRS_FAULTS_GATE=os.fspath(faults.root / "gate"))
    proc = start_cli(faults, args, env=env)
    try:
        wait_for(
            lambda: len(faults.markers.started()) >= 2,
            "both workers blocked in run()",
        )
        pids = faults.markers.all_pids()
        zygotes = {psutil.Process(pid).ppid() for pid in pids}
        assert len(zygotes) == 1 and proc.pid not in zygotes, "workers are forked"
        zygote = zygotes.pop()
        os.kill(zygote, signal.SIGKILL)
        _, stderr = stop_cli(proc)
    finally:
        kill_tree(proc.pid)

    assert proc.returncode == 1, stderr
    assert "fork server" in stderr and "killed by SIGKILL" in stderr
    assert "--worker-start spawn" in stderr
    assert_pids_gone([*pids, zygote], timeout=5.0)
    resumed = run_cli(faults, args)  # no gate: the blocked items finish
    assert resumed.returncode == 0, resumed.stderr
    assert_once_in_order(final_rows(faults.out), names)
