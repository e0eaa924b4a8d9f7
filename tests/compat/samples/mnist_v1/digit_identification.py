"""v1 file-dataset scoring, after MachineLearningNotebooks' parallel-run image inference.

The "model" is a JSON file mapping a pixel sum modulo 10 to a label; each input file is a
"image" holding pixel values. init() asks the registry for the model by name.
"""

import json
import os

from azureml.core import Model


def init():
    global weights
    model_dir = Model.get_model_path("mnist-prs")
    with open(os.path.join(model_dir, "weights.json")) as f:
        weights = json.load(f)


def run(mini_batch):
    print(f"run method start: {__file__}, run({len(mini_batch)} files)")
    results = []
    for image in mini_batch:
        with open(image) as f:
            pixels = [int(p) for p in f.read().split()]
        label = weights[str(sum(pixels) % 10)]
        results.append(f"{os.path.basename(image)}: {label}")
    return results
