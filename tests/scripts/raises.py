"""Entry script: run() raises ValueError when an item contains "bad", else echoes."""


def run(mini_batch):
    for item in mini_batch:
        if "bad" in str(item):
            raise ValueError(f"cannot process {item!r}")
    return list(mini_batch)
