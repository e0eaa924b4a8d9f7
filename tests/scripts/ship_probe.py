"""Entry script for the ship_inputs tests: run() must get node-local copies, not paths.

APRS_TEST_INPUT_ROOT (Ray jobs only) is the driver's input folder: a path under it fails the
batch, and the first run() that sees "big.bin" deletes the driver's original and raises, so
the retry can only succeed with the bytes shipped before. Every path received is appended to APRS_TEST_MARKS/seen-<pid> so the test can check
the copies are gone after the job. A file named poison* makes run() raise; "a.txt" deletes the driver's "b.txt". Rows hold what is the same on both backends:
"<mini-batch index>|<partition key value>|<parent>/<base name>|<bytes>|<sha256 prefix>".
"""

import hashlib
import os
from pathlib import Path


def _once(mark):
    try:
        os.close(os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def run(mini_batch, mini_batch_context):
    root = os.environ.get("APRS_TEST_INPUT_ROOT")
    marks = Path(os.environ["APRS_TEST_MARKS"])
    key = ",".join(
        f"{k}={v}" for k, v in sorted(mini_batch_context.partition_key_value.items())
    )
    rows = []
    for path in mini_batch:
        if root and os.path.abspath(path).startswith(root + os.sep):
            raise RuntimeError(f"run() got the driver's own path {path}")
        data = Path(path).read_bytes()
        with open(marks / f"seen-{os.getpid()}", "a") as f:
            f.write(path + "\n")
        if root and Path(path).name == "big.bin" and _once(marks / "deleted"):
            os.remove(root + path.split(root, 1)[1])  # the driver's own copy
            raise RuntimeError(
                "the driver's big.bin is gone; the retry must not need it"
            )
        if root and Path(path).name == "a.txt":  # the next batch's file, on the driver
            Path(root, "b.txt").unlink(missing_ok=True)
        if Path(path).name.startswith("poison"):
            raise ValueError(f"poison item {Path(path).name}")
        where = "/".join(Path(path).parts[-2:])
        digest = hashlib.sha256(data).hexdigest()[:12]
        rows.append(
            f"{mini_batch_context.minibatch_index}|{key}|{where}|{len(data)}|{digest}"
        )
    return rows
