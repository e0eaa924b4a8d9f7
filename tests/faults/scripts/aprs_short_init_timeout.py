"""`python -m aprs` with a short init() timeout, for the stuck-init test.

aprs bounds a stuck init() by 3 * run_invocation_timeout + 30 s (Azure's rule) and tries it
3 times per worker slot, which is ~100 s even at run_invocation_timeout=1; ParallelRunConfig
has no field for it. This launcher sets WorkerSpec.init_timeout_s to APRS_TEST_INIT_TIMEOUT
seconds (default 1) and then runs the real CLI: `python aprs_short_init_timeout.py run ...`.
"""

import functools
import os
import sys

import aprs._step_workers
from aprs._backends import WorkerSpec
from aprs._cli import main

aprs._step_workers.WorkerSpec = functools.partial(
    WorkerSpec, init_timeout_s=float(os.environ.get("APRS_TEST_INIT_TIMEOUT", "1"))
)

if __name__ == "__main__":
    sys.exit(main())
