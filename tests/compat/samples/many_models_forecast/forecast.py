"""Many-models forecasting, after the accelerator's forecast.py.

Each input file names a store; its model is looked up by name in the azureml-models cache
layout (./azureml-models/<name>/<version>/), the way a downloaded registry model sits.
Progress goes to EntryScript().logger, as the accelerator's scripts do.
"""

import argparse
import json
import os

from azureml.core.model import Model
from azureml_user.parallel_run import EntryScript

parser = argparse.ArgumentParser()
parser.add_argument("--model_type", type=str, required=True)
args, _ = parser.parse_known_args()


def init():
    EntryScript().logger.info("forecasting with %s models", args.model_type)


def run(input_data):
    logger = EntryScript().logger
    rows = []
    for path in input_data:
        store = os.path.basename(path)[:-4]
        model_path = Model.get_model_path(f"{args.model_type}_{store}")
        with open(model_path) as f:
            forecast = json.load(f)["forecast"]
        with open(path) as f:
            horizon = int(f.read())
        logger.info("store %s: %d weeks from %s", store, horizon, model_path)
        rows.append(f"{store} {horizon} {forecast * horizon:.1f}")
    return rows
