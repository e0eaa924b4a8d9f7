"""perf entry script (ray_bench overhead workload): run() does nothing but return its input."""


def run(mini_batch):
    return mini_batch
