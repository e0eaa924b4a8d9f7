"""Shared data for the tabular tests: a small mixed-type table written in every format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")


def table(n: int, seed: int = 0) -> Any:
    """n rows: int id, float, text with spaces and quotes, and an int column with nulls."""
    rng = np.random.default_rng(seed)
    maybe = pd.array([None if i % 7 == 3 else i * 3 for i in range(n)], dtype="Int64")
    return pd.DataFrame(
        {
            "id": np.arange(n, dtype="int64"),
            "x": rng.random(n).round(6),
            "text": [f'say "hi" {i}, ok' if i % 5 else f"plain {i}" for i in range(n)],
            "maybe": maybe,
        }
    )


def write(df: Any, path: Path, fmt: str, **kwargs: Any) -> Path:
    """Write ``df`` as csv / tsv / parquet / jsonl."""
    if fmt == "csv":
        df.to_csv(path, index=False, **kwargs)
    elif fmt == "tsv":
        df.to_csv(path, index=False, sep="\t", **kwargs)
    elif fmt == "parquet":
        df.to_parquet(path, index=False, **kwargs)
    else:
        df.to_json(path, orient="records", lines=True)
    return path


@pytest.fixture
def frame() -> Any:
    return table(2000)
