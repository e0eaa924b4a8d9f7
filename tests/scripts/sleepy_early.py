"""Entry script whose early mini-batches finish last, so results arrive out of order.

run(mini_batch, ctx) uses ctx.minibatch_index: mini-batch 0 waits (up to 10 s) until some
other mini-batch has finished, mini-batches 1 and 2 sleep a little, the rest return at once.
Each finished mini-batch appends its index to the file named by SLEEPY_LOG (one line each).
"""

import os
import time


def _finished(log):
    try:
        return os.path.getsize(log) > 0
    except OSError:
        return False


def run(mini_batch, mini_batch_context):
    index = mini_batch_context.minibatch_index
    log = os.environ["SLEEPY_LOG"]
    if index == 0:
        deadline = time.monotonic() + 10
        while not _finished(log) and time.monotonic() < deadline:
            time.sleep(0.005)
    elif index < 3:
        time.sleep(0.02 * (3 - index))
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{index}\n".encode())
    finally:
        os.close(fd)
    return [f"{index}:{item}" for item in mini_batch]
