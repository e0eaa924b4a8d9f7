"""Backends: where mini-batches run. Selecting one is one lookup from ``compute_target``.

    create_backend("local", spec, listener) ──► aprs._backends._local.LocalBackend
    create_backend("ray", spec, listener)   ──► aprs._backends._ray.RayBackend (the ray extra)

The seam itself (WorkerSpec, Attempt, the outcome variants, BackendListener, Backend) is in
``_base``; a backend module is imported only when it is selected, so ``import aprs`` never
pulls in Ray.
"""

from __future__ import annotations

import importlib

from .._errors import ConfigError, UsageError
from ._base import (
    KIND_ITEMS,
    KIND_KEYED,
    KIND_TABLE,
    Attempt,
    Backend,
    BackendListener,
    BackendStatistics,
    Crashed,
    Done,
    Failed,
    Outcome,
    TimedOut,
    WorkerSpec,
)
from ._env import default_env, ensure_importable_env, limit_thread_pools

__all__ = (
    "BACKENDS",
    "KIND_ITEMS",
    "KIND_KEYED",
    "KIND_TABLE",
    "Attempt",
    "Backend",
    "BackendListener",
    "BackendStatistics",
    "Crashed",
    "Done",
    "Failed",
    "Outcome",
    "TimedOut",
    "WorkerSpec",
    "create_backend",
    "default_env",
    "ensure_importable_env",
    "limit_thread_pools",
)

BACKENDS: dict[str, tuple[str, str]] = {
    "local": ("aprs._backends._local", "LocalBackend"),
    "ray": ("aprs._backends._ray", "RayBackend"),
}
"""compute_target -> (module, class); the module is imported on first use."""

_EXTRAS = {"ray": "ray"}  # compute_target -> the pip extra that provides it


def create_backend(
    compute_target: str, spec: WorkerSpec, listener: BackendListener
) -> Backend:
    """Build the backend for ``compute_target``; call its ``start()`` inside the event loop.

    Raises:
        ConfigError: no backend has that name.
        UsageError: the backend needs an extra that is not installed.
    """
    try:
        module_name, class_name = BACKENDS[compute_target]
    except KeyError:
        raise ConfigError(
            f"compute_target={compute_target!r} is not a known backend. Use one of: "
            f"{', '.join(sorted(BACKENDS))}."
        ) from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = exc.name or ""
        if missing not in (module_name, compute_target) and not missing.startswith(
            f"{compute_target}."
        ):
            raise
        extra = _EXTRAS.get(compute_target, compute_target)
        raise UsageError(
            f"compute_target={compute_target!r} needs the {extra} extra, which is not "
            f"installed ({exc}). Install it with: pip install 'aprs[{extra}]'"
        ) from exc
    backend: Backend = getattr(module, class_name)(spec, listener)
    return backend
