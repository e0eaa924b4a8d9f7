"""Run the digits example end to end.

Usage (from any directory)::

    python examples/digits/run_example.py [--copies N] [--workers N] [--model svc]

Steps:

1. generate the data into ``examples/digits/data/`` with
   ``scripts/make_digits.py`` (skipped when data for the same ``--copies`` is
   already there);
2. run ``score.py`` over the images with ``python -m aprs run``, streaming the
   job's output to the terminal (exits with the job's exit code on failure);
3. read ``examples/digits/output/parallel_run_step.txt``, print the accuracy
   and check that there is exactly one row per image.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

EXAMPLE_DIR = Path(__file__).resolve().parent
REPO_ROOT = EXAMPLE_DIR.parents[1]
MAKE_DIGITS = REPO_ROOT / "scripts" / "make_digits.py"
DATA_DIR = EXAMPLE_DIR / "data"
IMAGES_DIR = DATA_DIR / "images"
TRAIN_DATA = DATA_DIR / "train.npz"
OUTPUT_DIR = EXAMPLE_DIR / "output"
RESULT_FILE = OUTPUT_DIR / "parallel_run_step.txt"


def _rel(path: Path) -> str:
    """``path`` relative to the repo root (the job's working directory)."""
    return path.relative_to(REPO_ROOT).as_posix()


def _load_make_digits() -> ModuleType:
    """Import ``scripts/make_digits.py`` as a module (``scripts`` is no package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_digits", MAKE_DIGITS)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {MAKE_DIGITS}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def count_images() -> int:
    return sum(1 for _ in IMAGES_DIR.glob("*.pgm"))


def ensure_data(copies: int) -> int:
    """Generate the data unless it is present for the same ``copies``.

    Returns the number of images.
    """
    make_digits = _load_make_digits()
    manifest = make_digits.read_manifest(DATA_DIR)
    if (
        manifest is not None
        and manifest.get("copies") == copies
        and TRAIN_DATA.is_file()
        and count_images() == manifest.get("n_images")
    ):
        print(f"reusing {manifest['n_images']} images in {_rel(IMAGES_DIR)}")
        return int(manifest["n_images"])
    subprocess.run(
        [sys.executable, str(MAKE_DIGITS), str(DATA_DIR), "--copies", str(copies)],
        check=True,
    )
    return count_images()


def run_job(workers: int | None, model: str) -> int:
    """Run the job through the aprs CLI; return its exit code (128+N on signal N)."""
    cmd = [
        sys.executable,
        "-m",
        "aprs",
        "run",
        "--entry-script",
        _rel(EXAMPLE_DIR / "score.py"),
        "--input",
        _rel(IMAGES_DIR),
        "--output",
        _rel(OUTPUT_DIR),
        "--mini-batch-size",
        "20",
        "--no-reuse",
    ]
    if workers is not None:
        cmd += ["--process-count-per-node", str(workers)]
    # Arguments after "--" go to score.py. The path is absolute because the
    # entry script may run with a different working directory.
    cmd += ["--", "--train-data", str(TRAIN_DATA), "--model", model]
    print("+", " ".join(cmd), flush=True)
    # No capture: the job's output streams straight to this terminal.
    code = subprocess.run(cmd, check=False, cwd=REPO_ROOT).returncode
    return 128 - code if code < 0 else code


def check_results(n_images: int, min_accuracy: float) -> bool:
    """Print the accuracy of the results file; return True if all checks pass."""
    if not RESULT_FILE.is_file():
        print(f"error: {_rel(RESULT_FILE)} was not written", file=sys.stderr)
        return False
    rows = RESULT_FILE.read_text().splitlines()
    correct = 0
    malformed = 0
    for row in rows:
        fields = row.split(",")
        if len(fields) != 3:
            malformed += 1
        elif fields[1] == fields[2]:
            correct += 1
    names = {row.split(",", 1)[0] for row in rows}
    expected = {path.name for path in IMAGES_DIR.glob("*.pgm")}

    accuracy = correct / len(rows) if rows else 0.0
    print(f"rows: {len(rows)} (images: {n_images})")
    print(f"accuracy: {accuracy:.3f} on {len(rows)} images")

    ok = True
    if len(rows) != n_images:
        print(f"error: {len(rows)} rows for {n_images} images", file=sys.stderr)
        ok = False
    if malformed:
        print(f"error: {malformed} malformed rows", file=sys.stderr)
        ok = False
    if names != expected:
        print(
            f"error: {len(expected - names)} images missing from the output, "
            f"{len(names - expected)} unexpected names",
            file=sys.stderr,
        )
        ok = False
    if accuracy < min_accuracy:
        print(f"error: accuracy below {min_accuracy}", file=sys.stderr)
        ok = False
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--copies", type=int, default=1, help="repeat the test images N times"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="--process-count-per-node"
    )
    parser.add_argument("--model", choices=("svc", "logreg"), default="svc")
    parser.add_argument(
        "--min-accuracy",
        type=float,
        default=0.9,
        help="fail when the accuracy is lower (default 0.9)",
    )
    args = parser.parse_args(argv)
    if args.copies < 1:
        parser.error("--copies must be >= 1")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be >= 1")

    n_images = ensure_data(args.copies)
    code = run_job(args.workers, args.model)
    if code != 0:
        print(f"error: job failed with exit code {code}", file=sys.stderr)
        return code
    return 0 if check_results(n_images, args.min_accuracy) else 1


if __name__ == "__main__":
    sys.exit(main())
