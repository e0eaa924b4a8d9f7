"""Write scikit-learn's handwritten digits as PGM image files.

Usage::

    python scripts/make_digits.py OUT_DIR [--copies N] [--ascii]

The 1797 8x8 images of :func:`sklearn.datasets.load_digits` are split
deterministically by index:

* the first half (indices ``0 .. n//2 - 1``) is the training set, saved as
  ``OUT_DIR/train.npz`` with arrays ``X`` (float, values 0..16, shape (n, 64))
  and ``y`` (int labels);
* the second half is the test set, written as 8-bit PGM files to
  ``OUT_DIR/images/`` (pixel values scaled from 0..16 to 0..255), so a model
  trained on ``train.npz`` is scored on images it has never seen.

File names embed the dataset index and the true label, e.g.
``digit_00942_label_7.pgm``. With ``--copies N`` (N > 1) the test set is
written N times and every name gets a copy suffix, e.g.
``digit_00942_label_7_copy002.pgm``.

Images are binary PGM (P5) by default, ASCII PGM (P2) with ``--ascii``.
``OUT_DIR/manifest.json`` records what was written so callers can tell
whether existing data can be reused. Existing ``*.pgm`` files in
``OUT_DIR/images/`` are removed first, so the directory holds exactly one set.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST_NAME = "manifest.json"
TRAIN_NAME = "train.npz"
IMAGES_DIR = "images"
MAXVAL = 255
SOURCE_MAX = 16  # load_digits pixel values are integers in 0..16


def _pgm_bytes(pixels: np.ndarray, *, ascii_format: bool) -> bytes:
    """Encode a 2-D uint8 array as a PGM file (P5 binary or P2 ASCII)."""
    height, width = pixels.shape
    if ascii_format:
        rows = "\n".join(" ".join(str(int(v)) for v in row) for row in pixels)
        return f"P2\n# sklearn digits\n{width} {height}\n{MAXVAL}\n{rows}\n".encode()
    header = f"P5\n{width} {height}\n{MAXVAL}\n".encode()
    return header + pixels.astype(np.uint8).tobytes()


def generate(out_dir: Path, copies: int = 1, *, ascii_format: bool = False) -> int:
    """Write ``train.npz``, the test images and the manifest into ``out_dir``.

    Returns the number of image files written.
    """
    from sklearn.datasets import load_digits  # imported here: it is slow-ish

    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")

    digits: Any = load_digits()
    images = np.asarray(digits.images)  # (n, 8, 8) float, 0..16
    labels = np.asarray(digits.target, dtype=np.int64)
    n_total = len(labels)
    n_train = n_total // 2

    out_dir.mkdir(parents=True, exist_ok=True)
    images_dir = out_dir / IMAGES_DIR
    images_dir.mkdir(exist_ok=True)
    for stale in images_dir.glob("*.pgm"):
        stale.unlink()
    manifest_path = out_dir / MANIFEST_NAME
    manifest_path.unlink(missing_ok=True)  # invalid until we finish

    np.savez(
        out_dir / TRAIN_NAME,
        X=images[:n_train].reshape(n_train, -1).astype(np.float64),
        y=labels[:n_train],
    )

    scaled = np.rint(images * (MAXVAL / SOURCE_MAX)).clip(0, MAXVAL).astype(np.uint8)
    encoded = [
        (
            f"digit_{i:05d}_label_{labels[i]}",
            _pgm_bytes(scaled[i], ascii_format=ascii_format),
        )
        for i in range(n_train, n_total)
    ]
    written = 0
    for copy in range(copies):
        suffix = f"_copy{copy:03d}" if copies > 1 else ""
        for stem, payload in encoded:
            (images_dir / f"{stem}{suffix}.pgm").write_bytes(payload)
            written += 1

    manifest = {
        "copies": copies,
        "format": "P2" if ascii_format else "P5",
        "n_train": n_train,
        "n_test": n_total - n_train,
        "n_images": written,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return written


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """Return the manifest of a previous :func:`generate` run, if any."""
    try:
        manifest: dict[str, Any] = json.loads((out_dir / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write sklearn's digits test set as PGM files plus train.npz."
    )
    parser.add_argument("out_dir", type=Path, help="output directory")
    parser.add_argument(
        "--copies",
        type=int,
        default=1,
        help="write the test images N times (default 1)",
    )
    parser.add_argument(
        "--ascii", action="store_true", help="write ASCII PGM (P2) instead of P5"
    )
    args = parser.parse_args(argv)
    if args.copies < 1:
        parser.error("--copies must be >= 1")

    start = time.perf_counter()
    written = generate(args.out_dir, args.copies, ascii_format=args.ascii)
    elapsed = time.perf_counter() - start
    print(
        f"wrote {written} image files to {args.out_dir / IMAGES_DIR} "
        f"and {args.out_dir / TRAIN_NAME} in {elapsed:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
