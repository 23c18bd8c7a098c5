"""The MLP every trial trains, built from plain values (it never sees an Optuna trial)."""

from __future__ import annotations

from collections.abc import Sequence

import keras


def build_model(hidden_units: Sequence[int], learning_rate: float) -> keras.Model:
    """Flatten -> Dense ReLU per ``hidden_units`` -> Dense 10 softmax, compiled with Adam."""
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be positive, not {learning_rate}")
    layers = [keras.Input(shape=(28, 28)), keras.layers.Flatten()]
    layers += [keras.layers.Dense(units, activation="relu") for units in hidden_units]
    layers.append(keras.layers.Dense(10, activation="softmax"))
    model = keras.Sequential(layers, name="mlp")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
