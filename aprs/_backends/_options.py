"""Settings of the Ray backend, kept apart from the backend so nothing here imports Ray.

    ParallelRunConfig / CLI / Runner(...) ──► RayOptions ──► WorkerSpec.ray ──► RayBackend

Resources are per worker (one Ray actor); a node's placement-group bundle holds
``process_count_per_node`` times them, so each node gets exactly that many workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ("RayOptions",)


@dataclass(frozen=True, slots=True)
class RayOptions:
    """Where the Ray cluster is and what each worker actor needs.

    Attributes:
        address: as ``ray.init`` takes it ("auto", "host:port", "ray://host:port"); None
            uses ``RAY_ADDRESS`` when set, else starts a Ray on this machine.
        num_cpus, num_gpus, memory: Ray resources of one worker (memory in bytes).
        resources: custom Ray resources of one worker, e.g. ``{"accelerator": 1}``.
        node_wait_s: how long to wait for enough nodes before failing with a clear error.
        ship_inputs: file inputs travel to the workers as bytes (through the object
            store) instead of as paths, for nodes that do not share the driver's storage.
    """

    address: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory: int | None = None
    resources: dict[str, float] = field(default_factory=dict)
    node_wait_s: float = 60.0
    ship_inputs: bool = False

    @classmethod
    def build(
        cls,
        address: str | None,
        worker_resources: dict[str, float] | None,
        node_wait_s: float = 60.0,
        ship_inputs: bool = False,
    ) -> RayOptions:
        """From the user's settings: ``worker_resources`` mixes num_cpus, num_gpus, memory
        and custom resource names, as in ``{"num_cpus": 1, "accelerator": 1}``."""
        res = dict(worker_resources or {})
        memory = res.pop("memory", 0)
        return cls(
            address=address,
            num_cpus=res.pop("num_cpus", 1.0),
            num_gpus=res.pop("num_gpus", 0.0),
            memory=int(memory) or None,
            resources=res,
            node_wait_s=float(node_wait_s),
            ship_inputs=ship_inputs,
        )

    def actor_options(self) -> dict[str, Any]:
        """Keyword arguments of ``ActorClass.options`` for one worker's resources."""
        opts: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory:
            opts["memory"] = self.memory
        if self.resources:
            opts["resources"] = dict(self.resources)
        return opts

    def bundle(self, workers: int) -> dict[str, float]:
        """One node's placement-group bundle: ``workers`` times one worker's resources."""
        each: dict[str, float] = {"CPU": self.num_cpus, "GPU": self.num_gpus}
        if self.memory:
            each["memory"] = float(self.memory)
        each.update(self.resources)
        bundle = {k: v * workers for k, v in each.items() if v > 0}
        return bundle or {"CPU": 0.01 * workers}
