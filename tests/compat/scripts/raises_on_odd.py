"""Fails every mini-batch holding an odd number; echoes the file names of the others."""

import os


def run(mini_batch):
    names = [os.path.basename(p) for p in mini_batch]
    for path in mini_batch:
        with open(path) as f:
            if int(f.read()) % 2:
                raise ValueError(f"odd number in {path}")
    return names
