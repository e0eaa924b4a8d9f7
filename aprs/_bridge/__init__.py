"""The local process pool: wire protocol (_protocol), parent side (_pool, built on _pool_life,
_pool_reap and _pool_slot; the fork server: _launch, _forkserver, _zygote), child (_worker +
_runtime).

Deliberately empty: a worker process imports ``aprs._bridge._worker``, and importing the parent
side here would cost it asyncio and subprocess (~45 ms per worker start).
"""
