"""A regression on data its loader makes: the shipped example of a minimized objective.

``load`` draws a seeded synthetic dataset (no download, the same arrays on every call and
in every worker); ``build`` is a small MLP with loss "mse" and metric "mae". Named by
``studies/regression.toml``; run it: ``python -m search.run --study regression``.
"""

from __future__ import annotations

import keras
import numpy as np

FEATURES = 8
SEED = 2024  # the data's own seed: the study's seed chooses splits and initial weights


def load(train_size: int = 4000, test_size: int = 1000) -> dict[str, np.ndarray]:
    """Eight standard-normal features; the target mixes a sine, a product and a linear
    part, plus noise of standard deviation 0.1 (so the best reachable MSE is about 0.01).

    No validation arrays: the study's ``validation_size`` is held out of the training set.
    """
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(train_size + test_size, FEATURES)).astype(np.float32)
    weights = np.linspace(-1.0, 1.0, FEATURES, dtype=np.float32)
    y = (np.sin(2.0 * x[:, 0]) + 0.5 * x[:, 1] * x[:, 2] + 0.3 * x @ weights
         + 0.1 * rng.normal(size=len(x))).astype(np.float32)
    return {"x_train": x[:train_size], "y_train": y[:train_size],
            "x_test": x[train_size:], "y_test": y[train_size:]}


def build(learning_rate: float, units: int = 32, layers: int = 2,
          dropout: float = 0.0) -> keras.Model:
    """``layers`` Dense ReLU layers of ``units`` (each followed by Dropout when ``dropout``
    > 0) and one linear output, compiled with Adam, loss "mse" and metric "mae"."""
    model = keras.Sequential([keras.Input(shape=(FEATURES,))], name="regression")
    for _ in range(layers):
        model.add(keras.layers.Dense(units, activation="relu"))
        if dropout > 0:
            model.add(keras.layers.Dropout(dropout))
    model.add(keras.layers.Dense(1))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  loss="mse", metrics=["mae"])
    return model
