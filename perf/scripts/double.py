"""perf entry script: run() returns each item doubled (the Ray benchmark's work)."""


def run(mini_batch):
    return [x * 2 for x in mini_batch]
