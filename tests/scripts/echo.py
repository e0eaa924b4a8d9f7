"""Entry script: run() returns its mini-batch unchanged (one element per item)."""


def run(mini_batch):
    return list(mini_batch)
