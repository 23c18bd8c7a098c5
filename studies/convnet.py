"""The keras-io simple MNIST convnet, as a builder a study names: ``build = "convnet:build"``.

https://keras.io/examples/vision/mnist_convnet/ with its knobs as keyword arguments. The
service hands MNIST as it does to the built-in MLP: float32 images in [0, 1] of shape
(n, 28, 28) and integer labels, so the model starts by adding the channel axis and uses the
sparse loss (keras-io one-hot encodes the labels instead; the numbers are the same).

Run it: ``python -m search.run --study mnist-convnet``.
"""

from __future__ import annotations

import keras


def build(learning_rate: float, dropout: float = 0.5, filters: int = 32) -> keras.Model:
    """Conv(filters) -> pool -> Conv(2 * filters) -> pool -> Dropout -> Dense 10 softmax,
    compiled with Adam at ``learning_rate``."""
    model = keras.Sequential([
        keras.Input(shape=(28, 28)),
        keras.layers.Reshape((28, 28, 1)),
        keras.layers.Conv2D(filters, kernel_size=(3, 3), activation="relu"),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Conv2D(2 * filters, kernel_size=(3, 3), activation="relu"),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Flatten(),
        keras.layers.Dropout(dropout),
        keras.layers.Dense(10, activation="softmax"),
    ], name="convnet")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
