"""Entry script for the tabular resume test: rows whose text is "block" wait for a gate file.

TAB_MARKS (a folder): one file per run() call, named after the mini-batch index.
TAB_GATE (a path): while it does not exist, mini-batches holding a "block" row wait.
"""

import os
import pathlib
import time


def run(mini_batch, mini_batch_context):
    index = mini_batch_context.minibatch_index
    marks = os.environ.get("TAB_MARKS")
    if marks:
        pathlib.Path(marks, f"ran-{index}").touch()
    gate = os.environ.get("TAB_GATE")
    if gate and (mini_batch["text"] == "block").any():
        while not os.path.exists(gate):
            time.sleep(0.05)
    return mini_batch[["id", "x", "text"]].assign(batch=index)
