"""Every path a [model] study can train on gives model.fit's numbers; the rule that picks one.

Run: ``pytest tests/test_paths.py``. The rule's tests build models without training them
(fast tier); the paths' tests train a tiny BatchNormalization + Dropout model on 100
random samples, one thread.
"""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from search.training import path_choice, user_model
from search.training.copies import epoch_order
from search.userdata import UserData
from tests.test_user_model import (
    build_augmented,
    build_functional,
    build_subclassed,
    fresh,
    tiny_data,
)

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)


def _compiled(model: keras.Model, **settings) -> keras.Model:
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], **settings)
    return model


def dense(dropout: float = 0.0, units: int = 8, **settings) -> keras.Model:
    layers = [keras.Input((6,)), keras.layers.Dense(units), keras.layers.BatchNormalization(),
              keras.layers.ReLU()]
    layers += [keras.layers.Dropout(dropout)] if dropout else []
    return _compiled(keras.Sequential([*layers, keras.layers.Dense(3, activation="softmax")]),
                     **settings)


def convnet() -> keras.Model:
    return _compiled(keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.MaxPooling2D(), keras.layers.Flatten(),
        keras.layers.Dense(3, activation="softmax")]))


@pytest.mark.parametrize(("make", "path", "why"), [
    (dense, "xla", r"^dense, normalization and reshaping layers only"),
    (lambda: dense(dropout=0.2), "graph", r"^Dropout: random numbers"),
    (convnet, "graph", r"^Conv2D, MaxPooling2D: not among the layers XLA runs fast"),
    (lambda: build_subclassed(), "graph", r"^a subclassed model \(Subclassed\)"),
    (lambda: dense(run_eagerly=True), "fit", r"run_eagerly=True"),
])
def test_the_rule_picks_a_path_by_the_layers(make, path: str, why: str) -> None:
    keras.backend.clear_session()
    choice = path_choice.choose(make())
    assert choice.path == path
    assert re.search(why, choice.why), choice.why


def test_an_architecture_is_its_layers_not_their_sizes_nor_the_learning_rate() -> None:
    keras.backend.clear_session()
    first = path_choice.architecture(dense(units=8))
    assert path_choice.architecture(dense(units=32)) == first  # same path, same record
    assert path_choice.architecture(dense(dropout=0.2)) != first
    assert path_choice.architecture(convnet()) != first
    assert path_choice.summary(dense(dropout=0.2)) == \
        "Dense x2, BatchNormalization, ReLU, Dropout"


@pytest.fixture(scope="module")
def data() -> UserData:
    return tiny_data()


def plain_fit(model: keras.Model, data: UserData, epochs: int, seed: int) -> list[dict]:
    """The reference: model.fit, epoch by epoch, on the batches and seeds the paths use."""
    history = []
    for epoch in range(epochs):
        order = epoch_order(seed, epoch, len(data.x_train))
        user_model.reset_seeds(model, seed, epoch)
        result = model.fit(data.x_train[order], data.y_train[order], batch_size=16,
                           shuffle=False, validation_data=(data.x_valid, data.y_valid),
                           verbose=0)
        history.append({name: values[-1] for name, values in result.history.items()})
    return history


# BatchNormalization, Dropout and GaussianNoise (build_functional); a subclassed model with
# a custom random layer; random image augmentation. 100 samples at batch 16: a short last
# batch in every epoch.
@pytest.mark.slow
@pytest.mark.parametrize("path", ["graph", "xla", "fit"])
@pytest.mark.parametrize("builder", [build_functional, build_subclassed, build_augmented])
def test_every_path_matches_model_fit(builder, path: str, data: UserData) -> None:
    """Without XLA the steps are model.fit's own: the numbers agree to float rounding. XLA
    draws the random layers' numbers with another algorithm, so an XLA path matches
    model.fit compiled by XLA (jit_compile=True); it cannot compile image transforms."""
    if path == "xla" and builder is build_augmented:
        pytest.skip("XLA cannot compile RandomTranslation (the rule never picks it there)")
    reference = fresh(builder, data)
    reference.jit_compile = path == "xla"
    expected = plain_fit(reference, data, epochs=2, seed=5)
    model = fresh(builder, data)
    got = user_model.train(model, data, batch_size=16, epochs=2, seed=5, path=path)
    assert [sorted(logs) for logs in got] == [sorted(logs) for logs in expected]
    for logs, want in zip(got, expected, strict=True):
        assert logs == pytest.approx(want, rel=1e-5, abs=1e-6)
    for value, want in zip(user_model.state_arrays(model), user_model.state_arrays(reference),
                           strict=True):
        np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("path", ["graph", "xla"])
