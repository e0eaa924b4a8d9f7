"""v2 tabular scoring, after azureml-examples' iris batch prediction (a rule-based "model"
instead of an MLflow one): run() gets a DataFrame and returns one with a new column."""

import argparse
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


def _variety(petal_length):
    if petal_length < thresholds["setosa"]:
        return "Setosa"
    return "Versicolor" if petal_length < thresholds["versicolor"] else "Virginica"


def run(input_data):
    num_rows = input_data.shape[0]
    result = input_data.drop(input_data.columns[4:], axis=1)
    result["variety"] = [_variety(v) for v in input_data["petal_length"]]
    assert len(result) == num_rows
    return result
