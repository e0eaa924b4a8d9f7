"""The local process-pool backend: wire protocol (_protocol), parent side (_pool), child (_worker).

Deliberately empty: a worker process imports ``aprs._bridge._worker``, and importing the parent
side here would cost it asyncio and subprocess (~45 ms per worker start).
"""
