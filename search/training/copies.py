"""The compiled pieces of a trial: a whole epoch in one XLA call, and chunked evaluation.

A ``Copy`` is a private clone of a trial's model and optimizer that owns compiled
functions; ``search.training.compiled`` decides which trials share which copy. The results
match ``model.fit`` step for step: same loss, same optimizer, same batches, with the last,
short batch of an epoch handled by zero weights rather than a second compiled shape.

How a copy draws its dropout masks, and from which seeds: ``search.training.dropout``.
"""

from __future__ import annotations

import json
import math
import threading
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from search.data import PIXEL_SCALE
from search.training.dropout import clone_layer, dropout_seeds, seed_states

# Validation and test sets are evaluated in chunks of this many: one compiled shape for
# every set. 2,000 rather than 1,000 saves a third of the validation time (fewer calls).
EVALUATION_CHUNK = 2000
KEPT = 8  # resident arrays kept per process; a study needs four
# Compiled copies kept per process: a study needs (batch sizes + 1) per model architecture
# (hidden units, activation, dropout, optimizer); beyond that the oldest is dropped.
COPIES_KEPT = 40


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


def _scaled(images: tf.Tensor) -> tf.Tensor:
    """Byte images as float32 in [0, 1], looked up as search.data.scale does."""
    return tf.gather(tf.constant(PIXEL_SCALE), tf.cast(images, tf.int32))


def _loss_and_hits(model: keras.Model, images: tf.Tensor, labels: tf.Tensor,
                   training: bool) -> tuple[tf.Tensor, tf.Tensor]:
    probabilities = model(_scaled(images), training=training)
    losses = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
    predicted = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
    return losses, tf.cast(tf.equal(predicted, labels), tf.float32)


# The graphs use no Python control flow on tensors, so every tf.function here says
# autograph=False: tracing then never reads source files, which autograph does lazily and
# which an edit made while a study runs would turn into the wrong function.

def evaluation_chunks(images: np.ndarray, labels: np.ndarray) -> list[tuple[tf.Tensor, ...]]:
    """Byte images, labels and weights in chunks of one shape; the last is padded, weight 0."""
    result = []
    for start in range(0, len(images), EVALUATION_CHUNK):
        chunk_images = images[start:start + EVALUATION_CHUNK]
        padding = EVALUATION_CHUNK - len(chunk_images)
        result.append((
            tf.constant(np.pad(chunk_images, [(0, padding), (0, 0), (0, 0)])),
            tf.constant(np.pad(labels[start:start + EVALUATION_CHUNK], [(0, padding)])),
            tf.constant(np.pad(np.ones(len(chunk_images), np.float32), [(0, padding)]))))
    return result


@tf.function(autograph=False)
def _assign_all(sources: list[tf.Variable], targets: list[tf.Variable]) -> None:
    # One compiled call for all variables: a few eager assigns each would cost more than
    # a small epoch's bookkeeping.
    for source, target in zip(sources, targets, strict=True):
        target.assign(source)


class Copy:
    """A private copy of a model and its optimizer; subclasses add compiled functions."""

    def __init__(self, model: keras.Model) -> None:
        self.model = keras.models.clone_model(model, clone_function=clone_layer)
        self.optimizer = type(model.optimizer).from_config(model.optimizer.get_config())
        self.optimizer.build(self.model.trainable_variables)
        # Held while a trial uses the copy and while compile_ahead compiles it, so the two
        # never touch its variables at once.
        self.lock = threading.Lock()

    def _variables(self, model: keras.Model) -> tuple[list[tf.Variable], list[tf.Variable]]:
        """This copy's variables and ``model``'s, in the same order (weights, optimizer)."""
        return ([variable.value for variable in self.model.weights + self.optimizer.variables],
                [variable.value for variable in model.weights + model.optimizer.variables])

    def load(self, model: keras.Model) -> None:
        ours, theirs = self._variables(model)
        _assign_all(theirs, ours)

    def store(self, model: keras.Model) -> None:
        ours, theirs = self._variables(model)
        _assign_all(ours, theirs)


