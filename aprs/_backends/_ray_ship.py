"""Shipped inputs (``ship_inputs``): file inputs travel to Ray workers as bytes, not paths.

    driver, producer thread                      actor (any node)
    ship_files(paths) ─ read each file ─┐
        batch < 100 KB: bytes inline    │        run_shipped(batch_id, kind, payload,
        else packed, ray.put per 32 MB  ├──────►     inline, *refs)   (Ray resolves the refs
    ShippedFiles on Attempt.files ──────┘           before the call, while the previous
    (a retry reuses it: nothing is read twice)      batch runs)
                                                 materialise: <node-local dir>/b<id>-*/<rel>
                                                 ScriptRuntime.run_batch(local paths)
                                                 rmtree the folder

For clusters whose nodes do not see the driver's files. The driver reads each batch once, in
the producer's thread (never on the event loop); what it holds is bounded by the producer's
queue and a byte budget (the scheduler's ``_SHIP_BUDGET``): the bytes of all but tiny batches
live in the driver node's object store, referenced by the attempt, and are freed when the batch's
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

__all__ = (
    "CHUNK_BYTES",
    "INLINE_BYTES",
    "ShippedFiles",
    "local_layout",
    "materialise",
    "ship_files",
)

INLINE_BYTES = (
    100 << 10
)  # a batch this small travels inside the call (Ray inlines it too)
CHUNK_BYTES = (
    32 << 20
)  # else files are packed into objects of about this size, put once


@dataclass(frozen=True, slots=True)
class ShippedFiles:
    """One batch's file contents: ``inline`` (small batches), else packed in ``refs``.

    ``paths`` are the files in content order. A part of the batch (``isolate_failures``
    bisects a failing one) carries the same ShippedFiles and a payload naming fewer paths:
    the actor writes only those.
    """

    paths: list[str]
    inline: list[bytes] | None
    refs: list[Any]  # ray.ObjectRef of list[bytes] (files in order), when not inline
    nbytes: int  # total file bytes (the scheduler's budget)


def ship_files(paths: list[str]) -> ShippedFiles:
    """Read ``paths`` (blocking: call it in a thread); big batches go to the object store.

    One object per ~CHUNK_BYTES of files, not one per file: each object costs Ray about a
    millisecond to put and to fetch, which dominated batches of many small files.

    Raises:
        OSError: a file cannot be read (the caller fails the batch, not the job).
    """
    chunk: list[bytes] = []
    chunk_bytes = total = 0
    refs: list[Any] = []
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        if chunk and chunk_bytes + len(data) > CHUNK_BYTES:
            refs.append(ray.put(chunk))
            chunk, chunk_bytes = [], 0
        chunk.append(data)
        chunk_bytes += len(data)
        total += len(data)
        del data
    if not refs and total < INLINE_BYTES:
        return ShippedFiles(list(paths), chunk, [], total)
    if chunk:
        refs.append(ray.put(chunk))
    return ShippedFiles(list(paths), None, refs, total)


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
    shipped: tuple[list[str], list[bytes] | None],
    fetched: tuple[list[bytes], ...],
) -> bytes:
    """Write the payload's files under ``folder`` from ``shipped`` (its paths and inline
    contents) or ``fetched`` (the packed chunks); the payload with the local paths."""
    data = pickle.loads(payload)
    paths, key_value = data if kind == KIND_KEYED else (data, None)
    local = local_layout(paths, folder)
    all_paths, inline = shipped
    contents = inline if inline is not None else [b for chunk in fetched for b in chunk]
    by_path = dict(zip(all_paths, contents, strict=True))
    for target, path in zip(local, paths, strict=True):
        blob = by_path[path]
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(blob)
    return pickle.dumps(local if kind != KIND_KEYED else (local, key_value), protocol=5)
