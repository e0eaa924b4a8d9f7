"""The environment of a worker: the parent's, plus the caller's variables, with aprs importable
(and, for local workers, native thread pools sized to each worker's share of cores)."""

from __future__ import annotations

import os

__all__ = (
    "THREAD_POOL_VARS",
    "default_env",
    "ensure_importable_env",
    "limit_thread_pools",
)


def ensure_importable_env(env: dict[str, str]) -> dict[str, str]:
    """Make sure a worker interpreter can import aprs from where the parent has it."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = env.get("PYTHONPATH", "")
    if root not in paths.split(os.pathsep):
        env["PYTHONPATH"] = root + (os.pathsep + paths if paths else "")
    return env


def default_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if extra:
        env.update(extra)
    return ensure_importable_env(env)


# the native thread pools a library sizes to every core at import (BLAS, OpenMP, numexpr,
# numba): joblib's loky limits the same variables in its worker processes
THREAD_POOL_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMBA_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def limit_thread_pools(env: dict[str, str], workers: int) -> dict[str, str]:
    """Give each of ``workers`` local workers its share of the cores for native threads.

    Every variable of THREAD_POOL_VARS that ``env`` does not set becomes cores // workers
    (at least 1). Without it N workers each start a BLAS pool of every core: on 2 cores,
    2 workers' scikit-learn init() took 0.1-0.85 s instead of ~0.03 s (threads spinning
    against each other) and its import ~0.1-0.3 s more CPU (perf/RESULTS.md, "start-up").
    """
    cores = (
        len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count() or 1
    )
    share = str(max(1, cores // max(1, workers)))
    for name in THREAD_POOL_VARS:
        env.setdefault(name, share)
    return env
