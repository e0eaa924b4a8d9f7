"""Wire protocol between the parent and its worker processes: the only place that knows bytes.

    parent ──► child:  Init | RunBatch | Shutdown          (pipe A, parent writes)
    child  ──► parent: Ready | InitFailed | BatchDone | BatchFailed   (pipe B, child writes)

A frame is ``[u32 header_len][u32 body_len][msgpack header][body]``. The header is a tagged,
array-like msgspec Struct; the body carries the bulk bytes (the pickled mini-batch, the
formatted rows, the pickled result) *outside* the msgpack envelope, so a large payload is
never copied into or out of msgpack: the writer hands header and body to ``os.writev`` and
the reader slices the body straight out of its receive buffer.

Framing is I/O free, shared by both sides (the worker must not import the parent side):

    SendBuffer.add(msg, body) ──► head(n) ──► os.writev ──► advance(written)   (partial writes)
    os.read ──► FrameDecoder.feed(data) ──► [(msg, body), ...]   (partial and several frames)

A prefix announcing more than ``MAX_FRAME`` bytes is rejected (``FrameTooLarge``): the stream
is corrupt, and buffering it would only exhaust memory.
"""

from __future__ import annotations

import struct
from collections import deque
from itertools import islice
from typing import Generic, TypeVar

import msgspec

__all__ = (
    "KIND_ITEMS",
    "KIND_KEYED",
    "MAX_FRAME",
    "PREFIX",
    "RESULT_COUNT",
    "RESULT_PICKLE",
    "RESULT_ROWS",
    "BatchDone",
    "BatchFailed",
    "FrameDecoder",
    "FrameTooLarge",
    "Init",
    "InitFailed",
    "Ready",
    "RunBatch",
    "SendBuffer",
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
KIND_TABLE = (
    2  # a pickled TableSlice (or list of them): the worker reads the rows itself
)


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
    items: int = -1  # items the worker found in the batch (table rows); -1: as sent


class BatchFailed(msgspec.Struct, tag=True, array_like=True):
    """run() raised, returned a wrong type, or its result could not be encoded.

    The body is the pickled exception when it could be pickled, else empty.
    """

    batch_id: int
    error_type: str
    message: str
    traceback: str
    run_s: float
    items: int = -1  # items the worker found in the batch (table rows); -1: as sent


ToChild = Init | RunBatch | Shutdown
ToParent = Ready | InitFailed | BatchDone | BatchFailed

_encoder = msgspec.msgpack.Encoder()
child_decoder: msgspec.msgpack.Decoder[ToChild] = msgspec.msgpack.Decoder(ToChild)
parent_decoder: msgspec.msgpack.Decoder[ToParent] = msgspec.msgpack.Decoder(ToParent)


def encode_header(msg: msgspec.Struct, body_len: int = 0) -> bytes:
    """Return prefix + msgpack header for ``msg``; the body (if any) follows separately."""
    header = _encoder.encode(msg)
    return PREFIX.pack(len(header), body_len) + header


# SendBuffer: a body up to this size is joined to its header (the copy costs less than a
# second buffer per frame); a larger one goes to writev as is
_JOIN_BODY = 4096

MAX_FRAME = (1 << 31) - 1
"""Largest header + body a decoder accepts (2 GiB): more means a corrupt stream."""

M = TypeVar("M")


class FrameTooLarge(ValueError):
    """A frame prefix announced more than the decoder's limit; the stream cannot go on.

    ``frames`` holds the complete frames decoded before it in the same ``feed`` call.
    """

    def __init__(self, size: int, limit: int, frames: list[tuple[object, bytes]]):
        super().__init__(
            f"a frame of {size} bytes exceeds the limit of {limit} bytes: the stream is "
            "corrupt"
        )
        self.size = size
        self.limit = limit
        self.frames = frames


class FrameDecoder(Generic[M]):
    """Bytes in, complete ``(message, body)`` frames out; keeps a partial frame for later."""

    __slots__ = ("_buf", "_decode", "_limit")

    def __init__(
        self, decoder: msgspec.msgpack.Decoder[M], limit: int = MAX_FRAME
    ) -> None:
        self._buf = bytearray()
        self._decode = decoder.decode
        self._limit = limit

    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buf)

    def feed(self, data: bytes | memoryview) -> list[tuple[M, bytes]]:
        """Every frame completed by ``data``, in order (possibly none).

        Nothing refers to ``data`` afterwards (bodies and a partial frame are copied), so
        callers may read into one reused buffer and pass a view of it.

        Raises:
            FrameTooLarge: a prefix announced more than ``limit`` bytes.
            msgspec.DecodeError / ValidationError: a header is not a known message.
        """
        buf = self._buf
        if buf:
            buf += data
            view: bytes | bytearray | memoryview = buf
        else:
            view = data  # the common case: no copy until a frame is cut in two
        frames: list[tuple[M, bytes]] = []
        pos, size, decode = 0, len(view), self._decode
        while size - pos >= 8:
            header_len, body_len = PREFIX.unpack_from(view, pos)
            if header_len + body_len > self._limit:
                del buf[:]
                raise FrameTooLarge(header_len + body_len, self._limit, frames)  # type: ignore[arg-type]
            start = pos + 8
            end = start + header_len + body_len
            if end > size:
                break
            msg = decode(view[start : start + header_len])
            body = bytes(view[start + header_len : end]) if body_len else b""
            frames.append((msg, body))
            pos = end
        if view is buf:
            del buf[:pos]
        elif pos < size:
            self._buf = bytearray(view[pos:])
        return frames


class SendBuffer:
    """Frames waiting to be written, and what is left of them after a partial write."""

    __slots__ = ("_all", "_parts")

    def __init__(self) -> None:
        self._parts: deque[bytes | memoryview] = deque()
        self._all = -1  # bytes in all the buffers when head() returned them all

    def __len__(self) -> int:
        """Number of buffers queued (a frame is one or two)."""
        return len(self._parts)

    def add(self, msg: msgspec.Struct, body: bytes = b"") -> None:
        self._all = -1
        header = _encoder.encode(msg)
        prefix = PREFIX.pack(len(header), len(body))
        if len(body) <= _JOIN_BODY:  # one buffer: fewer iovecs, one deque entry
            self._parts.append(prefix + header + body)
        else:  # a large body is never copied
            self._parts.append(prefix + header)
            self._parts.append(body)

    def extend(self, parts: list[bytes | memoryview]) -> None:
        """Queue buffers already framed (the rest of a frame a direct write left over)."""
        self._parts.extend(parts)
        self._all = -1

    def head(self, max_parts: int) -> list[bytes | memoryview]:
        """The first ``max_parts`` buffers, for one ``os.writev``."""
        parts = self._parts
        if len(parts) <= max_parts:
            head = list(parts)
            self._all = sum(map(len, head))
            return head
        self._all = -1
        return list(islice(parts, max_parts))

    def advance(self, written: int) -> None:
        """Drop ``written`` bytes from the front (a partial write keeps the rest)."""
        parts = self._parts
        if written == self._all:  # everything head() returned, i.e. all: the usual case
            parts.clear()
            self._all = -1
            return
        while written:
            first = parts[0]
            if written >= len(first):
                written -= len(first)
                parts.popleft()
            else:
                parts[0] = memoryview(first)[written:]
                written = 0

    def clear(self) -> None:
        self._parts.clear()
        self._all = -1
