"""One trial's training loop, compiled whole: one call into XLA per epoch.

``model.fit`` on numpy arrays pays Python, input-pipeline and dispatch overhead on every
step, which on a CPU costs more than the arithmetic of this small MLP. Here the training
set stays in memory as a tensor and a whole epoch (gather batch, forward, backward, Adam
update, running metrics) is one XLA-compiled ``tf.while_loop``. The results match
``model.fit`` step for step: same loss, same optimizer, same batches, with the last, short
batch of an epoch handled by zero weights rather than a second compiled shape.

Compiling costs about two seconds per shape, so it is done once per process, not once per
trial: trials whose models share an architecture and optimizer settings share one trainer
per batch size (a private copy of the model and optimizer, with its compiled epoch) and one
evaluator. A trial's weights and optimizer state, learning rate included, are copied into
the copy before each epoch and back after it, so the trial's own model always holds the
current state for callbacks and checkpoints. ``compile_ahead`` compiles a study's shapes in
a background thread while its first trial trains.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from search.data import Dataset

logger = logging.getLogger(__name__)

# Validation and test sets are evaluated in chunks of this many: one compiled shape for
# every set. 2,000 rather than 1,000 saves a third of the validation time (fewer calls).
EVALUATION_CHUNK = 2000
_KEPT = 8  # copies and resident arrays kept per process; a study needs four and four


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
                   training: bool) -> tuple[tf.Tensor, tf.Tensor]:
    probabilities = model(images, training=training)
    losses = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
    predicted = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
    return losses, tf.cast(tf.equal(predicted, labels), tf.float32)


# The graphs use no Python control flow on tensors, so every tf.function here says
# autograph=False: tracing then never reads source files, which autograph does lazily and
# which an edit made while a study runs would turn into the wrong function.

# Converting the 54,000 training images to a tensor takes 0.2 s; done every epoch, that
# alone was a quarter of an epoch. Arrays are converted once and kept while they are in use.
_resident: list[tuple[tuple[np.ndarray, ...], Any]] = []


def _kept(arrays: tuple[np.ndarray, ...], make: Callable[[], Any]) -> Any:
    """``make()``, computed once for these very arrays (the list holds them, so their
    identities cannot be reused)."""
    for known, value in _resident:
        if len(known) == len(arrays) and all(
                a is b for a, b in zip(known, arrays, strict=True)):
            return value
    value = make()
    _resident[:] = [(arrays, value), *_resident[:_KEPT - 1]]
    return value


def _resident_tensor(array: np.ndarray) -> tf.Tensor:
    return _kept((array,), lambda: tf.constant(array))


def _chunks(images: np.ndarray, labels: np.ndarray) -> list[tuple[tf.Tensor, ...]]:
    """Images, labels and weights in chunks of one shape; the last is padded, weight 0."""
    chunks = []
    for start in range(0, len(images), EVALUATION_CHUNK):
        chunk_images = images[start:start + EVALUATION_CHUNK]
        padding = EVALUATION_CHUNK - len(chunk_images)
        chunks.append((
            tf.constant(np.pad(chunk_images, [(0, padding), (0, 0), (0, 0)])),
            tf.constant(np.pad(labels[start:start + EVALUATION_CHUNK], [(0, padding)])),
            tf.constant(np.pad(np.ones(len(chunk_images), np.float32), [(0, padding)]))))
    return chunks


@tf.function(autograph=False)
def _assign_all(sources: list[tf.Variable], targets: list[tf.Variable]) -> None:
    # One call for all variables: 1 ms, where one eager assign each took 5 ms.
    for source, target in zip(sources, targets, strict=True):
        target.assign(source)


class _Copy:
    """A private copy of a model and its optimizer; subclasses add compiled functions."""

    def __init__(self, model: keras.Model) -> None:
        self.model = keras.models.clone_model(model)
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


class _Trainer(_Copy):
    """The compiled epoch of one batch size."""

    def __init__(self, model: keras.Model) -> None:
        super().__init__(model)
        self._train_epoch = tf.function(self._train_epoch_graph, jit_compile=True,
                                        autograph=False)

    def _train_epoch_graph(self, images: tf.Tensor, labels: tf.Tensor, index: tf.Tensor,
                           weight: tf.Tensor, steps: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        variables = self.model.trainable_variables

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
                    batch_size: int) -> tuple[float, float]:
        index, weight = _batches(order, batch_size)
        loss, accuracy = self._train_epoch(images, labels, index, weight,
                                           tf.constant(len(index)))
        return float(loss), float(accuracy)

    def compile(self, images: tf.Tensor, labels: tf.Tensor, batch_size: int) -> None:
        index, weight = _batches(np.zeros(len(images), np.int32), batch_size)
        with self.lock:
            self._train_epoch(images, labels, index, weight, tf.constant(0))


class _Evaluator(_Copy):
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
            self._evaluate_chunk(tf.zeros((EVALUATION_CHUNK, 28, 28)),
                                 tf.zeros(EVALUATION_CHUNK, tf.int32),
                                 tf.zeros(EVALUATION_CHUNK))


def _without_names(config: Any) -> Any:
    if isinstance(config, dict):
        return {key: _without_names(value) for key, value in config.items() if key != "name"}
    if isinstance(config, list):
        return [_without_names(value) for value in config]
    return config


def _architecture(model: keras.Model) -> str:
    """What the compiled functions depend on: layers and optimizer settings, not names."""
    settings = model.optimizer.get_config()
    if isinstance(settings.get("learning_rate"), float):  # a variable, copied in each epoch
        del settings["learning_rate"]
    return json.dumps(_without_names([model.get_config(), type(model.optimizer).__name__,
                                      settings]), sort_keys=True, default=repr)


_copies: dict[tuple[str, int | None], _Copy] = {}  # (architecture, batch size or None)
_copies_lock = threading.Lock()


def _copy_for(model: keras.Model, architecture: str, batch_size: int | None) -> Any:
    """The trainer of ``batch_size`` (or the evaluator, for None), made on first use."""
    with _copies_lock:
        key = (architecture, batch_size)
        if key not in _copies:
            if len(_copies) >= _KEPT:
                del _copies[next(iter(_copies))]
            _copies[key] = _Evaluator(model) if batch_size is None else _Trainer(model)
        return _copies[key]


def clear_compiled() -> None:
    """Forget every compiled copy and resident array: the next trial compiles again."""
    with _copies_lock:
        _copies.clear()
    _resident.clear()


def compile_ahead(model: keras.Model, data: Dataset,
                  batch_sizes: Sequence[int]) -> threading.Thread:
    """Compile the evaluation and each batch size's epoch for ``model`` in the background.

    Training runs on one core (see ``search.runner``), so while the first trial trains,
    the other core compiles what later trials need. The copies are made here, in the
    calling thread: cloning a model draws random numbers, which a background thread would
    take from under the seeded trial the calling thread builds next.
    """
    model.optimizer.build(model.trainable_variables)
    architecture = _architecture(model)
    images, labels = _resident_tensor(data.x_train), _resident_tensor(data.y_train)
    evaluator = _copy_for(model, architecture, None)
    trainers = [(_copy_for(model, architecture, size), size) for size in batch_sizes]

    jobs = [evaluator.compile] + [functools.partial(trainer.compile, images, labels, size)
                                  for trainer, size in trainers]

    def compile_all() -> None:
        try:
            for job in jobs:
                if _stop_compiling.is_set():
                    return
                job()
        except Exception as error:  # the trial then compiles for itself
            logger.warning("compiling ahead failed: %s: %s", type(error).__name__, error)

    thread = threading.Thread(target=compile_all, name="compile-ahead", daemon=True)
    thread.start()
    _compiling[:] = [*(known for known in _compiling if known.is_alive()), thread]
    return thread


_stop_compiling = threading.Event()
_compiling: list[threading.Thread] = []


@atexit.register
def _finish_compiling() -> None:
    # A thread still inside XLA while the interpreter tears down can crash the exit: let it
    # finish the shape at hand (two seconds at most) and skip the rest.
    _stop_compiling.set()
    for thread in _compiling:
        thread.join()


class CompiledLoop:
    """Trains and evaluates one compiled model through the copies it shares.

    The model must be compiled: its optimizer's state is what ``model.save`` stores and a
    checkpoint restores, and it is the state every epoch starts from.
    """

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        model.optimizer.build(model.trainable_variables)
        self._architecture = _architecture(model)

    def train_epoch(self, data: Dataset, seed: int, epoch: int,
                    batch_size: int) -> tuple[float, float]:
        """One epoch over the training set; returns its mean loss and accuracy."""
        trainer = _copy_for(self.model, self._architecture, batch_size)
        images, labels = _resident_tensor(data.x_train), _resident_tensor(data.y_train)
        with trainer.lock:
            trainer.load(self.model)
            loss, accuracy = trainer.train_epoch(
                images, labels, epoch_order(seed, epoch, len(data.x_train)), batch_size)
            trainer.store(self.model)
        return loss, accuracy

    def evaluate(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """Mean loss and accuracy over a whole set."""
        evaluator = _copy_for(self.model, self._architecture, None)
        chunks = _kept((images, labels), lambda: _chunks(images, labels))
        with evaluator.lock:
            evaluator.load(self.model)
            loss_sum, hit_sum = evaluator.evaluate(chunks)
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
