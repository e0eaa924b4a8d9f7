"""The local backend: a pool of worker processes on this machine, one pipe pair each.

    create_backend("local", spec, listener) ──► LocalBackend ──► aprs._bridge._pool.LocalPool
                                            (start / try_submit / aclose, frames, _settle;
                                            inherited: _pool_life spawn, timers, deaths,
                                            _pool_reap reaping)

The process code lives in ``aprs/_bridge/`` (``_pool`` parent side, ``_worker`` + ``_runtime``
child side, ``_protocol`` the frames between them). The pool's rules for init tries, timers,
states and the fatal error are shared with Ray and live in this package, ``_slots``
(``WorkerSlots``, ``SlotState``), which ``_bridge/_pool_life`` and ``_pool_slot`` import, so
the two packages depend on each other there, and this module is the backend seam's way in.
"""

from __future__ import annotations

from .._bridge._pool import LocalPool

__all__ = ("LocalBackend",)


class LocalBackend(LocalPool):
    """The local process pool behind the Backend protocol (see ``aprs._backends._base``)."""
