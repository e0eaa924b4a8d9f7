"""Entry script: run() returns one element fewer than it was given."""


def run(mini_batch):
    return list(mini_batch)[:-1]
