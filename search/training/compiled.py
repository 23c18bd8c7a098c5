"""One trial's training loop, compiled whole: one call into XLA per epoch.

``model.fit`` on numpy arrays pays Python, input-pipeline and dispatch overhead on every
step, which on a CPU costs more than the arithmetic of this small MLP. Here the training
set stays in memory as a tensor and a whole epoch (gather batch, forward, backward,
optimizer update, running metrics) is one XLA-compiled ``tf.while_loop``. The results match
``model.fit`` step for step: same loss, same optimizer, same batches, with the last, short
batch of an epoch handled by zero weights rather than a second compiled shape.

Compiling costs seconds per shape, so it is done once per worker, not once per trial: a
``CompiledTraining`` object, which the worker holds, keeps for trials whose models share an
architecture and optimizer settings one trainer per batch size (a private copy of the model
and optimizer, with its compiled epoch) and one evaluator. A trial's weights and optimizer
state, learning rate included, are copied into the copy before each epoch and back after
it, so the trial's own model always holds the current state for callbacks and checkpoints.
``compile_ahead`` compiles a study's shapes in a background thread while its first trial
trains; ``close`` waits for that thread.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from search.data import Dataset
from search.training.copies import (
    COPIES_KEPT,
    KEPT,
    Copy,
    Evaluator,
    Trainer,
    architecture_of,
    epoch_order,
    evaluation_chunks,
)
from search.training.dropout import dropout_seeds

logger = logging.getLogger(__name__)


def _return_freed_memory() -> None:
    """Give the memory compiling freed back to the system.

    XLA's compiler allocates a few hundred MB while it works and frees them, but glibc keeps
    freed memory for the process; with one worker per core that is counted once per worker.
    Elsewhere than glibc this does nothing.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class CompiledTraining:
    """The compiled copies and resident tensors that one worker's trials share.

    Use it as a context manager, or call ``close``: a compile-ahead thread still inside XLA
    while the interpreter tears down can crash the exit, so closing lets it finish the
    shape at hand and skip the rest.
    """

    def __init__(self) -> None:
        self._copies: dict[tuple[str, int | None], Copy] = {}  # (architecture, batch size)
        self._lock = threading.Lock()
        # Converting the training images to a tensor every epoch would cost a large share of
        # the epoch. Arrays are converted once and kept while they are in use (the list
        # holds them, so their identities cannot be reused).
        self._resident: list[tuple[tuple[np.ndarray, ...], Any]] = []
        self._stop = threading.Event()
        self._compiling: list[threading.Thread] = []

    def __enter__(self) -> CompiledTraining:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        for thread in self._compiling:
            thread.join()

    def kept(self, arrays: tuple[np.ndarray, ...], make: Callable[[], Any]) -> Any:
        """``make()``, computed once for these very arrays."""
        for known, value in self._resident:
            if len(known) == len(arrays) and all(
                    a is b for a, b in zip(known, arrays, strict=True)):
                return value
        value = make()
        self._resident[:] = [(arrays, value), *self._resident[:KEPT - 1]]
        return value

    def tensor(self, array: np.ndarray) -> tf.Tensor:
        return self.kept((array,), lambda: tf.constant(array))

    def copy_for(self, model: keras.Model, architecture: str, batch_size: int | None) -> Any:
        """The trainer of ``batch_size`` (or the evaluator, for None), made on first use."""
        with self._lock:
            key = (architecture, batch_size)
            if key not in self._copies:
                if len(self._copies) >= COPIES_KEPT:
                    del self._copies[next(iter(self._copies))]
                self._copies[key] = (Evaluator(model) if batch_size is None
                                     else Trainer(model))
            return self._copies[key]

    def compile_ahead(self, model: keras.Model | Sequence[keras.Model], data: Dataset,
                      batch_sizes: Sequence[int]) -> threading.Thread:
        """Compile the evaluation and each batch size's epoch for ``model`` (or for each of
        several models, one per architecture of a study, in order) in the background.

        Training runs on one core, so while the first trial trains, the other core compiles
        what later trials need. The copies are made here, in the calling thread: cloning a
        model draws random numbers, which a background thread would take from under the
        seeded trial the calling thread builds next.
        """
        images, labels = self.tensor(data.train_images), self.tensor(data.y_train)
        jobs: list[Callable[[], None]] = []
        for one in [model] if isinstance(model, keras.Model) else model:
            one.optimizer.build(one.trainable_variables)
            architecture = architecture_of(one)
            jobs.append(self.copy_for(one, architecture, None).compile)
            jobs += [functools.partial(self.copy_for(one, architecture, size).compile, images,
                                       labels, size) for size in batch_sizes]

        def compile_all() -> None:
            try:
                for job in jobs:
                    if self._stop.is_set():
                        return
                    job()
            except Exception as error:  # the trial then compiles for itself
                logger.warning("compiling ahead failed: %s: %s", type(error).__name__, error)
            _return_freed_memory()

        thread = threading.Thread(target=compile_all, name="compile-ahead", daemon=True)
        thread.start()
        self._compiling = [*(known for known in self._compiling if known.is_alive()), thread]
        return thread

    def fit(self, model: keras.Model, data: Dataset, *, batch_size: int, epochs: int,
            seed: int, initial_epoch: int = 0,
            callbacks: Sequence[keras.callbacks.Callback] = ()) -> CompiledLoop:
        """Train ``model`` from ``initial_epoch`` to ``epochs``.

        Callbacks get ``on_epoch_begin`` and ``on_epoch_end(epoch, logs)`` with loss,
        accuracy, val_loss and val_accuracy, as with ``model.fit``. Returns the loop, whose
        ``evaluate`` serves the test set without compiling again.
        """
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, not {batch_size}")
        if not 0 <= initial_epoch <= epochs:
            raise ValueError(f"initial_epoch {initial_epoch} must lie in 0..{epochs}")
        loop = CompiledLoop(model, self)
        for callback in callbacks:
            callback.set_model(model)
        for epoch in range(initial_epoch, epochs):
            for callback in callbacks:
                callback.on_epoch_begin(epoch)
            loss, accuracy = loop.train_epoch(data, seed, epoch, batch_size)
            val_loss, val_accuracy = loop.evaluate(data.valid_images, data.y_valid)
            logs = {"loss": loss, "accuracy": accuracy, "val_loss": val_loss,
                    "val_accuracy": val_accuracy}
            for callback in callbacks:
                callback.on_epoch_end(epoch, logs)
        return loop


