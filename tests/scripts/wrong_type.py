"""Entry script: run() returns a dict, which is not a valid result type."""


def run(mini_batch):
    return {"count": len(mini_batch)}
