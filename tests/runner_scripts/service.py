"""Entry script for Runner tests: behaviour chosen by the item's content."""

import os
import time


class Boom(Exception):
    pass


def init():
    global pid
    pid = os.getpid()


def run(mini_batch):
    out = []
    for item in mini_batch:
        if item == "raise":
            raise ValueError("item asked to raise")
        if item == "boom":
            raise Boom("a class the parent cannot import")
        if item == "hang":
            time.sleep(3600)
        if item == "exit":
            os._exit(7)
        if item == "pid":
            out.append(pid)
            continue
        out.append((item, len(mini_batch)))
    return out
