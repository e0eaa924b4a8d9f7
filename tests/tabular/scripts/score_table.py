"""Entry script for tabular tests: returns id, a derived column and the context, per row.

Rows whose text is "crash" make the worker exit (a crash triggered by content); a row whose
text is "raise" makes run() raise; a row whose text is "hang" makes run() sleep for an hour.
"""

import os
import time

import pandas as pd


def run(mini_batch, mini_batch_context):
    assert isinstance(mini_batch, pd.DataFrame)
    assert len(mini_batch) > 0
    crash = "text" in mini_batch and (mini_batch["text"] == "crash").any()
    if crash and not os.path.exists(os.environ.get("CRASH_ONCE", "/nonexistent")):
        os._exit(3)
    if "text" in mini_batch and (mini_batch["text"] == "hang").any():
        time.sleep(3600)
    if "text" in mini_batch and (mini_batch["text"] == "raise").any():
        raise ValueError("a row says raise")
    out = mini_batch.copy()
    out["batch"] = mini_batch_context.minibatch_index
    out["dataset"] = mini_batch_context.dataset
    out["keys"] = str(mini_batch_context.partition_key_value)
    return out
