"""Wire protocol between the parent and its worker processes: the only place that knows bytes.

    parent ──► child:  Init | RunBatch | Shutdown          (pipe A, parent writes)
    child  ──► parent: Ready | InitFailed | BatchDone | BatchFailed   (pipe B, child writes)

A frame is ``[u32 header_len][u32 body_len][msgpack header][body]``. The header is a tagged,
array-like msgspec Struct; the body carries the bulk bytes (the pickled mini-batch, the
formatted rows, the pickled result) *outside* the msgpack envelope, so a large payload is
never copied into or out of msgpack: the writer hands header and body to ``os.writev`` and
the reader slices the body straight out of its receive buffer.
"""

from __future__ import annotations

import struct

import msgspec

__all__ = (
    "KIND_ITEMS",
    "KIND_KEYED",
    "PREFIX",
    "RESULT_COUNT",
    "RESULT_PICKLE",
    "RESULT_ROWS",
    "BatchDone",
    "BatchFailed",
    "Init",
    "InitFailed",
    "Ready",
    "RunBatch",
    "Shutdown",
    "ToChild",
    "ToParent",
    "child_decoder",
    "encode_header",
    "parent_decoder",
)

PREFIX = struct.Struct("<II")
"""Frame prefix: header length, body length (little-endian u32 each)."""

# Result encodings a worker can be asked for (Init.result_mode).
RESULT_ROWS = (
    0  # append_row: "str(element)\n" per element, UTF-8, formatted in the worker
)
RESULT_COUNT = 1  # summary_only: only the number of returned elements
RESULT_PICKLE = 2  # service API: the returned list, pickled (protocol 5)

# Payload kinds (RunBatch.kind, Attempt.kind): how the worker decodes a batch's body.
KIND_ITEMS = 0  # the pickled list of items
KIND_KEYED = 1  # the pickled pair (items, partition_key_value) made by partition_keys


class Init(msgspec.Struct, tag=True, array_like=True):
    """First frame to a new worker: everything it needs to load the script and call init()."""

    entry_script: str
    source_directory: str | None
    argv: list[str]
    worker_index: int
    result_mode: int
    logging_level: str
    log_dir: str | None
    output_dir: str | None
    redirect_stdio: bool


class RunBatch(msgspec.Struct, tag=True, array_like=True, gc=False):
    """Run one mini-batch; the body is its payload, decoded as ``kind`` says (KIND_*)."""

    batch_id: int
    attempt: int
    kind: int = 0


class Shutdown(msgspec.Struct, tag=True, array_like=True):
    """Call shutdown() if the script has one, then exit 0."""


class Ready(msgspec.Struct, tag=True, array_like=True):
    """init() returned; the worker takes RunBatch frames from now on."""

    pid: int
    init_s: float


class InitFailed(msgspec.Struct, tag=True, array_like=True):
    """Loading the script or init() failed. ``kind``: "import", "no_run" or "init"."""

    kind: str
    error_type: str
    message: str
    traceback: str


class BatchDone(msgspec.Struct, tag=True, array_like=True, gc=False):
    """run() returned ``returned`` elements; the body holds them as asked by result_mode."""

    batch_id: int
    returned: int
    run_s: float


class BatchFailed(msgspec.Struct, tag=True, array_like=True):
    """run() raised, returned a wrong type, or its result could not be encoded.

    The body is the pickled exception when it could be pickled, else empty.
    """

    batch_id: int
    error_type: str
    message: str
    traceback: str
    run_s: float


ToChild = Init | RunBatch | Shutdown
ToParent = Ready | InitFailed | BatchDone | BatchFailed

_encoder = msgspec.msgpack.Encoder()
child_decoder: msgspec.msgpack.Decoder[ToChild] = msgspec.msgpack.Decoder(ToChild)
parent_decoder: msgspec.msgpack.Decoder[ToParent] = msgspec.msgpack.Decoder(ToParent)


def encode_header(msg: msgspec.Struct, body_len: int = 0) -> bytes:
    """Return prefix + msgpack header for ``msg``; the body (if any) follows separately."""
    header = _encoder.encode(msg)
    return PREFIX.pack(len(header), body_len) + header
