"""``python -m aprs``: the command line."""

from __future__ import annotations

import atexit
import os
import sys

from ._cli import main

if __name__ == "__main__":
    code = main()
    # Everything the command wrote is closed and its workers are gone: skip the
    # interpreter's teardown of every module (~0.04 s after a job, perf/RESULTS.md
    # "start-up"), after the atexit handlers (logging's flush) and stdio flush it would
    # run. An exception or sys.exit() inside main() still ends the usual way.
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code)
