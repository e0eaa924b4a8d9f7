"""One measurement = one fresh interpreter running one peer function.

    driver ──► python -m perf._measure <module:function> <kwargs json> <result path>
                 │  (own session: a timeout kills the whole process group)
                 └─► result json: the function's dict + rss_mb (ru_maxrss), or "error"

Start-up, imports and peak RSS therefore belong to that job alone. Before the first one,
aprs (and perf) are byte-compiled, as ``pip install`` does for every installed package: an
editable checkout on a machine with PYTHONDONTWRITEBYTECODE=1 (these machines) otherwise
compiles aprs from source in every process, ~120 ms of start-up the peers' byte-compiled
libraries never pay (measured 2026-12-02: importing the job's 47 aprs modules, 200-220 ms
from source against 80-107 ms compiled).
"""

from __future__ import annotations

__all__ = ("ROOT", "measure")

import importlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent  # the repo: `perf` and `aprs` import


def compile_packages() -> None:
    """Byte-compile aprs and perf once, as an installed package is (see the docstring)."""
    global _compiled
    if not _compiled:
        import compileall

        for package in ("aprs", "perf"):
            compileall.compile_dir(ROOT / package, quiet=1)
        _compiled = True


_compiled = False


def measure(
    target: str, kwargs: dict[str, Any], env: dict[str, str], timeout: float
) -> dict[str, Any]:
    """Run `target(**kwargs)` in a fresh process; never raises for the peer's faults."""
    compile_packages()
    with tempfile.TemporaryDirectory(prefix="perf-m-") as tmp:
        result, log = Path(tmp) / "result.json", Path(tmp) / "stderr.txt"
        cmd = [
            sys.executable,
            "-m",
            "perf._measure",
            target,
            json.dumps(kwargs),
            str(result),
        ]
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
            )  # fmt: skip
            try:
                rc = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return {"error": "timeout"}
            finally:
                _kill_group(proc)  # also workers left behind by a finished job
        if result.exists():
            return json.loads(result.read_text())  # type: ignore[no-any-return]
        lines = log.read_text(errors="replace").strip().splitlines()
        return {"error": f"exit {rc}: {lines[-1] if lines else '(no stderr)'}"}


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _child(target: str, kwargs: str, out: str) -> None:
    module, _, name = target.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
        result = dict(fn(**json.loads(kwargs)))
        result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except Exception as exc:  # any fault becomes the row's error
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"}
    Path(out + ".tmp").write_text(json.dumps(result))
    os.replace(out + ".tmp", out)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip atexit hooks of the libraries; the driver reaps the group


if __name__ == "__main__":
    _child(*sys.argv[1:])
