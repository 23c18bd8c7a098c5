"""A whole epoch of any compiled Keras model in one graph call, with or without XLA.

``model.fit`` runs the model's ``train_step`` once per batch from Python, through its input
pipeline; for a small model on a CPU that overhead costs more than the arithmetic. Here the
data stays in memory as tensors and one ``tf.function`` runs the model's own
``train_step`` (its loss with its ``losses``, its metrics, its optimizer, its layers with
state and their seed generators) in a ``tf.while_loop`` over the epoch's batches, then its
own ``test_step`` over the validation set. Batches are the ones ``model.fit`` would cut
from the same order: full batches in one call, the short last one (if any) in a second.

Without XLA the steps are the operations ``model.fit`` runs, so the numbers match it to
float rounding. With XLA they match ``model.fit(jit_compile=True)`` instead: XLA draws a
random layer's numbers with another algorithm than TensorFlow's kernels.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from search.userdata import length, take

Step = Callable[[Any], Any]


def _batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Indices of the full batches, shaped [steps, batch_size], then those of the short
    last batch, shaped [1, rest], if there is one."""
    full = len(order) // batch_size * batch_size
    parts = [order[:full].reshape(-1, batch_size)] if full else []
    if full < len(order):
        parts.append(order[full:].reshape(1, -1))
    return parts


def resident(arrays: Any) -> Any:
    """Arrays (or a structure of them) as tensors kept in memory, floats other than Keras's
    ``floatx`` cast to it, as ``model.fit``'s data adapter casts them."""
    def one(array: Any) -> tf.Tensor:
        array = np.asarray(array)
        if np.issubdtype(array.dtype, np.floating) and array.dtype != keras.config.floatx():
            array = array.astype(keras.config.floatx())
        return tf.constant(array)

    return tf.nest.map_structure(one, arrays)


def _spec(value: tf.Tensor) -> tf.TensorSpec:
    return tf.TensorSpec([None, *value.shape[1:]], value.dtype)


def _signature(x: Any, y: Any) -> list[Any]:
    return [tf.nest.map_structure(_spec, x), tf.nest.map_structure(_spec, y),
            tf.TensorSpec([None, None], tf.int32)]


def _loop(step: Step, xla: bool, signature: list[Any]) -> Callable[..., None]:
    """``step`` applied to each batch of ``index`` ([steps, batch]) in one graph call.

    Traced once for any number of samples, steps and batch size (the signature leaves
    them open), so the full batches, the short last one, validation and test share one
    trace (a split whose dtypes or sample shapes differ gets its own); XLA still compiles
    once per shape, when first called with it.
    """

    def run(x: Any, y: Any, index: tf.Tensor) -> None:
        def body(i: tf.Tensor) -> tuple[tf.Tensor]:
            rows = index[i]
            step(tf.nest.map_structure(lambda value: tf.gather(value, rows), (x, y)))
            return (i + 1,)

        tf.while_loop(lambda i: i < tf.shape(index)[0], body, (tf.constant(0),))

    # autograph=False: tracing then never reads source files (an edit made while a study
    # runs would otherwise turn into the wrong function).
    return tf.function(run, input_signature=signature, jit_compile=xla, autograph=False)


def state_variables(model: keras.Model) -> list[keras.Variable]:
    """Everything training changes, in a fixed order: the model's variables (weights,
    BatchNormalization statistics, seed states), then the optimizer's (iteration count,
    learning rate, moments)."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return list(model.variables) + list(model.optimizer.variables)


class EpochGraph:
    """One model's epoch and evaluation functions, traced on first use."""

    def __init__(self, model: keras.Model, xla: bool) -> None:
        self.model, self.xla = model, xla
        model.optimizer.build(model.trainable_variables)
        self._built = False
        self._loops: dict[tuple[str, str], Callable[..., None]] = {}

    @contextlib.contextmanager
    def holding(self, model: keras.Model) -> Iterator[None]:
        """Run this graph on ``model``'s state: a model of the same architecture
        (``search.training.shared_graphs``) has its variables copied into this graph's
        model, and back once the block ends."""
        if model is self.model:
            yield
            return
        mine, theirs = state_variables(self.model), state_variables(model)
        for variable, value in zip(mine, theirs, strict=True):
            variable.assign(value)
        yield
        for variable, value in zip(theirs, mine, strict=True):
            variable.assign(value)

    def _run(self, step: str, x: Any, y: Any, order: np.ndarray,
             batch_size: int) -> dict[str, float]:
        if not self._built:
            # The variables a traced step would otherwise create inside the loop (the
            # compiled loss's and metrics'): one eager test step on two samples.
            self.model.test_step((take(x, slice(0, 2)), take(y, slice(0, 2))))
            self._built = True
        signature = _signature(x, y)
        key = (step, repr(signature))
        if key not in self._loops:
            self._loops[key] = _loop(getattr(self.model, step), self.xla, signature)
        self.model.reset_metrics()
        for index in _batches(order, batch_size):
            self._loops[key](x, y, tf.constant(index))
        return {name: float(value) for name, value in self.model.get_metrics_result().items()}

    def train_epoch(self, x: Any, y: Any, order: np.ndarray,
                    batch_size: int) -> dict[str, float]:
        """One epoch over the training tensors in ``order``; the logs ``model.fit`` gives."""
        return self._run("train_step", x, y, order, batch_size)

    def evaluate(self, x: Any, y: Any, batch_size: int) -> dict[str, float]:
        """The model's loss and metrics over a whole set, as ``model.evaluate`` gives them."""
        return self._run("test_step", x, y, np.arange(length(x), dtype=np.int32), batch_size)
