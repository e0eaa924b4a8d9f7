"""Wire protocol: every message type survives encode -> frame -> decode, over a real pipe too."""

from __future__ import annotations

import os
import pickle
import threading

import msgspec
import pytest

from aprs._bridge._protocol import (
    PREFIX,
    BatchDone,
    BatchFailed,
    FrameDecoder,
    FrameTooLarge,
    Init,
    InitFailed,
    Ready,
    RunBatch,
    SendBuffer,
    Shutdown,
    child_decoder,
    encode_header,
    parent_decoder,
)
from aprs._bridge._worker import _Channel

TO_CHILD = [
    pytest.param(
        Init("score.py", "/src", ["--a", "1"], 3, 0, "INFO", "/out/logs", "/out", True),
        id="Init",
    ),
    pytest.param(
        Init("pkg.mod", None, [], 0, 2, "DEBUG", None, None, False), id="Init-nones"
    ),
    pytest.param(RunBatch(12345, 2), id="RunBatch"),
    pytest.param(Shutdown(), id="Shutdown"),
]
TO_PARENT = [
    pytest.param(Ready(4242, 0.125), id="Ready"),
    pytest.param(
        InitFailed("init", "ValueError", "no model", "Traceback ...\n"), id="InitFailed"
    ),
    pytest.param(BatchDone(7, 10, 0.5), id="BatchDone"),
    pytest.param(
        BatchFailed(8, "KeyError", "'x'", "Traceback (most recent...)", 0.01),
        id="BatchFailed",
    ),
]
BODIES = [
    pytest.param(b"", id="no-body"),
    pytest.param(pickle.dumps(["a", "b", 3], protocol=5), id="pickle-body"),
    pytest.param(os.urandom(3 << 20), id="3MB-body"),
]


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, then close it."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def split_frame(frame: bytes) -> tuple[bytes, bytes]:
    """(header, body) of one complete frame; asserts the lengths add up."""
    header_len, body_len = PREFIX.unpack_from(frame)
    assert len(frame) == PREFIX.size + header_len + body_len
    header = frame[PREFIX.size : PREFIX.size + header_len]
    return header, frame[PREFIX.size + header_len :]


@pytest.mark.parametrize("msg", TO_CHILD)
@pytest.mark.parametrize("body", BODIES[:2])
def test_to_child_round_trip(msg: msgspec.Struct, body: bytes) -> None:
    """Parent -> child messages decode to an equal message; the body follows intact."""
    header, got_body = split_frame(encode_header(msg, len(body)) + body)
    assert child_decoder.decode(header) == msg
    assert got_body == body


@pytest.mark.parametrize("msg", TO_PARENT)
@pytest.mark.parametrize("body", BODIES[:2])
def test_to_parent_round_trip(msg: msgspec.Struct, body: bytes) -> None:
    """Child -> parent messages decode to an equal message; the body follows intact."""
    header, got_body = split_frame(encode_header(msg, len(body)) + body)
    assert parent_decoder.decode(header) == msg
    assert got_body == body


@pytest.mark.parametrize("msg", TO_PARENT)
def test_child_decoder_rejects_parent_messages(msg: msgspec.Struct) -> None:
    """A child->parent message is not a valid parent->child message (tags are distinct)."""
    header, _ = split_frame(encode_header(msg))
    with pytest.raises(msgspec.ValidationError):
        child_decoder.decode(header)


@pytest.mark.parametrize("msg", TO_CHILD)
def test_parent_decoder_rejects_child_messages(msg: msgspec.Struct) -> None:
    """A parent->child message is not a valid child->parent message."""
    header, _ = split_frame(encode_header(msg))
    with pytest.raises(msgspec.ValidationError):
        parent_decoder.decode(header)


def test_unknown_tag_is_rejected() -> None:
    """A header with an unknown tag fails to decode instead of being misread."""
    header = msgspec.msgpack.encode(["Bogus", 1, 2])
    with pytest.raises(msgspec.ValidationError):
        parent_decoder.decode(header)


def test_prefix_is_two_little_endian_u32() -> None:
    """The frame prefix is header length then body length, little-endian u32 each."""
    frame = encode_header(RunBatch(1, 1), 258)
    header_len, _ = PREFIX.unpack_from(frame)
    assert PREFIX.size == 8
    assert frame[4:8] == (258).to_bytes(4, "little")
    assert header_len == len(frame) - 8


