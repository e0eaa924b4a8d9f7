"""Entry script for file inputs whose content decides what happens (tests of issue 10).

ok    -> one row per file
bad   -> run() raises ValueError (every try)
crash -> the worker dies with os._exit(3) on the first try only (a marker file remembers)
stop  -> sends SIGINT to the parent (the job stops gracefully, like Ctrl-C), then returns
kill  -> sends SIGKILL to the parent (the job dies without cleaning up)
"""

import os
import signal


def run(mini_batch):
    out = []
    for path in mini_batch:
        with open(path, encoding="utf-8") as f:
            what = f.read().strip()
        if what == "bad":
            raise ValueError(f"cannot process {os.path.basename(path)}")
        if what == "crash" and not os.path.exists(path + ".crashed"):
            open(path + ".crashed", "w").close()
            os._exit(3)
        if what == "stop":
            os.kill(os.getppid(), signal.SIGINT)
        if what == "kill":
            os.kill(os.getppid(), signal.SIGKILL)
        out.append(f"{os.path.basename(path)}:{what}")
    return out
