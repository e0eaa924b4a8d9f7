"""Iris scoring: a tabular ParallelRunStep entry script (run() receives a pandas DataFrame).

init() trains a LogisticRegression on scikit-learn's bundled iris data, once per worker.
run() predicts the species of every row and returns a DataFrame ``id, species``; aprs
writes it in input order (``scores.csv``: comma separated, one header line).
"""

from __future__ import annotations

from typing import Any

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
model: Any = None
names: Any = None


def init() -> None:
    global model, names
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris()
    model = LogisticRegression(max_iter=500).fit(iris.data, iris.target)
    names = iris.target_names


def run(mini_batch: Any, mini_batch_context: Any) -> Any:
    import pandas as pd

    predicted = model.predict(mini_batch[FEATURES].to_numpy())
    return pd.DataFrame({"id": mini_batch["id"], "species": names[predicted]})
