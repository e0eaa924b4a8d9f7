"""Static checks as tests: `ruff check aprs tests` and mypy --strict on aprs/."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(300)


def have(module: str) -> bool:
    """Is ``module`` importable, so that ``python -m module`` runs?"""
    return importlib.util.find_spec(module) is not None


needs_ruff = pytest.mark.skipif(not have("ruff"), reason="ruff is not installed")
needs_mypy = pytest.mark.skipif(not have("mypy"), reason="mypy is not installed")


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@needs_ruff
def test_ruff_check_aprs_and_tests() -> None:
    """`ruff check aprs tests` reports nothing."""
    proc = run_tool("ruff", "check", "aprs", "tests")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_mypy
def test_mypy() -> None:
    """`mypy` (strict, files=["aprs"] from pyproject) reports no errors."""
    proc = run_tool("mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
