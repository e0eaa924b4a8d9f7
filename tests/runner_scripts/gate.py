"""Entry script for the service's overload test: an item {"gate": path} blocks run().

It creates ``path + ".started"`` and waits until ``path`` exists (content-triggered, so the
test decides when the worker is busy and when it is released); other items come back as is.
"""

import os
import time


def run(mini_batch):
    for item in mini_batch:
        if isinstance(item, dict) and "gate" in item:
            open(item["gate"] + ".started", "w").close()
            while not os.path.exists(item["gate"]):
                time.sleep(0.01)
    return list(mini_batch)
