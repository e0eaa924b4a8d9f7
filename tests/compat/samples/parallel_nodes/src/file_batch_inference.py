"""A file batch-inference entry script shaped like 1g's file node: a pass-through that
copies each file's path into a file of the same name under --job_output_path (a folder
it creates) and returns the mini-batch, one element per file."""

import argparse
import os


def init():
    global output_folder
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--job_output_path", required=True)
    args, _ = parser.parse_known_args()
    output_folder = args.job_output_path
    os.makedirs(output_folder, exist_ok=True)


def run(mini_batch):
    for path in mini_batch:
        assert os.path.isfile(path), path
        target = os.path.join(output_folder, os.path.basename(path))
        with open(target, "w") as f:
            f.write(path)
    return mini_batch
