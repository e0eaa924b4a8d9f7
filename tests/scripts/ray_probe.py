"""Entry script for the Ray backend tests: items steer crashes, hangs and failures.

APRS_TEST_MARKS names a folder shared by every actor (all nodes run on this machine): init()
records "init-<node id>-<pid>" there, and the once-only faults below leave a marker so the
retry of the same mini-batch succeeds. Rows hold no node or pid, so they equal the local
backend's rows for the same job.
"""

import os
import sys
import time
from pathlib import Path

import ray

MARKS = Path(os.environ["APRS_TEST_MARKS"])
prefix = ""


def _once(name):
    """True the first time only, across actors and nodes."""
    try:
        os.close(os.open(MARKS / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def _node():
    """This actor's Ray node id; "local" in a local worker (never start a Ray there)."""
    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


def init():
    global prefix
    node = _node()
    (MARKS / f"init-{node}-{os.getpid()}").touch()
    prefix = os.environ.get("APRS_TEST_PREFIX", "")
    print(f"init argv={sys.argv[1:3]} prefix={prefix}")
    print(f"aprs from {os.path.dirname(sys.modules['aprs'].__file__)}")


def run(mini_batch, mini_batch_context):
    rows = []
    for path in mini_batch:
        item = os.path.basename(path).split("_", 1)[-1]  # file inputs: "08_stall"
        if item == "kill-actor" and _once("killed"):
            ray.kill(ray.get_runtime_context().current_actor, no_restart=True)
            time.sleep(600)
        if item == "hang" and _once("hung"):
            time.sleep(3600)
        if item == "block" and _once("blocked"):
            node = _node()
            (MARKS / "blocked-node.tmp").write_text(node)
            (MARKS / "blocked-node.tmp").rename(MARKS / "blocked-node")
            time.sleep(3600)
        if item == "stall" and not (MARKS / "go").exists():
            (MARKS / "stalled").touch()
            time.sleep(3600)
        if (
            item == "gather"
        ):  # wait until every worker ran init(): the job holds them all
            want = int(os.environ["APRS_TEST_WORKERS"])
            while len(list(MARKS.glob("init-*"))) < want:
                time.sleep(0.05)
        if item == "bad":
            raise ValueError(
                f"bad item in mini-batch {mini_batch_context.minibatch_index}"
            )
        if item == "slow":
            time.sleep(3600)
        rows.append(
            f"{prefix}{os.path.basename(path)} {mini_batch_context.minibatch_index}"
        )
    return rows
