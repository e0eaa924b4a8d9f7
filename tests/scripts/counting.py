"""Entry script that records its lifecycle in the folder named by COUNTING_DIR.

init() appends its pid to init.log, run() appends its pid to run.log, shutdown() appends its
pid to shutdown.log; tests count the lines per pid. init() also prints to stderr and run()
to stdout, so tests can find that output in the worker log files.
"""

import os
import sys

_dir = None


def _record(name):
    fd = os.open(
        os.path.join(_dir, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
    )
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
    finally:
        os.close(fd)


def init():
    global _dir
    _dir = os.environ["COUNTING_DIR"]
    # printed before the pid is recorded: a worker stopped inside init() (the job ended
    # first) has either both or neither, so a test can match them
    print(f"init in {os.getpid()}", file=sys.stderr)
    _record("init.log")


def run(mini_batch):
    _record("run.log")
    print(f"run of {len(mini_batch)} items")
    return list(mini_batch)


def shutdown():
    _record("shutdown.log")
