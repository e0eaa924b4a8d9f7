"""Entry script of the tabular benchmark: iris LogisticRegression, DataFrame in and out.

init() trains scikit-learn's LogisticRegression on the iris data set (bundled with
scikit-learn); run() predicts a class per row and returns ``id, prediction``.
"""

from __future__ import annotations

from typing import Any

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
model: Any = None


def init() -> None:
    global model
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)


def run(mini_batch: Any) -> Any:
    import pandas as pd

    prediction = model.predict(mini_batch[FEATURES].to_numpy())
    return pd.DataFrame({"id": mini_batch["id"].to_numpy(), "prediction": prediction})


def score_text(mini_batch: Any) -> str:
    """The peers' form: the same rows, formatted as CSV text in the worker."""
    out = run(mini_batch)
    return str(out.to_csv(header=False, index=False))
