"""The local backend: a pool of worker processes on this machine, one pipe pair each.

    create_backend("local", spec, listener) ──► LocalBackend ──► aprs._bridge._pool.LocalPool
                                                                 (spawn, frames, timers, reaping)

The process code lives in ``aprs/_bridge/`` (``_pool`` parent side, ``_worker`` + ``_runtime``
child side, ``_protocol`` the frames between them); this module is the only one outside the
bridge that names it.
"""

from __future__ import annotations

from .._bridge._pool import LocalPool

__all__ = ("LocalBackend",)


class LocalBackend(LocalPool):
    """The local process pool behind the Backend protocol (see ``aprs._backends._base``)."""
