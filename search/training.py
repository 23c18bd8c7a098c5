"""One trial's training loop, compiled whole: one call into XLA per epoch.

``model.fit`` on numpy arrays pays Python, input-pipeline and dispatch overhead on every
step, which on a CPU costs more than the arithmetic of this small MLP. Here the training
set stays in memory as a tensor and a whole epoch (gather batch, forward, backward, Adam
update, running metrics) is one XLA-compiled ``tf.while_loop``. The results match
``model.fit`` step for step: same loss, same optimizer, same batches, with the last, short
batch of an epoch handled by zero weights rather than a second compiled shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from search.data import Dataset

EVALUATION_CHUNK = 1000  # validation and test sets are evaluated in chunks of this many


def epoch_order(seed: int, epoch: int, size: int) -> np.ndarray:
    """The order of training images in one epoch.

    It depends on the seed and the epoch number alone, so a trial resumed at epoch k sees
    exactly the batches an uninterrupted run would have seen.
    """
    return np.random.default_rng([seed, epoch]).permutation(size).astype(np.int32)


def _batches(order: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices shaped [steps, batch_size] and per-image weights, 0 for padding."""
    steps = math.ceil(len(order) / batch_size)
    padding = steps * batch_size - len(order)
    index = np.concatenate([order, np.zeros(padding, np.int32)]).reshape(steps, batch_size)
    weight = np.concatenate([np.ones(len(order), np.float32),
                             np.zeros(padding, np.float32)]).reshape(steps, batch_size)
    return index, weight


def _loss_and_hits(model: keras.Model, images: tf.Tensor, labels: tf.Tensor,
                   training: bool) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    probabilities = model(images, training=training)
    losses = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
    predicted = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
    return probabilities, losses, tf.cast(tf.equal(predicted, labels), tf.float32)


class CompiledLoop:
    """The compiled epoch and evaluation functions of one compiled model.

    The model must be compiled (its optimizer is used for the updates, so its state is
    what ``model.save`` stores and a checkpoint restores).
    """

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        self.optimizer = model.optimizer
        self.optimizer.build(model.trainable_variables)
        self._train_epoch = tf.function(self._train_epoch_graph, jit_compile=True)
        self._evaluate_chunks = tf.function(self._evaluate_graph, jit_compile=True)

    def _train_epoch_graph(self, images: tf.Tensor, labels: tf.Tensor, index: tf.Tensor,
                           weight: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        variables = self.model.trainable_variables

        def step(position: tf.Tensor, loss_sum: tf.Tensor, hit_sum: tf.Tensor) -> tuple:
            batch_weight = weight[position]
            batch_labels = tf.gather(labels, index[position])
            with tf.GradientTape() as tape:
                _, losses, hits = _loss_and_hits(
                    self.model, tf.gather(images, index[position]), batch_labels, True)
                loss = tf.reduce_sum(losses * batch_weight) / tf.reduce_sum(batch_weight)
            self.optimizer.apply(tape.gradient(loss, variables), variables)
            return (position + 1, loss_sum + tf.reduce_sum(losses * batch_weight),
                    hit_sum + tf.reduce_sum(hits * batch_weight))

        steps = tf.shape(index)[0]
        _, loss_sum, hit_sum = tf.while_loop(
            lambda position, *_: position < steps, step,
            (tf.constant(0), tf.constant(0.0), tf.constant(0.0)))
        count = tf.reduce_sum(weight)
        return loss_sum / count, hit_sum / count

    def _evaluate_graph(self, images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, ...]:
        # images: [chunks, EVALUATION_CHUNK, 28, 28]; one compiled shape for every set.
        def chunk(pair: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
            _, losses, hits = _loss_and_hits(self.model, pair[0], pair[1], False)
            return tf.reduce_sum(losses), tf.reduce_sum(hits)

        loss_sums, hit_sums = tf.map_fn(chunk, (images, labels),
                                        fn_output_signature=(tf.float32, tf.float32))
        return tf.reduce_sum(loss_sums), tf.reduce_sum(hit_sums)

    def train_epoch(self, data: Dataset, seed: int, epoch: int,
                    batch_size: int) -> tuple[float, float]:
        """One epoch over the training set; returns its mean loss and accuracy."""
        index, weight = _batches(epoch_order(seed, epoch, len(data.x_train)), batch_size)
        loss, accuracy = self._train_epoch(data.x_train, data.y_train, index, weight)
        return float(loss), float(accuracy)

    def evaluate(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """Mean loss and accuracy over a whole set."""
        whole = len(images) // EVALUATION_CHUNK * EVALUATION_CHUNK
        loss_sum = hit_sum = 0.0
        if whole:
            shape = (-1, EVALUATION_CHUNK)
            loss, hits = self._evaluate_chunks(images[:whole].reshape(*shape, 28, 28),
                                               labels[:whole].reshape(shape))
            loss_sum, hit_sum = float(loss), float(hits)
        if whole < len(images):  # a set not a multiple of the chunk: the rest, uncompiled
            _, losses, hits = _loss_and_hits(self.model, images[whole:], labels[whole:], False)
            loss_sum += float(tf.reduce_sum(losses))
            hit_sum += float(tf.reduce_sum(hits))
        return loss_sum / len(images), hit_sum / len(images)


def fit(
    model: keras.Model,
    data: Dataset,
    *,
    batch_size: int,
    epochs: int,
    seed: int,
    initial_epoch: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> CompiledLoop:
    """Train ``model`` from ``initial_epoch`` to ``epochs``.

    Callbacks get ``on_epoch_begin`` and ``on_epoch_end(epoch, logs)`` with loss, accuracy,
    val_loss and val_accuracy, as with ``model.fit``. Returns the loop, whose ``evaluate``
    serves the test set without compiling again.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, not {batch_size}")
    if not 0 <= initial_epoch <= epochs:
        raise ValueError(f"initial_epoch {initial_epoch} must lie in 0..{epochs}")
    loop = CompiledLoop(model)
    for callback in callbacks:
        callback.set_model(model)
    for epoch in range(initial_epoch, epochs):
        for callback in callbacks:
            callback.on_epoch_begin(epoch)
        loss, accuracy = loop.train_epoch(data, seed, epoch, batch_size)
        val_loss, val_accuracy = loop.evaluate(data.x_valid, data.y_valid)
        logs = {"loss": loss, "accuracy": accuracy, "val_loss": val_loss,
                "val_accuracy": val_accuracy}
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs)
    return loop
