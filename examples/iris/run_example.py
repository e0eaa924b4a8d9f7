"""Run the iris example end to end: make a table, score it with aprs, check the output.

Usage (from any directory)::

    python examples/iris/run_example.py [--rows N] [--files N] [--workers N]

1. writes ``examples/iris/data/part-XX.csv``: N rows of iris-like measurements with an
   ``id`` and the true species (kept when the same --rows/--files are already there);
2. runs ``python -m aprs run --input examples/iris/data --input-type tabular
   --mini-batch-size 256KB --append-row-file-name scores.csv``;
3. reads ``examples/iris/output/scores.csv``, checks one row per input row in input order
   and prints the accuracy.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

EXAMPLE_DIR = Path(__file__).resolve().parent
DATA_DIR = EXAMPLE_DIR / "data"
OUTPUT_DIR = EXAMPLE_DIR / "output"


def make_data(rows: int, files: int) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_iris

    marker = EXAMPLE_DIR / f".data-{rows}-{files}"  # outside data/: not an input
    if marker.exists():
        print(f"reusing {rows} rows in {DATA_DIR}")
        return
    DATA_DIR.mkdir(exist_ok=True)
    for old in [*DATA_DIR.iterdir(), *EXAMPLE_DIR.glob(".data-*")]:
        old.unlink()
    iris = load_iris()
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(iris.data), rows)
    noise = rng.normal(0, 0.05, (rows, 4))
    df = pd.DataFrame(
        (iris.data[pick] + noise).round(2),
        columns=["sepal_length", "sepal_width", "petal_length", "petal_width"],
    )
    df.insert(0, "id", np.arange(rows))
    df["true_species"] = iris.target_names[iris.target[pick]]
    step = -(-rows // files)
    for i in range(files):
        df.iloc[i * step : (i + 1) * step].to_csv(
            DATA_DIR / f"part-{i:02d}.csv", index=False
        )
    marker.touch()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--files", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    make_data(args.rows, args.files)
    command = [
        sys.executable, "-m", "aprs", "run",
        "--entry-script", str(EXAMPLE_DIR / "score.py"),
        "--input", str(DATA_DIR), "--input-type", "tabular",
        "--mini-batch-size", "256KB", "--append-row-file-name", "scores.csv",
        "--process-count-per-node", str(args.workers),
        "--output", str(OUTPUT_DIR), "--no-reuse",
    ]  # fmt: skip
    code = subprocess.run(command, check=False).returncode
    if code:
        return code
    import pandas as pd

    scores = pd.read_csv(OUTPUT_DIR / "scores.csv")
    truth = pd.concat(pd.read_csv(f) for f in sorted(DATA_DIR.glob("part-*.csv")))
    assert scores["id"].tolist() == list(range(args.rows)), (
        "rows missing or out of order"
    )
    accuracy = (scores["species"].to_numpy() == truth["true_species"].to_numpy()).mean()
    print(f"{len(scores)} rows scored in input order; accuracy {accuracy:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
