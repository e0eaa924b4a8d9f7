"""Shipped inputs (``ship_inputs``): file inputs travel to Ray workers as bytes, not paths.

    driver, producer thread                      actor (any node)
    ship_files(paths) ─ read each file ─┐
        < 64 KB: bytes kept inline      │        run_shipped(batch_id, kind, payload,
        >= 64 KB: ray.put, the ref kept ├──────►     inline, *refs)   (Ray resolves the refs
    ShippedFiles on Attempt.files ──────┘           before the call, while the previous
    (a retry reuses it: nothing is read twice)      batch runs)
                                                 materialise: <node-local dir>/b<id>-*/<rel>
                                                 ScriptRuntime.run_batch(local paths)
                                                 rmtree the folder

For clusters whose nodes do not see the driver's files. The driver reads each batch once, in
the producer's thread (never on the event loop); what it holds is bounded by the producer's
queue and a byte budget (the scheduler's ``_SHIP_BUDGET``): the large files live in the
driver node's object store, referenced by the attempt, and are freed when the batch's
attempt is dropped (written or given up). On the node, ``run()`` receives paths with the
same base names and parent folders (the driver's absolute path re-rooted under a temp
folder of the node), deleted after the call. Tables are not shipped (their slices are read by the workers
from the path; see ParallelRunStep's check).

This module imports Ray; the scheduler reaches it only through ``RayBackend.ship_files``.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from typing import Any

import ray

from .._bridge._protocol import KIND_KEYED

__all__ = ("PUT_MIN_BYTES", "ShippedFiles", "local_layout", "materialise", "ship_files")

PUT_MIN_BYTES = 64 << 10  # files this big go through ray.put once; smaller ones inline


@dataclass(frozen=True, slots=True)
class ShippedFiles:
    """The contents of one batch's files: inline bytes, or None where ``refs`` holds it."""

    inline: list[bytes | None]
    refs: list[Any]  # ray.ObjectRef per None in ``inline``, in order
    nbytes: int  # total file bytes (the scheduler's budget)


def ship_files(paths: list[str]) -> ShippedFiles:
    """Read ``paths`` (blocking: call it in a thread); big files go to the object store.

    Raises:
        OSError: a file cannot be read (the caller fails the batch, not the job).
    """
    inline: list[bytes | None] = []
    refs: list[Any] = []
    total = 0
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        total += len(data)
        if len(data) >= PUT_MIN_BYTES:
            refs.append(ray.put(data))
            inline.append(None)
        else:
            inline.append(data)
        del data  # the object store holds the big ones now
    return ShippedFiles(inline, refs, total)


def local_layout(paths: list[str], folder: str) -> list[str]:
    """Where each driver path lands: the whole absolute path re-rooted under ``folder``,
    so base names, parent folders (partition values) and uniqueness all stay."""
    local = []
    for path in paths:
        _drive, tail = os.path.splitdrive(path)  # absolute: FileDataset resolved it
        local.append(os.path.join(folder, tail.lstrip("/\\")))
    return local


def materialise(
    folder: str,
    kind: int,
    payload: bytes,
    inline: list[bytes | None],
    fetched: tuple[Any, ...],
) -> bytes:
    """Write the shipped files under ``folder``; the payload with the local paths instead."""
    data = pickle.loads(payload)
    paths, key_value = data if kind == KIND_KEYED else (data, None)
    local = local_layout(paths, folder)
    big = iter(fetched)
    for target, content in zip(local, inline, strict=True):
        blob = content if content is not None else next(big)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(blob)
    return pickle.dumps(local if kind != KIND_KEYED else (local, key_value), protocol=5)