class Trainer(Copy):
    """The compiled epoch of one batch size."""

    def __init__(self, model: keras.Model) -> None:
        super().__init__(model)
        self.seed_states = seed_states(self.model)
        self._train_epoch = tf.function(self._train_epoch_graph, jit_compile=True,
                                        autograph=False)

    def _train_epoch_graph(self, images: tf.Tensor, labels: tf.Tensor, index: tf.Tensor,
                           weight: tf.Tensor, steps: tf.Tensor,
                           seeds: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        variables = self.model.trainable_variables
        # Ordered before the loop by TensorFlow's automatic control dependencies (the loop
        # reads the same variables).
        for position, state in enumerate(self.seed_states):
            state.assign(seeds[position])

        def step(position: tf.Tensor, loss_sum: tf.Tensor, hit_sum: tf.Tensor) -> tuple:
            batch_weight = weight[position]
            batch_labels = tf.gather(labels, index[position])
            with tf.GradientTape() as tape:
                losses, hits = _loss_and_hits(
                    self.model, tf.gather(images, index[position]), batch_labels, True)
                loss = tf.reduce_sum(losses * batch_weight) / tf.reduce_sum(batch_weight)
            self.optimizer.apply(tape.gradient(loss, variables), variables)
            return (position + 1, loss_sum + tf.reduce_sum(losses * batch_weight),
                    hit_sum + tf.reduce_sum(hits * batch_weight))

        # ``steps`` is an argument, not the index's length, so that compile_ahead can
        # compile the full shapes and run no step at all.
        _, loss_sum, hit_sum = tf.while_loop(
            lambda position, *_: position < steps, step,
            (tf.constant(0), tf.constant(0.0), tf.constant(0.0)))
        count = tf.reduce_sum(weight)
        return loss_sum / count, hit_sum / count

    def train_epoch(self, images: tf.Tensor, labels: tf.Tensor, order: np.ndarray,
                    batch_size: int, seeds: np.ndarray) -> tuple[float, float]:
        """One epoch; ``seeds`` starts the dropout generators (``dropout_seeds``)."""
        index, weight = _batches(order, batch_size)
        loss, accuracy = self._train_epoch(images, labels, index, weight,
                                           tf.constant(len(index)), seeds)
        return float(loss), float(accuracy)

    def compile(self, images: tf.Tensor, labels: tf.Tensor, batch_size: int) -> None:
        index, weight = _batches(np.zeros(len(images), np.int32), batch_size)
        with self.lock:
            self._train_epoch(images, labels, index, weight, tf.constant(0),
                              dropout_seeds(0, 0, len(self.seed_states)))


class Evaluator(Copy):
    """Mean loss and accuracy over a set, one compiled chunk at a time."""

    def __init__(self, model: keras.Model) -> None:
        super().__init__(model)
        self._evaluate_chunk = tf.function(self._evaluate_graph, jit_compile=True,
                                           autograph=False)

    def _evaluate_graph(self, images: tf.Tensor, labels: tf.Tensor,
                        weight: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        losses, hits = _loss_and_hits(self.model, images, labels, False)
        return tf.reduce_sum(losses * weight), tf.reduce_sum(hits * weight)

    def evaluate(self, chunks: list[tuple[tf.Tensor, ...]]) -> tuple[float, float]:
        sums = [self._evaluate_chunk(*chunk) for chunk in chunks]
        return sum(float(loss) for loss, _ in sums), sum(float(hits) for _, hits in sums)

    def compile(self) -> None:
        with self.lock:
            self._evaluate_chunk(tf.zeros((EVALUATION_CHUNK, 28, 28), tf.uint8),
                                 tf.zeros(EVALUATION_CHUNK, tf.int32),
                                 tf.zeros(EVALUATION_CHUNK))


def _without_names(config: Any) -> Any:
    if isinstance(config, dict):
        return {key: _without_names(value) for key, value in config.items() if key != "name"}
    if isinstance(config, list):
        return [_without_names(value) for value in config]
    return config


def architecture_of(model: keras.Model) -> str:
    """What the compiled functions depend on: layers and optimizer settings, not names."""
    settings = model.optimizer.get_config()
    if isinstance(settings.get("learning_rate"), float):  # a variable, copied in each epoch
        del settings["learning_rate"]
    return json.dumps(_without_names([model.get_config(), type(model.optimizer).__name__,
                                      settings]), sort_keys=True, default=repr)
