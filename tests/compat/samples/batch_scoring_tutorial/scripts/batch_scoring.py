"""Shaped like MachineLearningNotebooks' pipeline batch-scoring tutorial script: the model
by name through Model.get_model_path, a side input reached by --labels_dir, and the
tutorial's unused ``Dataset`` and ``Run`` imports. Each "image" holds a number; the
"model" is a multiplier; the label is picked by the product."""

import argparse
import os

from azureml.core import Run  # noqa: F401  (imported, unused, as in the tutorial)
from azureml.core.dataset import Dataset  # noqa: F401
from azureml.core.model import Model


def get_class_label_dict(labels_dir):
    with open(os.path.join(labels_dir, "labels.txt")) as f:
        return [line.rstrip() for line in f]


def init():
    global label_dict, factor
    parser = argparse.ArgumentParser(description="Start a model serving")
    parser.add_argument("--model_name", dest="model_name", required=True)
    parser.add_argument("--labels_dir", dest="labels_dir", required=True)
    args, _ = parser.parse_known_args()
    label_dict = get_class_label_dict(args.labels_dir)
    model_path = Model.get_model_path(args.model_name)
    with open(model_path) as f:
        factor = int(f.read())


def run(mini_batch):
    result_list = []
    for file_path in mini_batch:
        with open(file_path) as f:
            value = int(f.read())
        label = label_dict[(value * factor) % len(label_dict)]
        result_list.append(os.path.basename(file_path) + ": " + label)
    return result_list
