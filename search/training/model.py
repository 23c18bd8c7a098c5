"""The MLP every trial trains, built from plain values (it never sees an Optuna trial)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from search import knobs


def build_model(hidden_units: Sequence[int], learning_rate: float, *,
                activation: str = "relu", dropout: float = 0.0,
                optimizer: str = "adam") -> keras.Model:
    """Flatten -> (Dense ``activation`` [-> Dropout]) per ``hidden_units`` -> Dense 10 softmax,
    compiled with ``optimizer``.

    Dropout layers exist only when ``dropout`` > 0, so the defaults build exactly the seed's
    MLP (Flatten, Dense 128 ReLU, Dense 64 ReLU, Dense 10 softmax; Adam).
    """
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be positive, not {learning_rate}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must lie in [0, 1), not {dropout}")
    if optimizer not in knobs.OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(knobs.OPTIMIZERS)}, "
                         f"not {optimizer!r}")
    layers = [keras.Input(shape=(28, 28)), keras.layers.Flatten()]
    for units in hidden_units:
        layers.append(keras.layers.Dense(units, activation=activation))
        if dropout > 0:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(10, activation="softmax"))
    model = keras.Sequential(layers, name="mlp")
    model.compile(
        # Keras resolves the name, with its defaults besides the learning rate.
        optimizer=keras.optimizers.get({"class_name": optimizer,
                                        "config": {"learning_rate": learning_rate}}),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
