"""Dropout in the compiled copies of ``search.training.copies``: its layer and its seeds.

Dropout masks come from the copy's own seed generators, which every epoch starts from a
state drawn from the trial's seed and the epoch number (``dropout_seeds``), as the batch
order does: masks never depend on which trials used the copy before, and a trial resumed
at epoch k draws the masks an uninterrupted one would. The trial's own model's generators
are not used (nor checkpointed), and the copy draws its masks with another algorithm
(``_CopyDropout``, which ``clone_layer`` puts in the copy), so they differ from those
``model.fit`` would draw, not in law.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def dropout_seeds(seed: int, epoch: int, count: int) -> np.ndarray:
    """The starting state of each of ``count`` dropout seed generators in one epoch.

    Like ``copies.epoch_order`` it depends on the seed and the epoch alone (a stream of its own).
    Keras's TensorFlow backend keeps a generator's state as int64 [seed, counter].
    """
    seeds = np.random.default_rng([seed, epoch, 1]).integers(0, 2**31 - 1, count)
    return np.stack([seeds, np.zeros(count, np.int64)], axis=1).astype(np.int64)


def seed_states(model: keras.Model) -> list[tf.Variable]:
    """The state variables of ``model``'s seed generators (its dropout layers'), in order:
    what ``model.variables`` holds beyond ``model.weights``."""
    weights = {id(variable) for variable in model.weights}
    return [variable.value for variable in model.variables if id(variable) not in weights]


class _CopyDropout(keras.layers.Dropout):
    """Keras's Dropout, drawing its masks with ThreeFry: for the compiled copies only.

    Keras asks TensorFlow for its default algorithm, which XLA on a CPU runs so slowly that
    an epoch with dropout took over ten times as long as one without (the README's knob
    costs are measured with ThreeFry). Same law (keep with probability 1 - rate, scale by
    1 / (1 - rate)), other random numbers. The trial's own model, which is checkpointed and
    saved, keeps Keras's layer.
    """

    def call(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        if not training or self.rate == 0:
            return inputs
        # The generator's state is int64; TensorFlow's stateless ops take int32 under XLA.
        seed = tf.cast(tf.math.floormod(self.seed_generator.next(), 2**31 - 1), tf.int32)
        return tf.nn.experimental.stateless_dropout(inputs, rate=self.rate, seed=seed,
                                                    rng_alg="threefry")


def clone_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A layer of a trial's model as its copy holds it (``keras.models.clone_model``'s
    ``clone_function``): Keras's Dropout becomes ``_CopyDropout``, the rest stay as they are."""
    if type(layer) is keras.layers.Dropout and layer.noise_shape is None:
        return _CopyDropout.from_config(layer.get_config())
    return layer.__class__.from_config(layer.get_config())
