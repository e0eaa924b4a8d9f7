"""Partitioned training, after azureml-examples' OJ sales parallel_train.py.

Each mini-batch is one partition (here: the files of one store). run() trains one "model"
per partition, writes it under --model_folder/<store>/ and returns an empty list: the
results live in the model folder, not in the returned rows (Azure counts nothing failed
while error_threshold is -1).
"""

import argparse
import json
import os


def init():
    global target_col, model_folder
    parser = argparse.ArgumentParser()
    parser.add_argument("--target_col", type=str)
    parser.add_argument("--model_folder", type=str)
    args, _ = parser.parse_known_args()
    target_col, model_folder = args.target_col, args.model_folder


def run(input_data, mini_batch_context):
    total = 0.0
    for path in input_data:
        with open(path) as f:
            header = f.readline().strip().split(",")
            column = header.index(target_col)
            total += sum(float(line.split(",")[column]) for line in f if line.strip())
    store = os.path.basename(os.path.dirname(input_data[0]))
    folder = os.path.join(model_folder, store)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "model.json"), "w") as f:
        json.dump(
            {
                "mean": total / len(input_data),
                "batch": mini_batch_context.minibatch_index,
            },
            f,
        )
    return []
