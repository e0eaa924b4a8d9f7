"""Entry script for Runner tests: behaviour chosen by the item's content.

"raise" raises ValueError, "boom" an exception the parent cannot import, "hang" sleeps,
"exit" kills the worker (exit code 7), "pid" returns the worker's pid; {"gate": path}
creates path + ".started" and waits until path exists; {"mark": path} creates path (so a
test can tell whether the item ran). Other items come back as (item, batch size).
"""

import os
import time


class Boom(Exception):
    pass


def init():
    global pid
    pid = os.getpid()


def _special(item):
    if item == "raise":
        raise ValueError("item asked to raise")
    if item == "boom":
        raise Boom("a class the parent cannot import")
    if item == "hang":
        time.sleep(3600)
    if item == "exit":
        os._exit(7)
    if isinstance(item, dict) and "gate" in item:
        open(item["gate"] + ".started", "w").close()
        while not os.path.exists(item["gate"]):
            time.sleep(0.005)
    if isinstance(item, dict) and "mark" in item:
        open(item["mark"], "w").close()


def run(mini_batch):
    out = []
    for item in mini_batch:
        _special(item)
        out.append(pid if item == "pid" else (item, len(mini_batch)))
    return out