def test_the_paths_differ_from_each_other_only_where_xla_draws_other_numbers(
        path: str, data: UserData) -> None:
    """Without random layers the XLA path and the graph give model.fit's numbers too."""
    model = fresh(dense, data)
    expected = plain_fit(fresh(dense, data), data, epochs=2, seed=5)
    got = user_model.train(model, data, batch_size=16, epochs=2, seed=5, path=path)
    for logs, want in zip(got, expected, strict=True):
        assert logs == pytest.approx(want, rel=1e-4, abs=1e-6)


def _two_architectures(learning_rate: float, dropout: float) -> keras.Model:
    model = dense(dropout=dropout)
    model.optimizer.learning_rate = learning_rate
    return model


@pytest.mark.slow
def test_a_study_records_each_architectures_path_and_keeps_it(tmp_path, capsys) -> None:
    """Chosen once per architecture, said once, recorded on the study; a later run (here:
    more replicates) trains on the recorded path, not on what the rule says now."""
    import optuna

    import search
    from search.study import points

    rng = np.random.default_rng(1)
    arrays = {"x_train": rng.normal(size=(120, 6)).astype(np.float32),
              "y_train": rng.integers(0, 3, 120)}
    definition = search.StudyDefinition(
        name="two", search_space={"learning_rate": [0.01, 0.1], "dropout": [0.0, 0.3]},
        epochs=1, validation_size=20, metric="val_loss", direction="minimize")
    url = f"sqlite:///{tmp_path}/two.db"
    search.run_study(definition, build=_two_architectures, data=arrays, workers=1,
                     storage_url=url)
    said = [line for line in capsys.readouterr().err.splitlines()
            if line.startswith("training path:")]
    assert said == [
        "training path: xla for Dense x2, BatchNormalization, ReLU (dense, normalization "
        "and reshaping layers only: one XLA call per epoch)",
        "training path: graph for Dense x2, BatchNormalization, ReLU, Dropout (Dropout: "
        "random numbers, which XLA on a CPU draws far more slowly)"]
    study = optuna.load_study(study_name="two", storage=url)
    recorded = study.user_attrs[points.PATHS]
    assert sorted(choice["path"] for choice in recorded.values()) == ["graph", "xla"]
    assert {(t.params["dropout"], t.user_attrs[points.PATH]) for t in study.trials} == {
        (0.0, "xla"), (0.3, "graph")}

    dense_only = next(key for key, choice in recorded.items() if choice["path"] == "xla")
    study.set_user_attr(points.PATHS, {**recorded, dense_only: {**recorded[dense_only],
                                                                 "path": "fit"}})
    search.run_study(definition, build=_two_architectures, data=arrays, workers=1,
                     storage_url=url, repeats=2)
    assert "training path: fit for Dense x2, BatchNormalization, ReLU" in capsys.readouterr().err
    later = [t for t in optuna.load_study(study_name="two", storage=url).trials
             if t.user_attrs[points.REPLICATE] == 1]
    assert {(t.params["dropout"], t.user_attrs[points.PATH]) for t in later} == {
        (0.0, "fit"), (0.3, "graph")}