class CompiledLoop:
    """Trains and evaluates one compiled model through the copies it shares.

    The model must be compiled: its optimizer's state is what a checkpoint stores and
    restores, and it is the state every epoch starts from.
    """

    def __init__(self, model: keras.Model, shared: CompiledTraining) -> None:
        self.model = model
        self._shared = shared
        model.optimizer.build(model.trainable_variables)
        self._architecture = architecture_of(model)

    def train_epoch(self, data: Dataset, seed: int, epoch: int,
                    batch_size: int) -> tuple[float, float]:
        """One epoch over the training set; returns its mean loss and accuracy."""
        trainer = self._shared.copy_for(self.model, self._architecture, batch_size)
        images, labels = self._shared.tensor(data.train_images), self._shared.tensor(data.y_train)
        with trainer.lock:
            trainer.load(self.model)
            loss, accuracy = trainer.train_epoch(
                images, labels, epoch_order(seed, epoch, len(data.train_images)), batch_size,
                dropout_seeds(seed, epoch, len(trainer.seed_states)))
            trainer.store(self.model)
        return loss, accuracy

    def evaluate(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """Mean loss and accuracy over a whole set of byte images (``Dataset.*_images``)."""
        evaluator = self._shared.copy_for(self.model, self._architecture, None)
        chunks = self._shared.kept((images, labels), lambda: evaluation_chunks(images, labels))
        with evaluator.lock:
            evaluator.load(self.model)
            loss_sum, hit_sum = evaluator.evaluate(chunks)
        return loss_sum / len(images), hit_sum / len(images)
