"""A tabular batch-inference entry script shaped like 1g's: the model folder from --model,
a DataFrame in, a DataFrame out; it also leaves one file per mini-batch in the output it
is given with --job_output_path (as 1g's file-input script does)."""

import argparse
import json
import os

MODEL_NAME = "iris_model"


def init():
    global iris_model, output_path
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description="ParallelRunStep Agent"
    )
    parser.add_argument("--model", type=str, default=0)
    parser.add_argument("--job_output_path", type=str, default=0)
    args, _ = parser.parse_known_args()
    with open(os.path.join(args.model + "/" + MODEL_NAME, "model.json")) as f:
        iris_model = json.load(f)
    output_path = args.job_output_path


def run(input_data, mini_batch_context):
    cut = iris_model["petal_cut"]
    result = input_data.drop(input_data.columns[4:], axis=1)
    result["variety"] = [
        "Virginica" if v > cut else "Setosa" for v in input_data["petal.length"]
    ]
    name = f"batch{mini_batch_context.minibatch_index}.txt"
    with open(os.path.join(output_path, name), "w") as f:
        f.write(f"{len(result)}\n")
    return result
