"""Helpers for the Azure compatibility tests: the CLI in a subprocess, data files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

SCRIPTS = Path(__file__).parent / "scripts"
SAMPLES = Path(__file__).parent / "samples"


def cli(
    *args: str | os.PathLike[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m aprs ARGS`` in ``cwd``, output captured as text."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AZUREML")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "aprs", *map(os.fspath, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def numbered_files(folder: Path, count: int, start: int = 1) -> Path:
    """``folder/f01.txt`` ... holding 1, 2, ...; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        (folder / f"f{i:02d}.txt").write_text(f"{i}\n")
    return folder


def metrics(out: Path) -> list[dict[str, object]]:
    """The records of ``<out>/logs/metrics.jsonl``."""
    path = out / "logs" / "metrics.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
