"""Entry script for partition tests: one output row per mini-batch, describing it.

File mini-batches: "<key values> <file names>"; DataFrames: "<key values> <rows> <ids>".
"""

import json
import os


def run(mini_batch, mini_batch_context):
    keys = json.dumps(mini_batch_context.partition_key_value, sort_keys=True)
    if isinstance(mini_batch, list):
        names = ",".join(os.path.basename(p) for p in mini_batch)
        return [f"{keys} {names}"] + [""] * (len(mini_batch) - 1)
    ids = ",".join(map(str, mini_batch["id"]))
    cols = ",".join(sorted(mini_batch.columns))
    return [f"{keys} {len(mini_batch)} {ids} {cols}"] + [""] * (len(mini_batch) - 1)
