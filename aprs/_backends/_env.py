"""The environment of a worker: the parent's, plus the caller's variables, with aprs importable."""

from __future__ import annotations

import os

__all__ = ("default_env", "ensure_importable_env")


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
