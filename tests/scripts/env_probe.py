"""Entry script: each item names an environment variable; returns "NAME=value" per item."""

import os


def run(mini_batch):
    return [f"{name}={os.environ.get(name, '<unset>')}" for name in mini_batch]
