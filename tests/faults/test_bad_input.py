"""Bad input is a usage error: exit 2, one paragraph, and a previous output left untouched."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import (
    OUTPUT_NAME,
    Faults,
    cli_args,
    item_names,
    one_paragraph,
    run_cli,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes."""
    return {
        os.fspath(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def done(faults: Faults) -> dict[str, bytes]:
    """A completed job in faults.out; returns the snapshot of its output folder."""
    faults.items(item_names(6))
    proc = run_cli(faults, cli_args(faults))
    assert proc.returncode == 0, proc.stderr
    assert (faults.out / OUTPUT_NAME).exists()
    return _snapshot(faults.out)


def _replace(args: list[str], option: str, value: str) -> list[str]:
    args = list(args)
    args[args.index(option) + 1] = value
    return args


def _missing_input(faults: Faults) -> list[str]:
    return _replace(
        cli_args(faults), "--input", os.fspath(faults.root / "no-such-input")
    )


def _empty_input(faults: Faults) -> list[str]:
    empty = faults.root / "empty"
    empty.mkdir()
    return _replace(cli_args(faults), "--input", os.fspath(empty))


def _escaping_file_name(faults: Faults) -> list[str]:
    return cli_args(faults, "--append-row-file-name", "../escape.txt")


def _invalid_yaml(faults: Faults) -> list[str]:
    config = faults.root / "job.yaml"
    config.write_text("parallel_run_config:\n  mini_batch_size: [1, 2\n  bad: {\n")
    return cli_args(faults, "--config", os.fspath(config))


CASES: list = [
    pytest.param(_missing_input, "does not exist", id="missing-input-path"),
    pytest.param(_empty_input, "contains no files", id="empty-input-folder"),
    pytest.param(
        _escaping_file_name, "append_row_file_name", id="file-name-escapes-output"
    ),
    pytest.param(_invalid_yaml, "is not valid YAML", id="invalid-yaml-config"),
]


@pytest.mark.parametrize(("make_args", "fragment"), CASES)
def test_bad_input_exits_2_and_overwrites_nothing(
    faults: Faults,
    done: dict[str, bytes],
    make_args: Callable[[Faults], list[str]],
    fragment: str,
) -> None:
    """A usage error exits 2 in one paragraph and leaves the previous output as it was."""
    inits = len(faults.markers.inits())
    proc = run_cli(faults, make_args(faults))

    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("aprs: error: "), proc.stderr
    assert fragment in proc.stderr
    assert one_paragraph(proc.stderr), proc.stderr
    assert _snapshot(faults.out) == done, "a usage error changed the previous output"
    assert len(faults.markers.inits()) == inits, "a usage error started workers"
    assert not (faults.root / "escape.txt").exists()


def test_output_path_under_a_file_exits_2(faults: Faults) -> None:
    """An output directory that cannot be created (a file is in the way) exits 2."""
    faults.items(item_names(3))
    blocker = faults.root / "blocker"
    blocker.write_bytes(b"not a folder\n")
    proc = run_cli(faults, cli_args(faults, output=blocker / "out"))

    assert proc.returncode == 2, proc.stderr
    assert "cannot be created" in proc.stderr
    assert one_paragraph(proc.stderr), proc.stderr
    assert blocker.read_bytes() == b"not a folder\n"
    assert faults.markers.inits() == []


def test_unwritable_output_directory_exits_2(faults: Faults) -> None:
    """An output directory without write permission (chmod 0o500) exits 2, untouched."""
    faults.items(item_names(3))
    faults.out.mkdir()
    (faults.out / "keep.txt").write_text("keep me\n")
    faults.out.chmod(0o500)
    try:
        if os.access(faults.out, os.W_OK):
            pytest.skip("running as root: chmod 0o500 does not stop writes")
        proc = run_cli(faults, cli_args(faults))
    finally:
        faults.out.chmod(0o700)

    assert proc.returncode == 2, proc.stderr
    assert "not writable" in proc.stderr or "cannot be created" in proc.stderr
    assert one_paragraph(proc.stderr), proc.stderr
    assert _snapshot(faults.out) == {"keep.txt": b"keep me\n"}
