"""Any compiled Keras model trains reproducibly on every path, and resumes bit for bit.

Run: ``pytest tests/test_user_model.py``. Tiny models on 160 random samples, one thread.
"""

from __future__ import annotations

import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from search.errors import SearchError
from search.training import user_model
from search.userdata import UserData

pytestmark = pytest.mark.slow  # trains real (tiny) models

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

WHERE = "study.toml: 'model.build'"


class Jitter(keras.layers.Layer):
    """A custom random layer with a generator of its own, as Keras asks of one."""

    def __init__(self, scale: float = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale = scale
        self.seed_generator = keras.random.SeedGenerator(7)

    def call(self, inputs, training=False):
        if not training:
            return inputs
        return inputs * (1 + self.scale * keras.random.normal(
            keras.ops.shape(inputs), seed=self.seed_generator))


def build_functional(learning_rate: float = 0.01, units: int = 8,
                     dropout: float = 0.3) -> keras.Model:
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(units)(inputs)
    hidden = keras.layers.BatchNormalization()(hidden)
    hidden = keras.layers.Activation("relu")(hidden)
    hidden = keras.layers.Dropout(dropout)(hidden)
    hidden = keras.layers.GaussianNoise(0.1)(hidden)
    outputs = keras.layers.Dense(3, activation="softmax")(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class Subclassed(keras.Model):
    def __init__(self, units: int) -> None:
        super().__init__()
        self.hidden = keras.layers.Dense(units, activation="relu")
        self.normalize = keras.layers.BatchNormalization()
        self.jitter = Jitter()
        self.drop = keras.layers.Dropout(0.3)
        self.out = keras.layers.Dense(3, activation="softmax")

    def call(self, inputs, training=False):
        hidden = self.normalize(self.hidden(inputs), training=training)
        return self.out(self.drop(self.jitter(hidden, training=training), training=training))


def build_subclassed(learning_rate: float = 0.01, units: int = 8) -> keras.Model:
    model = Subclassed(units)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def build_augmented(learning_rate: float = 0.01) -> keras.Model:
    """Random augmentation layers, each with a generator, on 2x3 "images"."""
    model = keras.Sequential([
        keras.Input((6,)), keras.layers.Reshape((2, 3, 1)),
        keras.layers.RandomFlip("horizontal_and_vertical"),
        keras.layers.RandomTranslation(0.3, 0.3), keras.layers.Flatten(),
        keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def tiny_data() -> UserData:
    """160 random samples of 6 features, 3 classes: 100 to train, 30 to validate, 30 to test."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 1).astype(np.int32)
    return UserData(x_train=x[:100], y_train=y[:100], x_valid=x[100:130],
                    y_valid=y[100:130], x_test=x[130:], y_test=y[130:])


@pytest.fixture(scope="module")
def data() -> UserData:
    return tiny_data()


def fresh(builder, data: UserData, global_seed: int = 0) -> keras.Model:
    """A new session and a model built as a trial builds it (then called once)."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(global_seed)
    model = builder()
    user_model.probe(model, data, WHERE)
    return model


@pytest.mark.parametrize("path", user_model.PATHS)
@pytest.mark.parametrize("builder", [build_functional, build_subclassed, build_augmented])
def test_resumed_training_equals_uninterrupted_training(builder, path: str,
                                                        data: UserData) -> None:
    """Killed after epoch 1, rebuilt through the builder in a new session (with another
    global seed, so nothing comes from the initial build) and restored: the same numbers,
    on every path."""
    if path == "xla" and builder is build_augmented:
        pytest.skip("XLA cannot compile RandomTranslation (the rule never picks it there)")
    model = fresh(builder, data)
    assert len(user_model.seed_states(model)) >= 2
    uninterrupted = user_model.train(model, data, batch_size=16, epochs=3, seed=5, path=path)
    expected = user_model.state_arrays(model)

    model = fresh(builder, data)
    first = user_model.train(model, data, batch_size=16, epochs=1, seed=5, path=path)
    snapshot = user_model.state_arrays(model)
    model = fresh(builder, data, global_seed=99)
    user_model.restore_state(model, snapshot)
    rest = user_model.train(model, data, batch_size=16, epochs=3, seed=5, initial_epoch=1,
                            path=path)

    assert first + rest == uninterrupted  # every log of every epoch, exactly
    assert len(uninterrupted) == 3 and {"loss", "val_loss", "val_accuracy"} <= set(rest[0])
    resumed = user_model.state_arrays(model)
    assert len(resumed) == len(expected)
    for got, want in zip(resumed, expected, strict=True):
        np.testing.assert_array_equal(got, want)


class _Disturb(keras.callbacks.Callback):
    """Draws from every global generator around each epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        random.random(), np.random.rand(3), tf.random.uniform((3,))
        keras.random.uniform((3,))

    on_epoch_end = on_epoch_begin


def test_training_depends_on_its_seed_alone(data: UserData) -> None:
    """Nothing is drawn from a global generator: drawing from all of them between epochs,
    and starting the layers' generators elsewhere, changes no number."""
    reference = fresh(build_functional, data)
    initial_weights = reference.get_weights()
    initial_seeds = [state.numpy() for state in user_model.seed_states(reference)]
    expected = user_model.train(reference, data, batch_size=16, epochs=2, seed=5)

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    _Disturb().on_epoch_begin(0)
    model = build_functional()
    model.set_weights(initial_weights)
    assert not all(np.array_equal(state.numpy(), initial) for state, initial in zip(
        user_model.seed_states(model), initial_seeds, strict=True))
    got = user_model.train(model, data, batch_size=16, epochs=2, seed=5, callbacks=[_Disturb()])
    assert got == expected
    assert user_model.train(fresh(build_functional, data), data, batch_size=16, epochs=2,
                          seed=6) != expected  # and the seed does matter


def test_callbacks_see_each_epoch_after_it_ends(data: UserData) -> None:
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(("begin", epoch))

        def on_epoch_end(self, epoch, logs=None):
            seen.append(("end", epoch, sorted(logs)))
            self.model.stop_training = epoch == 2

    model = fresh(build_functional, data)
    logs = user_model.train(model, data, batch_size=32, epochs=5, seed=0, initial_epoch=1,
                          callbacks=[Record()])
    names = ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert seen == [("begin", 1), ("end", 1, names), ("begin", 2), ("end", 2, names)]
    assert len(logs) == 2


def test_probe_reports_metric_names_and_checks_the_objective(data: UserData) -> None:
    names = user_model.probe(build_functional(), data, WHERE)
    assert sorted(names) == ["accuracy", "loss"]
    user_model.check_metric("val_loss", names, WHERE)
    user_model.check_metric("val_accuracy", names, WHERE)
    with pytest.raises(SearchError, match=r"^study.toml: 'model.build': the model reports no "
                       r"'val_mae'; it reports val_(loss|accuracy), val_(loss|accuracy)$"):
        user_model.check_metric("val_mae", names, WHERE)


def _uncompiled() -> keras.Model:
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])


def _takes_eight() -> keras.Model:
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize(("make", "message"), [
    (lambda: 42, r"the builder returned int, not a compiled keras.Model$"),
    (lambda: None, r"the builder returned NoneType, not a compiled keras.Model$"),
    (_uncompiled, r"a keras.Model that is not compiled; call model.compile"),
    (_takes_eight, r"the model does not take x_train of shape \(100, 6\): \w+Error: .*8"),
])
def test_probe_refuses_in_one_line(make, message: str, data: UserData) -> None:
    keras.backend.clear_session()
    with pytest.raises(SearchError, match=f"^{WHERE}: .*{message}") as caught:
        user_model.probe(make(), data, WHERE)
    assert "\n" not in str(caught.value)


def test_probe_refuses_targets_the_loss_does_not_take(data: UserData) -> None:
    one_hot = UserData(data.x_train, np.eye(5, dtype=np.float32)[data.y_train],
                       data.x_valid, data.y_valid)
    with pytest.raises(SearchError, match=rf"^{WHERE}: the model's loss or metrics do not "
                       r"take y_train of shape \(100, 5\): ValueError: .*rank") as caught:
        user_model.probe(build_functional(), one_hot, WHERE)
    assert "\n" not in str(caught.value)


def test_test_scores_and_a_mismatched_checkpoint(data: UserData) -> None:
    model = fresh(build_functional, data)
    scores = user_model.test_scores(model, data, batch_size=16)
    assert sorted(scores) == ["test_accuracy", "test_loss"]
    without_test = UserData(data.x_train, data.y_train, data.x_valid, data.y_valid)
    assert user_model.test_scores(model, without_test, batch_size=16) is None
    other = fresh(lambda: build_functional(units=4), data)
    with pytest.raises(ValueError, match="shape"):
        user_model.restore_state(other, user_model.state_arrays(model))
    with pytest.raises(ValueError, match="arrays for"):
        user_model.restore_state(other, user_model.state_arrays(model)[:-1])
