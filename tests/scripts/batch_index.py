"""Entry script: one "<mini-batch index>:<item>" element per item (file items by base name)."""

import os


def run(mini_batch, mini_batch_context):
    index = mini_batch_context.minibatch_index
    return [f"{index}:{os.path.basename(str(item))}" for item in mini_batch]
