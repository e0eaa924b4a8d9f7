"""Entry script for file inputs: one "basename:content" element per file."""

import os


def run(mini_batch):
    out = []
    for path in mini_batch:
        with open(path, encoding="utf-8") as f:
            out.append(f"{os.path.basename(path)}:{f.read().strip()}")
    return out
