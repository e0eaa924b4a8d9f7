"""Many-models training, after the solution accelerator's custom-script train.py.

Arguments are parsed at import time (required ones, as there); each input file is one
store's sales series ("week,quantity" lines). run() fits a trivial model per file (the mean),
logs metrics on the step run, uploads and registers the model, and returns one JSON row per
file.
"""

import argparse
import json
import os

from azureml.core import Run

parser = argparse.ArgumentParser("split")
parser.add_argument("--target_column", type=str, required=True)
parser.add_argument("--timestamp_column", type=str, required=True)
parser.add_argument("--model_type", type=str, required=True)
parser.add_argument("--test_size", type=int, required=True)
args, _ = parser.parse_known_args()

current_run = None


def init():
    global current_run
    current_run = Run.get_context()


def _series(path):
    with open(path) as f:
        header = f.readline().strip().split(",")
        rows = [
            dict(zip(header, line.strip().split(","), strict=True))
            for line in f
            if line.strip()
        ]
    return [float(r[args.target_column]) for r in rows]


def run(input_data):
    os.makedirs("./outputs", exist_ok=True)
    results = []
    for csv_file_path in input_data:
        file_name = os.path.basename(csv_file_path)[:-4]
        model_name = f"{args.model_type}_{file_name}"
        values = _series(csv_file_path)
        train, test = values[: -args.test_size], values[-args.test_size :]
        forecast = sum(train) / len(train)
        mae = sum(abs(v - forecast) for v in test) / len(test)
        current_run.log(model_name + "_mae", mae)
        model_path = os.path.join("./outputs", model_name)
        with open(model_path, "w") as f:
            json.dump({"forecast": forecast}, f)
        current_run.upload_file(model_name, model_path)
        current_run.register_model(
            model_path=model_name, model_name=model_name,
            model_framework=args.model_type, tags={"file": file_name},
        )  # fmt: skip
        results.append(
            json.dumps(
                {
                    "file_name": file_name,
                    "model_name": model_name,
                    "mae": round(mae, 3),
                    "status": current_run.get_status(),
                }
            )
        )
    return results