@pytest.mark.slow
@pytest.mark.parametrize("path", ["graph", "xla"])
def test_trials_sharing_a_workers_graph_match_trials_with_their_own(path: str,
                                                                    data: UserData) -> None:
    """A worker traces once per architecture; a trial trained through another trial's
    graph (its state copied in and back) ends with its own graph's numbers, exactly."""
    from search.training.shared_graphs import SharedGraphs, sharing_key

    def trial(learning_rate: float, seed: int, graphs: SharedGraphs | None):
        model = fresh(lambda: build_functional(learning_rate), data)
        graph = graphs.graph_for(model, path == "xla") if graphs else None
        logs = user_model.train(model, data, batch_size=16, epochs=2, seed=seed, path=path,
                                graph=graph)
        scores = user_model.test_scores(model, data, 16, path, graph)
        return logs, scores, user_model.state_arrays(model), graph

    alone = trial(0.01, 5, None)
    graphs = SharedGraphs()
    other = trial(0.1, 6, graphs)
    shared = trial(0.01, 5, graphs)
    assert shared[3] is other[3]  # one graph, built on the first trial's model
    assert shared[:2] == alone[:2] and other[:2] != alone[:2]
    for got, want in zip(shared[2], alone[2], strict=True):
        np.testing.assert_array_equal(got, want)
    keras.backend.clear_session()
    assert sharing_key(build_subclassed()) is None  # its call is not in its configuration


@pytest.mark.slow
def test_float64_arrays_are_cast_as_model_fit_casts_them(data: UserData) -> None:
    """model.fit's data adapter casts floats to floatx; the graph paths do the same."""
    wide = UserData(*(array.astype(np.float64) for array in (
        data.x_train, data.y_train, data.x_valid, data.y_valid, data.x_test, data.y_test)))
    expected = plain_fit(fresh(build_functional, data), wide, epochs=1, seed=5)
    got = user_model.train(fresh(build_functional, data), wide, batch_size=16, epochs=1,
                           seed=5, path="graph")
    assert got[0] == pytest.approx(expected[0], rel=1e-5, abs=1e-6)


def _scaled_loss(scale: float):
    def loss(y_true, y_pred):  # serialized by its name alone: `scale` is in no config
        return scale * keras.losses.sparse_categorical_crossentropy(y_true, y_pred)

    return loss


class _Inner(keras.Model):
    """A subclassed model nested in a functional one; ``scale`` is not in its config."""

    def __init__(self, scale: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.dense, self.scale = keras.layers.Dense(4), scale

    def call(self, inputs):
        return self.dense(inputs) * self.scale


def _nested(scale: float) -> keras.Model:
    inputs = keras.Input((6,))
    outputs = keras.layers.Dense(3, activation="softmax")(_Inner(scale)(inputs))
    return _compiled(keras.Model(inputs, outputs))


class _OwnTestStep(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.dense = keras.layers.Dense(3, activation="softmax")

    def call(self, inputs):
        return self.dense(inputs)

    def test_step(self, data):
        return {"err": keras.ops.mean(self(data[0]))}


def test_what_no_configuration_shows_is_never_shared_and_steps_of_its_own_take_fit() -> None:
    """A closure's parameters and a nested subclassed model's call are in no configuration:
    such models keep graphs of their own. A model's own step returns logs only model.fit
    reports; an averaging optimizer is swapped in by fit alone."""
    from search.training.shared_graphs import sharing_key

    keras.backend.clear_session()
    plain = _compiled(keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)]))
    assert sharing_key(plain) is not None and sharing_key(dense()) is not None
    custom_loss = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    custom_loss.compile(optimizer="adam", loss=_scaled_loss(5.0))
    assert sharing_key(custom_loss) is None
    assert sharing_key(_nested(100.0)) is None
    assert path_choice.choose(_nested(100.0)).path == "graph"
    assert "_Inner" in path_choice.summary(_nested(1.0))
    own = _OwnTestStep()
    own.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert path_choice.choose(own) == path_choice.Choice(
        "fit", "the model defines its own test_step, whose logs model.fit reports")
    averaged = dense()
    averaged.compile(optimizer=keras.optimizers.Adam(use_ema=True),
                     loss="sparse_categorical_crossentropy")
    assert path_choice.choose(averaged).path == "fit"


@pytest.mark.slow
def test_splits_of_other_dtypes_each_get_their_trace(data: UserData) -> None:
    """model.fit takes int64 test labels beside int32 training ones; so does a graph."""
    other = UserData(data.x_train, data.y_train, data.x_valid, data.y_valid,
                     data.x_test, data.y_test.astype(np.int64))
    model = fresh(build_functional, data)
    user_model.train(model, other, batch_size=16, epochs=1, seed=5, path="graph")
    graph_scores = user_model.test_scores(model, other, 16, "graph")
    assert graph_scores == pytest.approx(user_model.test_scores(model, other, 16), rel=1e-5)
