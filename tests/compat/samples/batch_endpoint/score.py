"""Batch-endpoint style scoring, after the azureml-examples batch deployment scripts.

The model folder comes from AZUREML_MODEL_DIR (set with --model-dir); run() returns one
"file,prediction" row per input file.
"""

import glob
import json
import os


def init():
    global model
    model_path = glob.glob(
        os.path.join(os.environ["AZUREML_MODEL_DIR"], "*", "model.json")
    )
    with open(model_path[0]) as f:
        model = json.load(f)


def run(mini_batch):
    results = []
    for file_path in mini_batch:
        with open(file_path) as f:
            values = [float(v) for v in f.read().split(",")]
        score = model["bias"] + sum(
            w * v for w, v in zip(model["weights"], values, strict=True)
        )
        results.append(f"{os.path.basename(file_path)},{int(score > 0)}")
    return results
