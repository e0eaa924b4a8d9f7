"""File partitions, after MachineLearningNotebooks' partition-per-folder sample: one
mini-batch per (user, genres) folder; run() gets the keys in mini_batch_context."""

import os


def init():
    print("Init")


def run(mini_batch, mini_batch_context):
    keys = mini_batch_context.partition_key_value
    sizes = [os.path.getsize(p) for p in mini_batch]
    total = sum(sizes)
    rows = []
    for path, size in zip(mini_batch, sizes, strict=True):
        fields = (os.path.basename(path), size, round(size / total, 3), keys["user"],
                  keys["genres"], total)  # fmt: skip
        rows.append(",".join(str(x) for x in fields))
    return rows