@pytest.mark.parametrize("msg", TO_CHILD)
@pytest.mark.parametrize("body", BODIES)
def test_worker_channel_reads_parent_frames(msg: msgspec.Struct, body: bytes) -> None:
    """The worker's channel reads a frame the parent wrote to a real pipe, body included."""
    r, w = os.pipe()
    out_r, out_w = os.pipe()
    chan = _Channel(r, out_w)
    try:
        frame = encode_header(msg, len(body)) + body
        # Write from a thread so a body larger than the pipe cannot block the test.
        writer = threading.Thread(target=write_all, args=(w, frame))
        writer.start()
        got = chan.recv()
        writer.join(timeout=30)
        assert got is not None
        assert got[0] == msg
        assert got[1] == body
        assert chan.recv() is None  # EOF after the frame
    finally:
        chan.close()
        os.close(out_r)
        os.close(out_w)


@pytest.mark.parametrize("msg", TO_PARENT)
def test_worker_channel_sends_parseable_frames(msg: msgspec.Struct) -> None:
    """Frames the worker sends parse on the parent side into the same message and body."""
    body = b"row 1\nrow 2\n"
    in_r, in_w = os.pipe()
    r, w = os.pipe()
    chan = _Channel(in_r, w)
    try:
        chan.send(msg, body)
        chan.send(msg)
        data = os.read(r, 1 << 16)
    finally:
        chan.close()
        for fd in (in_w, r, w):
            os.close(fd)
    first_len = PREFIX.size + sum(PREFIX.unpack_from(data))
    header, got_body = split_frame(data[:first_len])
    assert parent_decoder.decode(header) == msg
    assert got_body == body
    header, got_body = split_frame(data[first_len:])
    assert parent_decoder.decode(header) == msg
    assert got_body == b""


def test_truncated_frame_reads_as_eof() -> None:
    """A frame cut short (the parent died mid-write) reads as end of input, not garbage."""
    r, w = os.pipe()
    out_r, out_w = os.pipe()
    chan = _Channel(r, out_w)
    try:
        frame = encode_header(RunBatch(1, 1), 100) + b"x" * 40
        os.write(w, frame)
        os.close(w)
        assert chan.recv() is None
    finally:
        chan.close()
        os.close(out_r)
        os.close(out_w)


# -- the I/O-free framing: FrameDecoder and SendBuffer --------------------------------


def frames_of(*pairs: tuple[msgspec.Struct, bytes]) -> bytes:
    return b"".join(encode_header(m, len(b)) + b for m, b in pairs)


def test_decoder_joins_a_frame_cut_into_pieces() -> None:
    """A frame fed a few bytes at a time comes out once, whole, when its last byte arrives."""
    msg, body = BatchDone(7, 3, 0.5), b"row 1\nrow 2\nrow 3\n"
    data = frames_of((msg, body))
    dec = FrameDecoder(parent_decoder)
    got = []
    for i in range(0, len(data), 3):
        got.extend(dec.feed(data[i : i + 3]))
        if i + 3 < len(data):
            assert got == [] and dec.pending() == i + 3
    assert got == [(msg, body)]
    assert dec.pending() == 0


def test_decoder_returns_several_frames_of_one_read_in_order() -> None:
    """Several frames in one read (plus the start of the next) decode in order."""
    pairs = [(BatchDone(i, i, 0.1), f"{i}\n".encode() * i) for i in range(5)]
    data = frames_of(*pairs)
    tail = frames_of((BatchFailed(9, "E", "m", "tb", 0.1), b"x"))
    dec = FrameDecoder(parent_decoder)
    assert dec.feed(data + tail[:5]) == pairs
    assert dec.feed(tail[5:]) == [(BatchFailed(9, "E", "m", "tb", 0.1), b"x")]


def test_decoder_rejects_an_oversized_frame() -> None:
    """A prefix announcing more than the limit raises FrameTooLarge; earlier frames survive."""
    good = frames_of((Ready(1, 0.1), b""))
    bad = PREFIX.pack(4, 1 << 20) + b"xxxx"
    dec = FrameDecoder(parent_decoder, limit=1 << 16)
    with pytest.raises(FrameTooLarge, match="exceeds the limit") as info:
        dec.feed(good + bad)
    assert info.value.frames == [(Ready(1, 0.1), b"")]
    assert info.value.size == 4 + (1 << 20)


def test_send_buffer_keeps_the_rest_of_a_partial_write() -> None:
    """advance(n) drops exactly n bytes across buffers; the rest is the frames' tail."""
    buf = SendBuffer()
    buf.add(RunBatch(1, 1), b"a" * 10)
    buf.add(RunBatch(2, 1), b"b" * 10)
    whole = b"".join(bytes(p) for p in buf.head(100))
    assert whole == frames_of((RunBatch(1, 1), b"a" * 10), (RunBatch(2, 1), b"b" * 10))
    for cut in (1, 7, 13):  # inside the first header, its body, the second header
        buf.advance(cut)
        whole = whole[cut:]
        assert b"".join(bytes(p) for p in buf.head(100)) == whole
    assert len(buf.head(1)) == 1
    buf.advance(len(whole))
    assert len(buf) == 0
