"""Entry script for the digits scoring service: one item = the 64 pixels of an 8x8 digit.

* :func:`init` trains ``SVC(gamma=0.001)`` once per worker on the first half of
  scikit-learn's handwritten digits (the same split as ``examples/digits``), so the
  service needs no data files.
* :func:`run` gets a mini-batch of items, each a list of 64 numbers in ``0..16``
  (the range of ``sklearn.datasets.load_digits``), classifies the whole batch with one
  ``predict`` call and returns one ``int`` label per item. An item of the wrong shape or
  range raises ``ValueError`` naming it: the Runner isolates such an item, so only its
  caller gets the error.
* :func:`shutdown` runs when the worker stops and says so on stderr (the service's tests
  check that every worker ran it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

N_FEATURES = 64
PIXEL_MAX = 16.0

_model: Any = None


def init() -> None:
    """Train the classifier once per worker process."""
    global _model
    from sklearn.datasets import load_digits
    from sklearn.svm import SVC

    digits: Any = load_digits()
    n_train = len(digits.target) // 2
    model = SVC(gamma=0.001)
    model.fit(digits.data[:n_train], digits.target[:n_train])
    _model = model


def _check(item: Any) -> list[float]:
    if not isinstance(item, (list, tuple)) or len(item) != N_FEATURES:
        raise ValueError(
            f"an item must be a list of {N_FEATURES} pixels, got {item!r:.80}"
        )
    values = [float(v) for v in item]
    if not all(0.0 <= v <= PIXEL_MAX for v in values):
        raise ValueError(f"pixel values must be in 0..{PIXEL_MAX:g}, got {item!r:.80}")
    return values


def run(mini_batch: Sequence[Any]) -> list[int]:
    """Classify a mini-batch of 64-pixel items; one label per item, in order."""
    if not mini_batch:
        return []
    features = np.asarray([_check(item) for item in mini_batch], dtype=np.float64)
    return [int(label) for label in _model.predict(features)]


def shutdown() -> None:
    """Called once when the worker stops."""
    print(f"score.py: worker {os.getpid()} shut down", file=sys.stderr, flush=True)
