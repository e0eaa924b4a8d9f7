"""Entry script for file inputs whose content decides what happens (tests of issue 10).

ok    -> one row per file
bad   -> run() raises ValueError (every try)
crash -> the worker dies with os._exit(3) on the first try only (a marker file remembers)
stop  -> sends SIGINT to the job's process (it stops gracefully, like Ctrl-C), then returns
kill  -> sends SIGKILL to the job's process (it dies without cleaning up)

The job's process is the worker's parent, or its grandparent when the worker was forked by
the fork server (aprs._bridge._zygote).
"""

import os
import signal


def _job_pid():
    ppid = os.getppid()
    with open(f"/proc/{ppid}/cmdline", "rb") as f:
        forked = b"aprs._bridge._zygote" in f.read()
    if not forked:
        return ppid
    with open(f"/proc/{ppid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])  # the zygote's parent


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
            os.kill(_job_pid(), signal.SIGINT)
        if what == "kill":
            os.kill(_job_pid(), signal.SIGKILL)
        out.append(f"{os.path.basename(path)}:{what}")
    return out
