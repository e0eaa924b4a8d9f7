"""Entry script: classify handwritten-digit PGM images with scikit-learn.

This follows the ParallelRunStep entry-script contract:

* :func:`init` is called once per worker process. It parses the script's own
  arguments (``--train-data PATH`` to a ``train.npz`` with arrays ``X`` and
  ``y``; ``--model {svc,logreg}``) from ``sys.argv`` with
  ``parse_known_args()`` -- unknown arguments are ignored -- and trains the
  classifier once, keeping it in a module global.
* :func:`run` is called per mini-batch with a list of image file paths. It
  reads every file (8-bit or 16-bit PGM, binary P5 or ASCII P2), classifies
  the whole batch with a single ``predict`` call and returns one line per
  file: ``"<file basename>,<predicted>,<true label from name>"``. The true
  label is taken from a ``_label_<digit>`` part of the file name, or ``?``
  when the name has none.

Pixel values are rescaled from ``0..maxval`` to ``0..16``, the range of the
training data produced by ``scripts/make_digits.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, Protocol

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

FEATURE_MAX = 16.0  # pixel range of sklearn's digits (and of train.npz)
_WHITESPACE = b" \t\n\v\f\r"
_COMMENT = ord("#")
_LABEL_RE = re.compile(r"_label_(\d+)")


class Classifier(Protocol):
    """The part of the scikit-learn estimator API this script uses."""

    def fit(self, X: Any, y: Any) -> Any: ...
    def predict(self, X: Any) -> Any: ...


_model: Classifier | None = None
_n_features: int = 0


# --------------------------------------------------------------------------- PGM


def _next_token(data: bytes, pos: int) -> tuple[bytes, int]:
    """Return the next header token at or after ``pos`` and the position after it.

    Whitespace and ``#`` comments (up to the end of the line) are skipped.
    """
    end = len(data)
    while pos < end:
        byte = data[pos]
        if byte in _WHITESPACE:
            pos += 1
        elif byte == _COMMENT:
            while pos < end and data[pos] not in b"\r\n":
                pos += 1
        else:
            break
    start = pos
    while pos < end and data[pos] not in _WHITESPACE and data[pos] != _COMMENT:
        pos += 1
    if start == pos:
        raise ValueError("truncated PGM header")
    return data[start:pos], pos


def _header_int(data: bytes, pos: int, name: str) -> tuple[int, int]:
    token, pos = _next_token(data, pos)
    try:
        value = int(token)
    except ValueError:
        raise ValueError(f"bad PGM {name}: {token!r}") from None
    if value <= 0:
        raise ValueError(f"bad PGM {name}: {value}")
    return value, pos


def parse_pgm(data: bytes) -> tuple[NDArray[np.uint16], int]:
    """Parse a PGM image (P5 binary or P2 ASCII).

    Returns ``(pixels, maxval)`` where ``pixels`` has shape ``(height, width)``.
    Only the first image of a multi-image P5 file is read.
    """
    magic = data[:2]
    if magic not in (b"P5", b"P2"):
        raise ValueError(f"not a PGM file (magic {magic!r})")
    pos = 2
    width, pos = _header_int(data, pos, "width")
    height, pos = _header_int(data, pos, "height")
    maxval, pos = _header_int(data, pos, "maxval")
    if maxval > 65535:
        raise ValueError(f"bad PGM maxval: {maxval}")
    count = width * height

    if magic == b"P5":
        # Exactly one whitespace byte separates the header from the raster.
        if pos >= len(data) or data[pos] not in _WHITESPACE:
            raise ValueError("missing whitespace after PGM header")
        pos += 1
        dtype = np.dtype(np.uint8) if maxval < 256 else np.dtype(">u2")
        nbytes = count * dtype.itemsize
        if len(data) - pos < nbytes:
            raise ValueError(f"truncated PGM raster: need {nbytes} bytes")
        flat = np.frombuffer(data, dtype=dtype, count=count, offset=pos)
    else:
        body = re.sub(rb"#[^\r\n]*", b"", data[pos:])
        values = body.split()
        if len(values) < count:
            raise ValueError(f"truncated PGM raster: {len(values)} of {count} values")
        try:
            flat = np.array([int(v) for v in values[:count]], dtype=np.int64)
        except ValueError:
            raise ValueError("non-integer value in P2 raster") from None
        if flat.min(initial=0) < 0:
            raise ValueError("negative value in P2 raster")

    pixels = flat.astype(np.uint16).reshape(height, width)
    if int(flat.max(initial=0)) > maxval:
        raise ValueError(f"pixel value above maxval {maxval}")
    return pixels, maxval


def read_pgm(path: str | os.PathLike[str]) -> tuple[NDArray[np.uint16], int]:
    """Read a PGM file; errors name the offending file."""
    try:
        return parse_pgm(Path(path).read_bytes())
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


# ------------------------------------------------------------------ entry script


class _ArgumentParser(argparse.ArgumentParser):
    """Raise instead of calling ``sys.exit`` so a worker reports a clear error."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(f"{self.prog}: {message}")


def _build_classifier(kind: str) -> Classifier:
    model: Classifier
    if kind == "svc":
        from sklearn.svm import SVC

        model = SVC(gamma=0.001)  # the classic setting for this data set
    else:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(max_iter=5000)
    return model


def init(argv: Sequence[str] | None = None) -> None:
    """Train the classifier once per worker process.

    ``argv`` defaults to ``sys.argv[1:]``; arguments this script does not
    know about are ignored.
    """
    global _model, _n_features

    parser = _ArgumentParser(prog="score.py", add_help=False)
    parser.add_argument("--train-data", type=Path, required=True)
    parser.add_argument("--model", choices=("svc", "logreg"), default="svc")
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        logger.debug("ignoring unknown arguments: %s", unknown)

    start = time.perf_counter()
    with np.load(args.train_data) as train:
        X = np.asarray(train["X"], dtype=np.float64)
        y = np.asarray(train["y"])
    if X.ndim != 2 or len(X) != len(y) or len(y) == 0:
        raise ValueError(f"{args.train_data}: expected X (n, features) and y (n,)")
    model = _build_classifier(args.model)
    model.fit(X, y)
    elapsed = time.perf_counter() - start

    _model, _n_features = model, X.shape[1]
    logger.info(
        "trained %s on %d images (%d features) in %.3f s (pid %d)",
        args.model,
        len(y),
        _n_features,
        elapsed,
        os.getpid(),
    )


def _features(path: str | os.PathLike[str]) -> NDArray[np.float64]:
    pixels, maxval = read_pgm(path)
    if pixels.size != _n_features:
        raise ValueError(
            f"{path}: image has {pixels.size} pixels, model expects {_n_features}"
        )
    return pixels.reshape(-1).astype(np.float64) * (FEATURE_MAX / maxval)


def true_label(name: str) -> str:
    """Return the label embedded in a file name (``..._label_7...``), or ``?``."""
    match = _LABEL_RE.search(name)
    return match.group(1) if match else "?"


def run(mini_batch: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Classify a batch of PGM files; one ``name,predicted,true`` line per file."""
    if _model is None:
        raise RuntimeError("init() must be called before run()")
    if not mini_batch:
        return []
    X = np.stack([_features(path) for path in mini_batch])
    predicted = _model.predict(X)
    names = [Path(path).name for path in mini_batch]
    return [
        f"{name},{int(label)},{true_label(name)}"
        for name, label in zip(names, predicted, strict=True)
    ]
