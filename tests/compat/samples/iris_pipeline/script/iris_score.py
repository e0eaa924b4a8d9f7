"""Iris scoring, after the v2 iris batch prediction sample (CSV files instead of MLTable).

The "model" is a JSON file of petal-length thresholds given with --model.
"""

import argparse
import csv
import json
import os


def init():
    global thresholds
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description="ParallelRunStep Agent"
    )
    parser.add_argument("--model", type=str, default=0)
    args, _ = parser.parse_known_args()
    with open(os.path.join(args.model, "thresholds.json")) as f:
        thresholds = json.load(f)


def _variety(petal):
    if petal < thresholds["setosa"]:
        return "Setosa"
    return "Versicolor" if petal < thresholds["versicolor"] else "Virginica"


def run(mini_batch):
    rows = []
    for path in mini_batch:
        with open(path, newline="") as f:
            varieties = [_variety(float(r["petal_length"])) for r in csv.DictReader(f)]
        rows.append(f"{os.path.basename(path)} {','.join(varieties)}")
    return rows
