"""Where a job's actors run: one placement-group bundle per node, each slot pinned to one.

    Placement(opts, nodes, per_node)
    reserve() ──► placement_group(nodes x bundle, STRICT_SPREAD; PACK for one node)
              ──► ready within opts.node_wait_s, else BackendError (nodes asked, alive)
    actor_options(slot) ──► the actor's resources + its node's bundle: slot // per_node
    release() ──► remove the group (once; errors ignored)

A bundle holds ``per_node`` workers' resources (RayOptions.bundle), so each node gets
exactly process_count_per_node actors and a replacement lands in its dead actor's bundle.
Invariants: the group exists from reserve() until release(), also when reserve() failed
(the caller releases it); actors never restart on their own (max_restarts=0): the backend
replaces them.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from .._errors import BackendError
from ._options import RayOptions

__all__ = ("Placement",)


class Placement:
    """The job's placement group: ``nodes`` bundles of ``per_node`` workers each."""

    def __init__(self, opts: RayOptions, nodes: int, per_node: int) -> None:
        self._opts = opts
        self._nodes = nodes
        self._per_node = per_node
        self._pg: Any = None

    async def reserve(self, loop: asyncio.AbstractEventLoop) -> None:
        """Reserve one bundle per node; a cluster too small is an error after a bounded wait."""
        per_node = self._per_node
        bundle = self._opts.bundle(per_node)
        strategy = "STRICT_SPREAD" if self._nodes > 1 else "PACK"
        self._pg = placement_group([bundle] * self._nodes, strategy=strategy)
        ready = asyncio.wrap_future(self._pg.ready().future(), loop=loop)
        wait = self._opts.node_wait_s
        try:
            await asyncio.wait_for(ready, wait)
        except TimeoutError:
            nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
            alive = sum(1 for n in nodes if n.get("Alive"))
            raise BackendError(
                f"node_count={self._nodes} with process_count_per_node={per_node} needs "
                f"{self._nodes} Ray nodes with {bundle} free on each (one bundle per "
                f"node), but the cluster has {alive} alive node(s) and could not place "
                f"them within {wait:g} s. Add nodes (ray start --address=...), or lower "
                "node_count, process_count_per_node or the per-worker resources."
            ) from None

    def bundle_of(self, slot: int) -> int:
        return slot // self._per_node

    def actor_options(self, slot: int) -> dict[str, Any]:
        """``ActorClass.options`` for ``slot``'s actor: its resources, in its bundle."""
        return dict(
            **self._opts.actor_options(),
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                self._pg, placement_group_bundle_index=self.bundle_of(slot)
            ),
            max_restarts=0,
            max_task_retries=0,
        )

    def release(self) -> None:
        if self._pg is not None:
            with contextlib.suppress(Exception):
                remove_placement_group(self._pg)
            self._pg = None
