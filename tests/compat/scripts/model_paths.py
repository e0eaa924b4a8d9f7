"""Reports where Model.get_model_path finds each model named in --names."""

import argparse
import json
import os

from azureml.core import Model


def init():
    global names
    parser = argparse.ArgumentParser()
    parser.add_argument("--names", default="")
    names = parser.parse_known_args()[0].names.split(",")


def run(mini_batch):
    found = {}
    for spec in names:
        name, _, version = spec.partition(":")
        try:
            found[spec] = Model.get_model_path(name, int(version) if version else None)
        except Exception as exc:
            found[spec] = f"{type(exc).__name__}: {exc}"
    found["cwd"] = os.getcwd()
    found["AZUREML_MODEL_DIR"] = os.environ.get("AZUREML_MODEL_DIR")
    return [json.dumps(found)] * len(mini_batch)
