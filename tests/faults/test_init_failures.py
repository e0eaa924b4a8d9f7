"""A script that cannot start: usage errors exit 2 in one paragraph; init() failures exit 1.

Broken scripts are written into the test's folder (a syntax error cannot live in the source
tree: it would break ruff).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import aprs

from .conftest import (
    OUTPUT_NAME,
    Faults,
    cli_args,
    item_names,
    job_result,
    one_paragraph,
    run_cli,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

BROKEN = {
    "import-error": (
        "import aprs_faults_no_such_module\n\ndef run(mini_batch):\n    return mini_batch\n",
        ["failed to import", "ModuleNotFoundError", "aprs_faults_no_such_module"],
    ),
    "syntax-error": (
        "def init():\n    pass\n\ndef run(mini_batch:\n    return mini_batch\n",
        ["syntax error at line 4"],
    ),
    "missing-run": (
        "def init():\n    pass\n\ndef runn(mini_batch):\n    return mini_batch\n",
        ["run("],
    ),
    "missing-script": (None, ["was not found"]),
}


def _error_paragraph(stderr: str) -> str:
    """The paragraph of stderr that starts with "aprs: error: "."""
    start = stderr.find("aprs: error: ")
    assert start >= 0, f"no 'aprs: error:' in stderr:\n{stderr}"
    return stderr[start:].strip().split("\n\n", 1)[0]


def _with_script(args: list[str], script: Path) -> list[str]:
    args = list(args)
    args[args.index("--entry-script") + 1] = os.fspath(script)
    return args


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_broken_script_exits_2_in_one_paragraph(faults: Faults, case: str) -> None:
    """A script that cannot be loaded exits 2 with one paragraph naming the problem."""
    source, fragments = BROKEN[case]
    script = faults.root / "broken_script.py"
    if source is not None:
        script.write_text(source)
    faults.items(item_names(4))
    proc = run_cli(faults, _with_script(cli_args(faults), script))

    assert proc.returncode == 2, proc.stderr
    first = _error_paragraph(proc.stderr)
    assert "\n" not in first, f"the error paragraph is one line:\n{proc.stderr}"
    assert "broken_script.py" in first
    for fragment in fragments:
        assert fragment in first, proc.stderr
    if case in ("syntax-error", "missing-script"):
        assert one_paragraph(proc.stderr), f"no traceback expected:\n{proc.stderr}"
    else:
        assert "Traceback (most recent call last)" not in first
    assert not (faults.out / OUTPUT_NAME).exists()


def test_usage_error_found_by_a_worker_is_printed_once(faults: Faults) -> None:
    """A script without run() exits 2 with exactly one line on stderr: 'aprs: error: ...'."""
    script = faults.root / "broken_script.py"
    script.write_text(BROKEN["missing-run"][0] or "")
    faults.items(item_names(4))
    proc = run_cli(faults, _with_script(cli_args(faults), script))

    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aprs: error: "), proc.stderr


def test_init_that_always_raises_fails_fast_with_its_traceback(faults: Faults) -> None:
    """init() raising in every worker: InitFailedError naming init()'s traceback, 6 tries."""
    faults.items(item_names(4))
    step = faults.step(environment_variables={"APRS_FAULTS_INIT": "raise-always"})
    with pytest.raises(aprs.InitFailedError) as info:
        step.run()

    assert len(faults.markers.inits()) == 6, "3 tries in each of 2 slots, then stop"
    assert faults.markers.calls() == []
    assert job_result(faults.out)["stop_reason"] == "init_failed"
    assert "ValueError: injected fault in init()" in str(info.value)


def test_init_failed_error_carries_the_init_traceback(faults: Faults) -> None:
    """InitFailedError's message holds the traceback of the failing init()."""
    faults.items(item_names(4))
    step = faults.step(environment_variables={"APRS_FAULTS_INIT": "raise-always"})
    with pytest.raises(aprs.InitFailedError) as info:
        step.run()

    message = str(info.value)
    assert "Traceback (most recent call last)" in message, message
    assert "faulty.py" in message and "in init" in message


def test_init_that_always_raises_exits_1_from_the_cli(faults: Faults) -> None:
    """`python -m aprs run` with an init() that always raises exits 1 naming the error."""
    faults.items(item_names(4))
    env = {**os.environ, **faults.env, "APRS_FAULTS_INIT": "raise-always"}
    proc = run_cli(faults, cli_args(faults), env=env)

    assert proc.returncode == 1, proc.stderr
    assert "ValueError: injected fault in init()" in proc.stderr
    assert len(faults.markers.inits()) == 6
